//! The shipped policy files: they parse, trust only vendor roots, and reject unknown fields.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cdvm_attestation::policy::{PolicyError, TrustedRoot};
use cdvm_attestation::{Policy, TeeKind};

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

#[test]
fn default_snp_policy_parses_with_the_documented_values() {
    let p = Policy::load(&policies_dir().join("default-snp.yaml")).unwrap();
    assert_eq!(p.name, "default-sev-snp");
    assert_eq!(p.tee, TeeKind::SevSnp);
    assert_eq!(
        p.roots,
        vec![
            TrustedRoot::AmdMilan,
            TrustedRoot::AmdGenoa,
            TrustedRoot::AmdTurin
        ]
    );
    assert!(
        p.measurements.is_empty(),
        "pinned by the guest image issue; empty refuses all"
    );
    let milan = p.min_tcb_by_product.milan.as_ref().expect("a Milan floor");
    assert_eq!(
        (milan.bootloader, milan.tee, milan.snp, milan.microcode),
        (3, 0, 8, 115)
    );
    // No Genoa/Turin floor is pinned yet: the generic floor refuses those lines outright.
    assert_eq!(
        (
            p.min_tcb.bootloader,
            p.min_tcb.tee,
            p.min_tcb.snp,
            p.min_tcb.microcode
        ),
        (255, 255, 255, 255)
    );
    assert!(!p.allow_debug);
    assert!(!p.allow_migration_agent);
    assert_eq!(p.max_vmpl, 0);
    assert!(!p.trusts_simulated());
}

#[test]
fn no_shipped_policy_trusts_a_simulated_root() {
    let mut seen = 0;
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let p = Policy::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !p.trusts_simulated(),
            "{} trusts a simulated root",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 1);
}

#[test]
fn unknown_fields_are_rejected() {
    let base = std::fs::read_to_string(policies_dir().join("default-snp.yaml")).unwrap();
    for extra in ["allow_debugging: true\n", "min_tcb2: {}\n"] {
        let text = format!("{base}{extra}");
        assert!(
            matches!(Policy::from_yaml(&text), Err(PolicyError::Parse { .. })),
            "{extra}"
        );
    }
    let nested = base.replace("  microcode: 255", "  microcode: 255\n  fmc: 1");
    assert_ne!(nested, base);
    assert!(matches!(
        Policy::from_yaml(&nested),
        Err(PolicyError::Parse { .. })
    ));
}

#[test]
fn simulated_roots_and_measurements_are_validated() {
    let ok = "name: dev\ntee: sev-snp\nroots:\n  - simulated: {ark_sha256: \"ab\"}\n";
    assert!(matches!(
        Policy::from_yaml(ok),
        Err(PolicyError::Invalid { .. })
    ));
    let fp = "a".repeat(64);
    let good =
        format!("name: dev\ntee: sev-snp\nroots:\n  - simulated: {{ark_sha256: \"{fp}\"}}\n");
    assert!(Policy::from_yaml(&good).unwrap().trusts_simulated());
    let bad_m = format!("{good}measurements:\n  - {{measurement: \"zz\", source: x}}\n");
    assert!(matches!(
        Policy::from_yaml(&bad_m),
        Err(PolicyError::Invalid { .. })
    ));
    let no_roots = "name: x\ntee: sev-snp\nroots: []\n";
    assert!(matches!(
        Policy::from_yaml(no_roots),
        Err(PolicyError::Invalid { .. })
    ));
}
