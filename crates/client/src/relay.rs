//! A real Nostr relay over websockets on 127.0.0.1, for the demo and the tests.

use nostr_relay_builder::builder::RateLimit;
use nostr_relay_builder::{LocalRelay, RelayBuilder};

/// A running local relay; stops when dropped.
#[derive(Debug)]
pub struct TestRelay {
    relay: LocalRelay,
    url: String,
}

impl TestRelay {
    /// Starts a relay on a free loopback port. The per-connection rate limit is raised from the
    /// builder's 60 events/minute, which a busy test or demo would hit.
    pub async fn start() -> Result<Self, nostr_relay_builder::Error> {
        Self::start_on(None).await
    }

    /// Starts a relay on 127.0.0.1:`port` (a free port when `None`).
    ///
    /// The builder finds a free port by binding it, letting go, and binding again; another
    /// process (a parallel test, an outgoing connection's ephemeral port) can take it in between.
    /// So a free-port start that finds its port taken tries another, a few times.
    pub async fn start_on(port: Option<u16>) -> Result<Self, nostr_relay_builder::Error> {
        const TRIES: usize = 5;
        let mut tries = 1;
        loop {
            match Self::start_once(port).await {
                Err(nostr_relay_builder::Error::IO(e))
                    if port.is_none()
                        && e.kind() == std::io::ErrorKind::AddrInUse
                        && tries < TRIES =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(port: Option<u16>) -> Result<Self, nostr_relay_builder::Error> {
        let mut builder = RelayBuilder::default().rate_limit(RateLimit {
            max_reqs: 1000,
            notes_per_minute: 10_000,
        });
        if let Some(port) = port {
            builder = builder.port(port);
        }
        let relay = LocalRelay::new(builder);
        relay.run().await?;
        let url = relay.url().await.to_string();
        Ok(Self { relay, url })
    }

    /// The relay's ws:// URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the relay.
    pub fn shutdown(&self) {
        self.relay.shutdown();
    }
}
