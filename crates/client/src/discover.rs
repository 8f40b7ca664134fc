//! What the relays say about where large inputs may go: the DVM's NIP-89 announcement (its input
//! caps and suggested Blossom servers) and the user's own Blossom server list (BUD-03, kind
//! 10063). Both are public, signed events; neither is needed for a small inline input.

use std::time::Duration;

use cdvm_protocol::nostr::{Filter, Kind, PublicKey};
use cdvm_protocol::{kinds, HandlerInfo};
use nostr_sdk::Client;

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The DVM's newest valid ConfidentialDVM announcement, if the relays have one.
pub async fn announcement(client: &Client, dvm: &PublicKey) -> Option<HandlerInfo> {
    let filter = Filter::new()
        .kind(Kind::from(kinds::HANDLER_INFO))
        .author(*dvm);
    let events = client.fetch_events(filter, FETCH_TIMEOUT).await.ok()?;
    let mut events: Vec<_> = events.into_iter().collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.created_at));
    events.iter().find_map(|e| HandlerInfo::from_event(e).ok())
}

/// The user's Blossom servers from their newest kind-10063 list (BUD-03), in its order.
pub async fn user_servers(client: &Client, user: &PublicKey) -> Vec<String> {
    let filter = Filter::new()
        .kind(Kind::from(kinds::USER_SERVER_LIST))
        .author(*user);
    let Ok(events) = client.fetch_events(filter, FETCH_TIMEOUT).await else {
        return Vec::new();
    };
    let Some(newest) = events
        .into_iter()
        .filter(|e| e.verify().is_ok())
        .max_by_key(|e| e.created_at)
    else {
        return Vec::new();
    };
    cdvm_protocol::blob::server_list(&newest)
}
