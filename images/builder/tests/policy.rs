//! The generated image policy parses as the verifier reads it, and keeps default-snp.yaml's rules.

use std::path::{Path, PathBuf};

use cdvm_attestation::Policy;
use cdvm_image::policy::{image_policy, Pinned};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn default_policy() -> (String, Policy) {
    let path = repo().join("policies/default-snp.yaml");
    let text = std::fs::read_to_string(&path).expect("read default-snp.yaml");
    let policy = Policy::load(&path).expect("default-snp.yaml parses");
    (text, policy)
}

/// Everything but the name and the measurements must equal the default policy.
fn assert_same_rules(image: &Policy, default: &Policy) {
    let mut expected = default.clone();
    expected.name = image.name.clone();
    expected.measurements = image.measurements.clone();
    assert_eq!(image, &expected);
}

#[test]
fn generated_policy_parses_and_keeps_the_default_rules() {
    let (base, default) = default_policy();
    let pinned: Vec<Pinned> = (0..6u8)
        .map(|i| Pinned {
            measurement: hex::encode([i; 48]),
            source: format!(
                "test build {i}: cmdline \"console=ttyS0 panic=-1 quiet\", 2 vCPU EPYC-Milan"
            ),
        })
        .collect();
    let text =
        image_policy(&base, "image-sev-snp", "generated\nby a test", &pinned).expect("generate");
    let policy = Policy::from_yaml(&text).expect("generated policy parses");
    assert_eq!(policy.name, "image-sev-snp");
    assert_eq!(policy.measurements.len(), 6);
    for (m, p) in policy.measurements.iter().zip(&pinned) {
        assert_eq!(m.measurement, p.measurement);
        assert_eq!(m.source, p.source);
    }
    assert!(!policy.trusts_simulated());
    assert_same_rules(&policy, &default);
}

/// The committed policy (written by scripts/build-image) parses, pins one digest per vCPU model and
/// count, and copies the default policy's rules.
#[test]
fn committed_image_policy_is_valid() {
    let path = repo().join("policies/image-snp.yaml");
    let policy = Policy::load(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/build-image to regenerate it)",
            path.display()
        )
    });
    let (_, default) = default_policy();
    assert_same_rules(&policy, &default);
    assert_eq!(
        policy.measurements.len(),
        6,
        "1, 2, 4 vCPUs × EPYC-Milan, EPYC-Genoa"
    );
    for m in &policy.measurements {
        assert_eq!(m.measurement.len(), 96);
        assert!(m.source.contains("cdvm-image"), "{}", m.source);
    }
}
