//! The guest agent knows the protocol, not the operator's provider seam: the bootstrap it reads
//! is the protocol's `Bootstrap` (docs/protocol.md §5.7). Checked on the workspace's dependency
//! graph, so a path back to the seam through another workspace crate fails too (only workspace
//! crates can depend on it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

#[test]
fn the_agent_does_not_depend_on_the_provider_seam() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Workspace crate → the workspace crates it links (normal dependencies, optional or not).
    let graph: HashMap<String, Vec<String>> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect();
    assert!(
        graph.contains_key("cdvm-provider-api"),
        "{:?}",
        graph.keys()
    );
    let mut seen = BTreeSet::new();
    let mut stack = vec!["cdvm-agent".to_owned()];
    while let Some(name) = stack.pop() {
        if let Some(deps) = graph.get(&name) {
            if seen.insert(name) {
                stack.extend(deps.iter().cloned());
            }
        }
    }
    assert!(seen.contains("cdvm-protocol"), "{seen:?}");
    assert!(
        !seen.contains("cdvm-provider-api"),
        "the guest agent links the provider seam: {seen:?}"
    );
}
