//! The UEFI disk's per-platform policies: generated from the base policies they keep every rule
//! of, parse as the verifier reads them, pin what the build computed, and the committed files in
//! policies/ are the ones the built image gives (a stale policy fails here, not in production).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cdvm_attestation::Policy;
use cdvm_image::expected::UefiExpected;
use cdvm_image::inputs::Places;
use cdvm_image::manifest::Manifest;
use cdvm_image::platform_policy;
use cdvm_image::recipe;
use cdvm_image::tdx_direct::{self, TdxDirectExpected};

fn base(name: &str) -> (String, Policy) {
    let path = common::repo().join("policies").join(name);
    (
        std::fs::read_to_string(&path).unwrap(),
        Policy::load(&path).unwrap(),
    )
}

fn expected() -> UefiExpected {
    UefiExpected {
        authenticode_sha256: hex::encode([1u8; 32]),
        authenticode_sha384: hex::encode([2u8; 48]),
        kernel_authenticode_sha256: hex::encode([3u8; 32]),
        pcr4: hex::encode([4u8; 32]),
        pcr11: hex::encode([0x11u8; 32]),
        pcr12: "0".repeat(64),
    }
}

#[test]
fn gcp_tdx_requires_the_uki_event_and_keeps_the_tdx_rules() {
    let (text, default) = base("default-tdx.yaml");
    let g = platform_policy::gcp_tdx(&text, &expected(), "test build").unwrap();
    let p = Policy::from_yaml(&g.text).unwrap();
    assert_eq!(p.name, "image-gcp-tdx");
    let events = &p.tdx.as_ref().unwrap().event_log.as_ref().unwrap().events;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].rtmr, 1);
    assert_eq!(events[0].digest.unwrap().0, [2u8; 48]);
    // Everything else is default-tdx.yaml's.
    let mut same = p.clone();
    same.name = default.name.clone();
    same.tdx.as_mut().unwrap().event_log = None;
    assert_eq!(same, default);
    assert!(!p.trusts_simulated());
}

fn tdx_expected() -> TdxDirectExpected {
    let h = |b: u8| hex::encode([b; 48]);
    TdxDirectExpected {
        mrtd: h(0xa0),
        cfv: h(0xc0),
        shim: h(0x51),
        kernel: h(0x4b),
        initrd: h(0x1d),
        load_options: h(0x10),
    }
}

#[test]
fn qemu_tdx_pins_mrtd_and_the_boot_events_and_keeps_the_tdx_rules() {
    let (text, default) = base("default-tdx.yaml");
    let g = platform_policy::qemu_tdx(&text, &tdx_expected(), "test build").unwrap();
    assert_eq!(g.file, "image-tdx.yaml");
    let p = Policy::from_yaml(&g.text).unwrap();
    assert_eq!(p.name, "image-tdx");
    let tdx = p.tdx.as_ref().unwrap();
    assert_eq!(tdx.mrtd.len(), 1);
    assert_eq!(tdx.mrtd[0].measurement, hex::encode([0xa0u8; 48]));
    let events = &tdx.event_log.as_ref().unwrap().events;
    let got: Vec<(u8, String, [u8; 48])> = events
        .iter()
        .map(|e| (e.rtmr, e.event_type.to_string(), e.digest.unwrap().0))
        .collect();
    assert_eq!(
        got,
        [
            (0, "EV_EFI_PLATFORM_FIRMWARE_BLOB2".into(), [0xc0; 48]),
            (1, "EV_EFI_BOOT_SERVICES_APPLICATION".into(), [0x51; 48]),
            (1, "EV_EFI_BOOT_SERVICES_APPLICATION".into(), [0x4b; 48]),
            (2, "EV_EVENT_TAG".into(), [0x1d; 48]),
            (2, "EV_EVENT_TAG".into(), [0x10; 48]),
        ]
    );
    // Everything else is default-tdx.yaml's.
    let mut same = p.clone();
    same.name = default.name.clone();
    let t = same.tdx.as_mut().unwrap();
    t.event_log = None;
    t.mrtd.clear();
    assert_eq!(same, default);
    assert!(!p.trusts_simulated());
    // A value that is not 96 hex characters is refused.
    let mut bad = tdx_expected();
    bad.kernel = "00".into();
    assert!(platform_policy::qemu_tdx(&text, &bad, "t").is_err());
}

#[test]
fn the_committed_qemu_tdx_policy_is_the_built_image() {
    let image = common::image_dir();
    let places = Places::under(&common::repo());
    let e = tdx_direct::prepare(&image, &common::lock(), &places).unwrap();
    let (text, _) = base("image-tdx.yaml");
    let p = Policy::from_yaml(&text).unwrap();
    let tdx = p.tdx.unwrap();
    assert_eq!(
        tdx.mrtd[0].measurement, e.mrtd,
        "run scripts/build-image and commit policies/"
    );
    let digests: Vec<String> = tdx
        .event_log
        .unwrap()
        .events
        .iter()
        .map(|ev| hex::encode(ev.digest.unwrap().0))
        .collect();
    assert_eq!(
        digests,
        [e.cfv, e.shim, e.kernel, e.initrd, e.load_options],
        "run scripts/build-image and commit policies/"
    );
    // prepare() put what a TD boots next to the kernel, for the QEMU provider.
    for f in [tdx_direct::TDVF_FILE, tdx_direct::SHIM_FILE] {
        assert!(image.join(f).is_file(), "{f}");
    }
}

#[test]
fn azure_policies_pin_pcrs_4_11_12_and_keep_the_base_rules() {
    for (file, tdx) in [("default-snp.yaml", false), ("default-tdx.yaml", true)] {
        let (text, default) = base(file);
        let g = platform_policy::azure(&text, tdx, &expected(), "test build").unwrap();
        let p = Policy::from_yaml(&g.text).unwrap();
        let pcrs = &p.azure_vtpm.as_ref().unwrap().pcrs;
        assert_eq!(pcrs.keys().copied().collect::<Vec<_>>(), [4, 11, 12]);
        assert_eq!(pcrs[&4], [hex::encode([4u8; 32])]);
        // The all-zero PCR 12 stays a string, not the YAML number 0.
        assert_eq!(pcrs[&12], ["0".repeat(64)]);
        let mut same = p.clone();
        same.name = default.name.clone();
        same.azure_vtpm = None;
        assert_eq!(same, default, "{file}");
    }
}

#[test]
fn aws_and_gcp_snp_policies_name_the_cloud_vtpm_binding_and_keep_the_base_rules() {
    use cdvm_attestation::cloud_vtpm::Cloud;
    use cdvm_attestation::ImageBinding;
    let (text, default) = base("default-snp.yaml");
    for (cloud, file, want) in [
        ("aws", "image-aws-snp.yaml", Cloud::Aws),
        ("gcp", "image-gcp-snp.yaml", Cloud::Gcp),
    ] {
        let g = platform_policy::cloud_snp(&text, cloud, &expected(), "test build").unwrap();
        assert_eq!(g.file, file);
        // The leading comment says which binding the file gives.
        let header: String = g.text.lines().take_while(|l| l.starts_with('#')).collect();
        assert!(
            header.contains("BINDING: image_binding: cloud-vtpm")
                && header.contains("NOT full hardware binding"),
            "{header}"
        );
        let p = Policy::from_yaml(&g.text).unwrap();
        assert_eq!(p.image_binding, ImageBinding::CloudVtpm);
        let c = p.cloud_vtpm.as_ref().unwrap();
        assert_eq!(c.cloud, want);
        assert_eq!(c.pcrs.keys().copied().collect::<Vec<_>>(), [4, 11, 12]);
        assert_eq!(c.pcrs[&4], [hex::encode([4u8; 32])]);
        assert_eq!(c.pcrs[&12], ["0".repeat(64)]);
        // Nothing invented: no firmware measurement, no vTPM root, no blanket firmware trust.
        assert!(p.measurements.is_empty() && c.vtpm_roots.is_empty());
        assert!(!c.trust_cloud_firmware);
        let mut same = p.clone();
        same.name = default.name.clone();
        same.image_binding = ImageBinding::Hardware;
        same.cloud_vtpm = None;
        assert_eq!(same, default, "{file}");
    }
    assert!(platform_policy::cloud_snp(&text, "azure", &expected(), "t").is_err());
}

#[test]
fn bad_values_and_bases_are_refused() {
    let (snp, _) = base("default-snp.yaml");
    let mut e = expected();
    e.pcr4 = "xyz".into();
    assert!(platform_policy::azure(&snp, false, &e, "t").is_err());
    let (tdx, _) = base("default-tdx.yaml");
    let mut e = expected();
    e.authenticode_sha384 = "00".into();
    assert!(platform_policy::gcp_tdx(&tdx, &e, "t").is_err());
    // A TDX base without its `mrtd: []` line.
    assert!(platform_policy::gcp_tdx(&snp, &expected(), "t").is_err());
}

#[test]
fn the_committed_platform_policies_are_the_built_images() {
    let image = common::image_dir();
    let manifest =
        Manifest::from_json(&std::fs::read_to_string(image.join(recipe::MANIFEST)).unwrap())
            .unwrap();
    let uefi = manifest
        .uefi
        .expect("a format-4 manifest has a UEFI section");
    for file in [
        "image-gcp-tdx.yaml",
        "image-azure-snp.yaml",
        "image-azure-tdx.yaml",
        "image-aws-snp.yaml",
        "image-gcp-snp.yaml",
    ] {
        let text = std::fs::read_to_string(common::repo().join("policies").join(file)).unwrap();
        let p = Policy::from_yaml(&text).unwrap();
        let pcrs = p
            .azure_vtpm
            .as_ref()
            .map(|v| &v.pcrs)
            .or(p.cloud_vtpm.as_ref().map(|c| &c.pcrs));
        match pcrs {
            Some(pcrs) => {
                assert_eq!(pcrs[&4], [uefi.expected.pcr4.as_str()], "{file}: PCR 4");
                assert_eq!(pcrs[&11], [uefi.expected.pcr11.as_str()], "{file}: PCR 11");
                assert_eq!(pcrs[&12], [uefi.expected.pcr12.as_str()], "{file}: PCR 12");
            }
            None => {
                let digest = p.tdx.unwrap().event_log.unwrap().events[0].digest.unwrap();
                assert_eq!(
                    hex::encode(digest.0),
                    uefi.expected.authenticode_sha384,
                    "{file}: run scripts/build-image and commit policies/"
                );
            }
        }
    }
}
