//! The gift-wrapped confidential input (NIP-59) and the NIP-17 example from the NIPs repository.
//! <https://github.com/nostr-protocol/nips/blob/master/59.md>

mod common;

use cdvm_protocol::nostr::nips::nip59::{self, UnwrappedGift};
use cdvm_protocol::nostr::{
    Event, EventBuilder, EventId, FromBech32, JsonUtil, Keys, Kind, SecretKey, Tag, TagKind,
};
use cdvm_protocol::{
    kinds, unwrap_input, wrap_input, ConfidentialInput, InputBody, ProtocolError, MAX_EVENT_SIZE,
    MAX_INPUT_PLAINTEXT, MAX_INPUT_RUMOR,
};
use common::*;

const REQ: &str = "a53c938921b8f3e98d9d4339bfe628f80e45f0f9daa48f8685734921d02f4c87";
const CANARY: &str = "canary-5f0c2b7e-secret";

fn sql_input() -> ConfidentialInput {
    ConfidentialInput {
        v: 1,
        request_id: REQ.into(),
        body: InputBody::Sql {
            table_csv: format!("name,salary\nalice,100\n{CANARY},200\n").into(),
            query: "SELECT count(*) FROM t".into(),
        },
        blossom: vec![],
    }
}

#[tokio::test]
async fn wrap_unwrap_round_trip() {
    let input = sql_input();
    let wrap = wrap_input(&user(), &guest().public_key(), &input)
        .await
        .expect("wrap");
    assert_eq!(wrap.kind, Kind::GiftWrap);
    assert_ne!(
        wrap.pubkey,
        user().public_key(),
        "wrap is signed by a throwaway key"
    );
    // Nothing of the input is visible: only a p tag to G, and the canary is nowhere in the JSON.
    let tags: Vec<Vec<String>> = wrap.tags.iter().map(|t| t.as_slice().to_vec()).collect();
    assert_eq!(tags, [vec!["p".to_owned(), guest().public_key().to_hex()]]);
    assert!(!wrap.as_json().contains(CANARY));
    assert!(
        !wrap.as_json().contains(REQ),
        "not even the request id leaks"
    );

    let (sender, got) = unwrap_input(&guest(), &wrap).await.expect("unwrap");
    assert_eq!(sender, user().public_key());
    assert_eq!(got, input);

    let t = ConfidentialInput {
        v: 1,
        request_id: REQ.into(),
        body: InputBody::TextStats {
            text: "to be or not to be".into(),
        },
        blossom: vec![],
    };
    let wrap = wrap_input(&user(), &guest().public_key(), &t)
        .await
        .expect("wrap");
    assert_eq!(unwrap_input(&guest(), &wrap).await.expect("unwrap").1, t);
}

#[test]
fn input_json_shape() {
    let v = serde_json::to_value(sql_input()).expect("json");
    assert_eq!(v["v"], 1);
    assert_eq!(v["body"]["type"], "sql");
    assert!(v["body"]["table_csv"].is_string());
    let t = serde_json::to_value(InputBody::TextStats { text: "x".into() }).expect("json");
    assert_eq!(t, serde_json::json!({"type":"text-stats","text":"x"}));
    // Unknown fields are refused, at both levels.
    for bad in [
        r#"{"v":1,"request_id":"x","body":{"type":"text-stats","text":"x"},"extra":1}"#,
        r#"{"v":1,"request_id":"x","body":{"type":"text-stats","text":"x","extra":1}}"#,
        r#"{"v":1,"request_id":"x","body":{"type":"shell","cmd":"rm"}}"#,
    ] {
        assert!(
            serde_json::from_str::<ConfidentialInput>(bad).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn wrong_recipient_cannot_unwrap() {
    let wrap = wrap_input(&user(), &guest().public_key(), &sql_input())
        .await
        .expect("wrap");
    assert!(matches!(
        unwrap_input(&other(), &wrap).await,
        Err(ProtocolError::Nip59 { .. })
    ));
}

/// A gift wrap whose seal is signed by U but whose rumor claims another author.
#[tokio::test]
async fn rumor_author_must_be_seal_signer() {
    let json = serde_json::to_string(&sql_input()).expect("json");
    let rumor = EventBuilder::new(Kind::from(kinds::INPUT_RUMOR), json)
        .tag(Tag::custom(TagKind::from("e"), [REQ]))
        .build(other().public_key());
    let wrap = EventBuilder::gift_wrap(&user(), &guest().public_key(), rumor, [])
        .await
        .expect("wrap");
    let err = unwrap_input(&guest(), &wrap).await.expect_err("spoofed");
    assert!(
        matches!(
            err,
            ProtocolError::Nip59 {
                source: nip59::Error::SenderMismatch
            } | ProtocolError::SenderMismatch { .. }
        ),
        "{err:?}"
    );
}

async fn wrap_rumor(kind: u16, content: String, e_tags: &[&str]) -> Event {
    let rumor = EventBuilder::new(Kind::from(kind), content)
        .tags(
            e_tags
                .iter()
                .map(|id| Tag::custom(TagKind::from("e"), [*id])),
        )
        .build(user().public_key());
    EventBuilder::gift_wrap(&user(), &guest().public_key(), rumor, [])
        .await
        .expect("wrap")
}

#[tokio::test]
async fn rumor_kind_tag_and_request_are_checked() {
    let json = serde_json::to_string(&sql_input()).expect("json");
    // A NIP-17 chat message (kind 14) is not an input.
    let w = wrap_rumor(14, json.clone(), &[REQ]).await;
    assert!(matches!(
        unwrap_input(&guest(), &w).await,
        Err(ProtocolError::WrongKind { got: 14, .. })
    ));
    // No e tag.
    let w = wrap_rumor(kinds::INPUT_RUMOR, json.clone(), &[]).await;
    assert!(matches!(
        unwrap_input(&guest(), &w).await,
        Err(ProtocolError::MissingTag { tag: "e" })
    ));
    // e tag names another request than the body.
    let other_req = EventId::all_zeros().to_hex();
    let w = wrap_rumor(kinds::INPUT_RUMOR, json, &[&other_req]).await;
    assert!(matches!(
        unwrap_input(&guest(), &w).await,
        Err(ProtocolError::RequestMismatch { .. })
    ));
    // Not JSON.
    let w = wrap_rumor(kinds::INPUT_RUMOR, "SELECT 1".into(), &[REQ]).await;
    assert!(matches!(
        unwrap_input(&guest(), &w).await,
        Err(ProtocolError::Json { .. })
    ));
    // A plain event is not a gift wrap.
    let note = sign(EventBuilder::new(Kind::TextNote, "hi"), &user());
    assert!(matches!(
        unwrap_input(&guest(), &note).await,
        Err(ProtocolError::WrongKind { got: 1, .. })
    ));
}

fn text_input_of_json_len(len: usize) -> ConfidentialInput {
    let mut i = ConfidentialInput {
        v: 1,
        request_id: REQ.into(),
        body: InputBody::TextStats {
            text: String::new().into(),
        },
        blossom: vec![],
    };
    let overhead = serde_json::to_string(&i).expect("json").len();
    i.body = InputBody::TextStats {
        text: "a".repeat(len - overhead).into(),
    };
    assert_eq!(serde_json::to_string(&i).expect("json").len(), len);
    i
}

#[tokio::test]
async fn input_size_limit() {
    let at_max = text_input_of_json_len(MAX_INPUT_PLAINTEXT);
    let wrap = wrap_input(&user(), &guest().public_key(), &at_max)
        .await
        .expect("exactly MAX is accepted");
    let wrap_len = wrap.as_json().len();
    // Recorded for docs/protocol.md: what one maximal input costs on the wire.
    println!("gift wrap of a {MAX_INPUT_PLAINTEXT}-byte input: {wrap_len} bytes of event JSON");
    assert!(wrap_len <= MAX_EVENT_SIZE);
    assert_eq!(
        unwrap_input(&guest(), &wrap).await.expect("unwrap").1,
        at_max
    );

    let over = text_input_of_json_len(MAX_INPUT_PLAINTEXT + 1);
    match wrap_input(&user(), &guest().public_key(), &over).await {
        Err(ProtocolError::InputTooLarge { size, max }) => {
            assert_eq!((size, max), (MAX_INPUT_PLAINTEXT + 1, MAX_INPUT_PLAINTEXT))
        }
        other => panic!("expected InputTooLarge, got {other:?}"),
    }
    // The guest refuses an oversized rumor made without our wrap_input.
    let json = serde_json::to_string(&over).expect("json");
    let w = wrap_rumor(kinds::INPUT_RUMOR, json, &[REQ]).await;
    assert!(matches!(
        unwrap_input(&guest(), &w).await,
        Err(ProtocolError::InputTooLarge { .. })
    ));
}

/// Quotes are escaped twice (input JSON, then rumor JSON): a quote-heavy input under
/// MAX_INPUT_PLAINTEXT can still overflow the rumor bound, and gets a clean error.
#[tokio::test]
async fn escaping_heavy_input_is_refused_cleanly() {
    let mut i = text_input_of_json_len(200);
    i.body = InputBody::TextStats {
        text: "\"".repeat(MAX_INPUT_PLAINTEXT / 2 - 200).into(),
    };
    let len = serde_json::to_string(&i).expect("json").len();
    assert!(len <= MAX_INPUT_PLAINTEXT, "{len}");
    match wrap_input(&user(), &guest().public_key(), &i).await {
        Err(ProtocolError::EventTooLarge { what, size, max }) => {
            assert_eq!((what, max), ("input rumor", MAX_INPUT_RUMOR));
            assert!(size > max);
        }
        other => panic!("expected EventTooLarge, got {other:?}"),
    }
}

/// The derivation of MAX_INPUT_RUMOR, checked: a rumor of exactly MAX_INPUT_RUMOR bytes gives a
/// gift wrap within MAX_EVENT_SIZE, one byte more does not.
#[tokio::test]
async fn max_input_rumor_is_the_tight_bound() {
    let rumor_of_len = |len: usize| {
        let build = |n: usize| {
            EventBuilder::new(Kind::from(kinds::INPUT_RUMOR), "a".repeat(n))
                .tag(Tag::custom(TagKind::from("e"), [REQ]))
                .custom_created_at(cdvm_protocol::nostr::Timestamp::from(T0))
                .build(user().public_key())
        };
        let overhead = build(0).as_json().len();
        let r = build(len - overhead);
        assert_eq!(r.as_json().len(), len);
        r
    };
    let mut sizes = Vec::new();
    for (len, fits) in [(MAX_INPUT_RUMOR, true), (MAX_INPUT_RUMOR + 1, false)] {
        let wrap = EventBuilder::gift_wrap(&user(), &guest().public_key(), rumor_of_len(len), [])
            .await
            .expect("wrap");
        let size = wrap.as_json().len();
        assert_eq!(size <= MAX_EVENT_SIZE, fits, "rumor {len} -> wrap {size}");
        sizes.push(size);
    }
    println!(
        "rumor {MAX_INPUT_RUMOR} -> wrap {}; rumor +1 -> wrap {}",
        sizes[0], sizes[1]
    );
}

/// The worked example of NIP-17 (nostr-protocol/nips 17.md, "Examples"): both gift wraps unwrap
/// with the given nsecs through nostr's NIP-59, and carry the sender's chat message.
#[tokio::test]
async fn nip17_example_unwraps() {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/nip17-nip59/nip17-example.json"))
            .expect("json");
    let s = |k: &str| v[k].as_str().expect(k).to_owned();
    let sender = Keys::new(SecretKey::from_bech32(&s("sender_nsec")).expect("nsec"));
    let receiver = Keys::new(SecretKey::from_bech32(&s("receiver_nsec")).expect("nsec"));
    let wraps = v["gift_wraps_to_receiver_then_sender"]
        .as_array()
        .expect("wraps");
    assert_eq!(wraps.len(), 2);

    let mut n = 0;
    for (wrap_json, keys) in wraps.iter().zip([&receiver, &sender]) {
        let wrap = Event::from_json(wrap_json.to_string()).expect("event");
        cdvm_protocol::verify_event(&wrap).expect("wrap verifies");
        let gift = UnwrappedGift::from_gift_wrap(keys, &wrap)
            .await
            .expect("unwrap");
        assert_eq!(gift.sender, sender.public_key());
        assert_eq!(gift.rumor.pubkey, sender.public_key());
        assert_eq!(gift.rumor.kind, Kind::PrivateDirectMessage);
        assert_eq!(gift.rumor.content, s("message"));
        assert_eq!(gift.rumor.content, "Hola, que tal?");
        // Our input parser refuses it: a chat message is not a confidential input.
        if keys.public_key() == receiver.public_key() {
            assert!(matches!(
                unwrap_input(keys, &wrap).await,
                Err(ProtocolError::WrongKind { got: 14, .. })
            ));
        }
        n += 1;
    }
    assert_eq!(n, 2);
    // The third party cannot open either.
    let wrap = Event::from_json(wraps[0].to_string()).expect("event");
    assert!(UnwrappedGift::from_gift_wrap(&other(), &wrap)
        .await
        .is_err());
}
