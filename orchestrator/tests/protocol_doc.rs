//! docs/protocol.md is a public contract: what it says the orchestrator subscribes to must be
//! what it subscribes to. The §6 filter table's `O` rows are compared with
//! [`cdvm_orchestrator::subscriptions`] for the example configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cdvm_orchestrator::Config;
use cdvm_protocol::nostr::{JsonUtil, Keys, Timestamp};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The JSON in backticks of every `| O | … |` row of the relay-filter table, with its
/// placeholders filled in.
fn documented(dvm: &str, now: u64, max_age: u64) -> Vec<Value> {
    let doc = std::fs::read_to_string(root().join("docs/protocol.md")).unwrap();
    doc.lines()
        .filter(|l| l.starts_with("| O | `{"))
        .map(|l| {
            let json = l.split('`').nth(1).expect("a filter in backticks");
            let json = json
                .replace("<O>", dvm)
                .replace("<now - max_request_age_secs>", &(now - max_age).to_string())
                .replace("<now>", &now.to_string());
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"))
        })
        .collect()
}

/// Arrays and keys sorted, so `kinds` compare as sets and objects by content.
fn canonical(v: Value) -> Value {
    match v {
        Value::Array(a) => {
            let mut a: Vec<Value> = a.into_iter().map(canonical).collect();
            a.sort_by_key(|x| x.to_string());
            Value::Array(a)
        }
        Value::Object(o) => {
            // Keys in sorted order too: serde_json may keep insertion order.
            let sorted: std::collections::BTreeMap<String, Value> =
                o.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        other => other,
    }
}

#[test]
fn the_documented_subscriptions_are_the_real_ones() {
    let cfg = Config::load(&root().join("examples/orchestrator.yaml")).unwrap();
    let dvm = Keys::generate().public_key();
    let now = 1_795_737_600;
    let mut real: Vec<Value> = cdvm_orchestrator::subscriptions(dvm, &cfg, Timestamp::from(now))
        .iter()
        .map(|f| canonical(serde_json::from_str(&f.as_json()).unwrap()))
        .collect();
    let mut doc: Vec<Value> = documented(&dvm.to_hex(), now, cfg.limits.max_request_age_secs)
        .into_iter()
        .map(canonical)
        .collect();
    assert!(
        !doc.is_empty(),
        "no `| O |` filter rows found in docs/protocol.md §6"
    );
    real.sort_by_key(|v| v.to_string());
    doc.sort_by_key(|v| v.to_string());
    assert_eq!(
        real, doc,
        "docs/protocol.md §6 vs the orchestrator's subscriptions"
    );
}
