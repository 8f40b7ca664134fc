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

/// The serde names (struct fields, or enum variants) that `T`'s derived `Deserialize` declares:
/// a deserializer that records the list serde hands to `deserialize_struct` / `deserialize_enum`
/// and then stops. So the list comes from the types themselves, renames included.
fn serde_names<'de, T: serde::Deserialize<'de>>() -> Vec<&'static str> {
    use serde::de::{self, Visitor};

    struct Names<'a>(&'a mut Vec<&'static str>);
    impl<'de> de::Deserializer<'de> for Names<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct or an enum"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend(fields);
            Err(de::Error::custom("names recorded"))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend(variants);
            Err(de::Error::custom("names recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map identifier
            ignored_any
        }
    }
    let mut names = Vec::new();
    let _ = T::deserialize(Names(&mut names));
    assert!(
        !names.is_empty(),
        "{} declares no names",
        std::any::type_name::<T>()
    );
    names
}

fn readme() -> String {
    std::fs::read_to_string(policies_dir().join("README.md")).unwrap()
}

/// The backticked names in the first column of the README table whose header's first cell is
/// `header`, in order.
fn table_names(readme: &str, header: &str) -> Vec<String> {
    let mut lines = readme
        .lines()
        .skip_while(|l| !l.starts_with(&format!("| {header} |")))
        .skip(2); // header and |---| rows
    let mut names = Vec::new();
    for line in lines.by_ref().take_while(|l| l.starts_with('|')) {
        let first = line.split('|').nth(1).unwrap_or_default();
        names.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
    }
    assert!(
        !names.is_empty(),
        "no table `{header}` in policies/README.md"
    );
    names
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn every_policy_field_is_documented_in_the_readme_and_nothing_else() {
    // The three field tables list exactly the fields of Policy, TdxPolicy and GpuPolicy: a field
    // added to the code without a row (as `min_tcb_by_product` and `gpu` once were), or a row
    // left for a removed field, fails here.
    use cdvm_attestation::nvidia::GpuPolicy;
    use cdvm_attestation::tdx::TdxPolicy;
    let text = readme();
    let own = |names: Vec<&str>| sorted(names.into_iter().map(str::to_string).collect());
    for (header, fields) in [
        ("field", own(serde_names::<Policy>())),
        ("`tdx:` field", own(serde_names::<TdxPolicy>())),
        ("`gpu:` field", own(serde_names::<GpuPolicy>())),
    ] {
        assert_eq!(
            sorted(table_names(&text, header)),
            fields,
            "table `{header}`"
        );
    }
}

#[test]
fn every_nested_policy_name_appears_in_the_readme() {
    // Names inside values (TCB components, root kinds, measurement entries, PCCS settings, GPU
    // measurement entries, TEE names) must each appear in some backticked span of the README.
    use cdvm_attestation::cloud_vtpm::{Cloud, CloudVtpmPolicy};
    use cdvm_attestation::nvidia::AllowedGpuMeasurement;
    use cdvm_attestation::policy::{AllowedMeasurement, MinTcb, ProductTcb};
    use cdvm_attestation::tdx::PccsConfig;
    use cdvm_attestation::ImageBinding;
    let text = readme();
    let spans: Vec<&str> = text.split('`').skip(1).step_by(2).collect();
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let documented = |name: &str| {
        spans.iter().any(|span| {
            span.match_indices(name).any(|(at, _)| {
                let before = span[..at].chars().next_back();
                let after = span[at + name.len()..].chars().next();
                !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
            })
        })
    };
    let simulated = serde_json::to_value(TrustedRoot::Simulated {
        ark_sha256: String::new(),
    })
    .unwrap();
    let simulated_fields: Vec<String> = match &simulated["simulated"] {
        serde_json::Value::Object(m) => m.keys().cloned().collect(),
        other => panic!("{other}"),
    };
    let own = |names: Vec<&str>| names.into_iter().map(str::to_string).collect::<Vec<_>>();
    for (what, names) in [
        ("MinTcb", own(serde_names::<MinTcb>())),
        ("ProductTcb", own(serde_names::<ProductTcb>())),
        (
            "AllowedMeasurement",
            own(serde_names::<AllowedMeasurement>()),
        ),
        ("TrustedRoot", own(serde_names::<TrustedRoot>())),
        ("TrustedRoot::Simulated", simulated_fields),
        ("TeeKind", own(serde_names::<TeeKind>())),
        ("PccsConfig", own(serde_names::<PccsConfig>())),
        (
            "AllowedGpuMeasurement",
            own(serde_names::<AllowedGpuMeasurement>()),
        ),
        ("CloudVtpmPolicy", own(serde_names::<CloudVtpmPolicy>())),
        ("Cloud", own(serde_names::<Cloud>())),
        ("ImageBinding", own(serde_names::<ImageBinding>())),
    ] {
        for name in names {
            assert!(
                documented(&name),
                "{what}: `{name}` is not in policies/README.md"
            );
        }
    }
}

#[test]
fn a_null_tdx_or_gpu_section_counts_as_absent() {
    let snp = "name: x\ntee: sev-snp\nroots: [amd-milan]\n";
    for null in ["null", "~", ""] {
        let p = Policy::from_yaml(&format!("{snp}tdx: {null}\ngpu: {null}\n")).unwrap();
        assert_eq!((p.tdx, p.gpu), (None, None), "{null:?}");
        // In a TDX policy, a null section is the missing section.
        let tdx = format!("name: x\ntee: tdx\nroots: [intel-sgx-root]\ntdx: {null}\n");
        match Policy::from_yaml(&tdx) {
            Err(PolicyError::Invalid { reason, .. }) => {
                assert!(reason.contains("requires a `tdx:` section"), "{reason}")
            }
            other => panic!("{null:?}: {other:?}"),
        }
    }
    // The same text without the sections gives the same policy.
    assert_eq!(
        Policy::from_yaml(&format!("{snp}tdx: null\ngpu: null\n")).unwrap(),
        Policy::from_yaml(snp).unwrap()
    );
    // An empty mapping is a present section.
    assert!(Policy::from_yaml(&format!("{snp}gpu: {{}}\n"))
        .unwrap()
        .gpu
        .is_some());
}

#[cfg(feature = "sim")]
#[test]
fn ark_sha256_names_the_sha256_of_the_ark_certificates_der() {
    // What the README says, computed here independently of the crate's own fingerprint code:
    // SHA-256 over the ARK certificate's DER bytes, in hex of either case. The same digest of the
    // PEM text (sim-ark.pem as written) names another root.
    use cdvm_attestation::sim::{
        measure_file_bytes, SimReportOptions, SimSecureProcessor, ARK_FILE,
    };
    use cdvm_attestation::snp::SnpVerifier;
    use cdvm_attestation::{Evidence, ReportData, Verifier, VerifyError};
    use sha2::{Digest, Sha256};

    let dir = tempfile::tempdir().unwrap();
    let sp = SimSecureProcessor::load_or_create(dir.path()).unwrap();
    let measurement = measure_file_bytes(b"agent");
    let rd = ReportData([3; 64]);
    let ev = sp.report(&rd, &measurement, &SimReportOptions::default());
    let Evidence::SevSnp(snp) = &ev else {
        panic!("SNP evidence")
    };
    let pem = std::fs::read(dir.path().join(ARK_FILE)).unwrap();
    let der = openssl::x509::X509::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(
        der,
        snp.chain.as_ref().unwrap().ark,
        "sim-ark.pem holds the evidence's ARK"
    );
    let policy = |fp: &str| {
        Policy::from_yaml(&format!(
            "name: dev\ntee: sev-snp\nroots:\n  - simulated: {{ark_sha256: \"{fp}\"}}\n\
             measurements:\n  - {{measurement: \"{measurement}\", source: test}}\n"
        ))
        .unwrap()
    };
    let verify = |fp: &str| SnpVerifier.verify(&ev, &rd, &policy(fp), std::time::SystemTime::now());
    let over_der = hex::encode(Sha256::digest(&der));
    assert!(verify(&over_der).unwrap().simulated);
    verify(&over_der.to_uppercase()).unwrap();
    let over_pem = hex::encode(Sha256::digest(&pem));
    assert!(matches!(
        verify(&over_pem),
        Err(VerifyError::UntrustedRoot { fingerprint, .. }) if fingerprint == over_der
    ));
}

#[test]
fn every_shipped_policy_names_its_image_binding() {
    // Each says in its leading comment which binding it gives: only the AWS and GCP SEV-SNP
    // ones trust the cloud for image identity.
    use cdvm_attestation::ImageBinding;
    let mut cloud = Vec::new();
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let p = Policy::from_yaml(&text).unwrap();
        if p.image_binding == ImageBinding::CloudVtpm {
            assert!(
                header.contains("BINDING: image_binding: cloud-vtpm"),
                "{}",
                path.display()
            );
            assert!(
                p.measurements.is_empty() && p.cloud_vtpm.as_ref().unwrap().vtpm_roots.is_empty()
            );
            cloud.push(path.file_name().unwrap().to_string_lossy().into_owned());
        } else {
            assert!(
                header.contains("BINDING: image_binding: hardware"),
                "{}",
                path.display()
            );
        }
    }
    cloud.sort();
    assert_eq!(cloud, ["image-aws-snp.yaml", "image-gcp-snp.yaml"]);
}
