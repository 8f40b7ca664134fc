//! The cloud disk formats, read back by independent tools: Azure's fixed VHD by `qemu-img`
//! (its `vpc` driver: virtual size, byte-for-byte comparison with the raw disk, and the footer
//! fields of the VHD qemu-img itself writes for Azure), GCE's `disk.raw` tar.gz by GNU tar and
//! gzip. Both are deterministic (written twice, equal). Needs `qemu-img` (package qemu-utils),
//! `tar` and `gzip`; `.ci/run` installs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use cdvm_image::{gce_tar, vhd};

/// A 4 MiB "disk": varied bytes, then zeros.
fn raw_disk(path: &Path) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    bytes.resize(4 << 20, 0);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn qemu_img(args: &[&str]) -> std::process::Output {
    common::tool("qemu-img", "qemu-utils", args)
}

#[test]
fn azure_vhd_is_the_disk_and_a_footer_qemu_img_reads() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    let bytes = raw_disk(&raw);
    let out = dir.path().join("disk.vhd");
    let footer = vhd::write_file(&raw, &out).unwrap();
    let written = std::fs::read(&out).unwrap();
    assert_eq!(written.len(), bytes.len() + vhd::FOOTER_LEN);
    assert_eq!(&written[..bytes.len()], bytes.as_slice());
    assert_eq!(footer.size, bytes.len() as u64);

    let info = qemu_img(&["info", "-f", "vpc", "--output=json", out.to_str().unwrap()]);
    assert!(info.status.success(), "{info:?}");
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(json["virtual-size"], bytes.len() as u64, "{json}");
    let cmp = qemu_img(&[
        "compare",
        "-f",
        "vpc",
        "-F",
        "raw",
        out.to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    assert!(cmp.status.success(), "qemu-img compare: {cmp:?}");

    // The footer qemu-img writes for Azure (`subformat=fixed,force_size`) has the same fields,
    // except what names the writer and the moment: time stamp, creator, unique id, checksum.
    let theirs = dir.path().join("qemu.vhd");
    let conv = qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "subformat=fixed,force_size",
        raw.to_str().unwrap(),
        theirs.to_str().unwrap(),
    ]);
    assert!(conv.status.success(), "{conv:?}");
    let theirs = std::fs::read(&theirs).unwrap();
    let (a, b) = (
        &written[written.len() - 512..],
        &theirs[theirs.len() - 512..],
    );
    for (range, what) in [
        (0..24, "cookie, features, version, data offset"),
        (36..64, "host OS, sizes, geometry, disk type"),
        (84..512, "saved state, reserved"),
    ] {
        assert_eq!(a[range.clone()], b[range], "{what}");
    }

    // Deterministic, and Azure's alignment is enforced.
    let again = dir.path().join("again.vhd");
    vhd::write_file(&raw, &again).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), written);
    let odd = dir.path().join("odd.raw");
    std::fs::write(&odd, vec![0u8; (1 << 20) + 512]).unwrap();
    assert!(matches!(
        vhd::write_file(&odd, &dir.path().join("odd.vhd")),
        Err(vhd::VhdError::NotAligned(_))
    ));
}

#[test]
fn gce_tar_gz_holds_disk_raw_for_gnu_tar() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("source.raw");
    let bytes = raw_disk(&raw);
    let out = dir.path().join("image.tar.gz");
    gce_tar::write_file(&raw, &out).unwrap();

    let gz = common::tool("gzip", "gzip", &["-t", out.to_str().unwrap()]);
    assert!(gz.status.success(), "gzip -t: {gz:?}");
    let list = common::tool("tar", "tar", &["-tvzf", out.to_str().unwrap()]);
    assert!(list.status.success(), "{list:?}");
    let listing = String::from_utf8_lossy(&list.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 1, "{listing}");
    assert!(
        lines[0].contains(&bytes.len().to_string()) && lines[0].ends_with(" disk.raw"),
        "{listing}"
    );
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let extract = common::tool(
        "tar",
        "tar",
        &["-xzf", out.to_str().unwrap(), "-C", x.to_str().unwrap()],
    );
    assert!(extract.status.success(), "{extract:?}");
    assert_eq!(std::fs::read(x.join("disk.raw")).unwrap(), bytes);

    // Deterministic.
    let again = dir.path().join("again.tar.gz");
    gce_tar::write_file(&raw, &again).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&out).unwrap());
}
