//! QEMU TDX expected values (docs/image.md, "QEMU TDX"): the pinned Debian TDVF's metadata,
//! MRTD and configuration-volume digest as known answers, cross-checked by a second
//! implementation (tests/tools/tdvf_measure.py, written from Intel's documents), with tamper
//! twins; the kernel's LoadOptions encoding; and malformed firmware refused without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use cdvm_image::deb;
use cdvm_image::lock::InputId;
use cdvm_image::tdvf::{SectionType, Tdvf, TdvfError, ATTRIBUTE_MR_EXTEND};
use cdvm_image::tdx_direct::{self, TDVF_IN_DEB};
use sha2::{Digest, Sha384};

/// MRTD and CFV digest of `OVMF.inteltdx.ms.fd` from ovmf-inteltdx 2026.08+ds-2.
const MRTD: &str = "a7a1f751abc454f9cbab198ca8d2edb2821935df525c74182b5e776cb0929e8c59aefecce725b0d08a5e9d3d3183bd08";
const CFV: &str = "327d4a91229b3993a7f6f64740d94ff689d44b45edada6e255596d4c7aa287576a92fb1f5c350c287caf60670a5bad5a";

/// The committed TDVF package, checked against the lock and unpacked: (folder guard, .fd path).
fn tdvf() -> (tempfile::TempDir, PathBuf) {
    let lock = common::lock();
    let pin = lock.committed(InputId::OvmfInteltdx).unwrap();
    let deb_path = common::repo().join(&pin.path);
    deb::verify_sha256(&deb_path, &pin.sha256).expect("the committed TDVF package");
    let dir = tempfile::tempdir().unwrap();
    deb::extract(&deb_path, dir.path()).unwrap();
    let fd = dir.path().join(TDVF_IN_DEB);
    (dir, fd)
}

fn python_reference(fd: &std::path::Path) -> (String, String) {
    let script = common::repo().join("images/builder/tests/tools/tdvf_measure.py");
    let out = common::tool_ok(
        "python3",
        "python3",
        &[script.to_str().unwrap(), fd.to_str().unwrap()],
    );
    let get = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_string()
    };
    (get("mrtd"), get("cfv"))
}

#[test]
fn debian_tdvf_metadata_mrtd_and_cfv_are_the_known_answers() {
    let (_dir, fd) = tdvf();
    let image = std::fs::read(&fd).unwrap();
    let t = Tdvf::parse(&image).unwrap();
    // images/firmware/SOURCES.md describes these six sections.
    let kinds: Vec<_> = t.sections.iter().map(|s| s.section_type).collect();
    assert_eq!(
        kinds,
        [
            SectionType::Bfv,
            SectionType::Cfv,
            SectionType::TempMem,
            SectionType::TempMem,
            SectionType::TdHob,
            SectionType::TempMem
        ]
    );
    let bfv = &t.sections[0];
    assert_eq!(
        (bfv.data_offset, bfv.raw_data_size, bfv.memory_address),
        (540_672, 3_653_632, 0xffc8_4000)
    );
    assert_eq!(bfv.attributes, ATTRIBUTE_MR_EXTEND);
    assert_eq!(t.sections[1].attributes, 0, "the CFV is not in MRTD");
    assert_eq!(hex::encode(t.mrtd()), MRTD);
    assert_eq!(hex::encode(t.cfv_digest().unwrap()), CFV);
    // The second implementation agrees.
    assert_eq!(python_reference(&fd), (MRTD.to_string(), CFV.to_string()));
}

#[test]
fn a_changed_code_byte_changes_mrtd_and_a_changed_variable_changes_only_the_cfv_digest() {
    let (_dir, fd) = tdvf();
    let image = std::fs::read(&fd).unwrap();
    // Tamper twin 1: one byte of the boot firmware volume (MR_EXTEND).
    let mut code = image.clone();
    code[540_672 + 4096 * 100 + 17] ^= 1;
    let t = Tdvf::parse(&code).unwrap();
    assert_ne!(hex::encode(t.mrtd()), MRTD);
    assert_eq!(hex::encode(t.cfv_digest().unwrap()), CFV);
    // Tamper twin 2: one byte of the variable store (say, an enrolled key): MRTD cannot see it,
    // which is why the policy also requires the CFV event in RTMR0.
    let mut vars = image.clone();
    vars[4096 + 3] ^= 1;
    let t = Tdvf::parse(&vars).unwrap();
    assert_eq!(hex::encode(t.mrtd()), MRTD);
    assert_ne!(hex::encode(t.cfv_digest().unwrap()), CFV);
    // The reference sees the same changes.
    let path = fd.with_file_name("tampered.fd");
    std::fs::write(&path, &code).unwrap();
    assert_ne!(python_reference(&path).0, MRTD);
}

#[test]
fn malformed_firmware_is_refused_without_a_panic() {
    let (_dir, fd) = tdvf();
    let image = std::fs::read(&fd).unwrap();
    let len = image.len();
    // No TDX metadata entry in the OVMF table (its GUID changed).
    let guid = [0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47];
    let at = len - 512
        + image[len - 512..]
            .windows(8)
            .position(|w| w == guid)
            .unwrap();
    let mut no_meta = image.clone();
    no_meta[at] ^= 0xff;
    assert!(matches!(Tdvf::parse(&no_meta), Err(TdvfError::NoMetadata)));
    // The descriptor: "TDVF", its length (16 + 6 sections of 32 bytes), version 1.
    let desc = image
        .windows(12)
        .position(|w| w == b"TDVF\xd0\0\0\0\x01\0\0\0")
        .unwrap();
    let mut bad = image.clone();
    bad[desc] = b'X';
    assert!(matches!(Tdvf::parse(&bad), Err(TdvfError::Descriptor(_))));
    // A section count the descriptor's length does not hold.
    let mut bad = image.clone();
    bad[desc + 12..desc + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(Tdvf::parse(&bad), Err(TdvfError::Descriptor(_))));
    // A section whose file bytes run past the image.
    let mut bad = image.clone();
    bad[desc + 16..desc + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Tdvf::parse(&bad),
        Err(TdvfError::Section { index: 0, .. })
    ));
    // An unaligned GPA.
    let mut bad = image.clone();
    bad[desc + 16 + 8] = 1;
    assert!(matches!(
        Tdvf::parse(&bad),
        Err(TdvfError::Section { index: 0, .. })
    ));
    // Truncated images, cut anywhere in the tail.
    for cut in [1, 31, 32, 40, 200, 5000] {
        assert!(Tdvf::parse(&image[..len - cut]).is_err(), "cut {cut}");
    }
    // And the value tool's error for a firmware that is not one.
    let kernel = vec![0u8; 64];
    assert!(matches!(
        tdx_direct::compute(&no_meta, &kernel, &kernel, b"", ""),
        Err(tdx_direct::TdxDirectError::Firmware(TdvfError::NoMetadata))
    ));
}

#[test]
fn the_command_line_event_is_the_utf16_load_options_edk2_builds() {
    // edk2 X86QemuLoadImageLib: "initrd=initrd " + the fw_cfg command line, UTF-16, NUL.
    let lo = tdx_direct::load_options("console=ttyS0 panic=-1 quiet");
    let text: Vec<u16> = lo
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(
        String::from_utf16(&text).unwrap(),
        "initrd=initrd console=ttyS0 panic=-1 quiet\0"
    );
    let (_dir, fd) = tdvf();
    let image = std::fs::read(&fd).unwrap();
    let built = common::image_dir();
    let kernel = std::fs::read(built.join("vmlinuz")).unwrap();
    let e = tdx_direct::compute(&image, &kernel, &kernel, b"initrd", "quiet").unwrap();
    assert_eq!(
        e.load_options,
        hex::encode(Sha384::digest(tdx_direct::load_options("quiet")))
    );
    assert_eq!(e.initrd, hex::encode(Sha384::digest(b"initrd")));
    assert_eq!(e.mrtd, MRTD);
    // Tamper twin: another command line is another event.
    let other =
        tdx_direct::compute(&image, &kernel, &kernel, b"initrd", "quiet init=/bin/sh").unwrap();
    assert_ne!(other.load_options, e.load_options);
}
