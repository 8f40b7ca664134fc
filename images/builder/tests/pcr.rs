//! Known answers for the PCR predictions from independent implementations:
//! - the Authenticode digest against the one `sbsign` (sbsigntool) puts into the signature it
//!   makes over the same file;
//! - PCR 11 against `systemd-measure calculate` (systemd 252, the version whose stub we ship),
//!   for the stub's own measurements only (`--phase=:`).
//!
//! Needs `sbsign` (package sbsigntool), `openssl`, `/lib/systemd/systemd-measure` (package
//! systemd; `.ci/run` installs them) and the pinned systemd stub package `scripts/build-image`
//! caches (the PE image these tests sign).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cdvm_image::{authenticode, pcr};

const MEASURE: &str = "/lib/systemd/systemd-measure";

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (see this file's header)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PE image to sign: Debian's systemd stub, from the pinned package.
fn pe() -> Vec<u8> {
    common::stub()
}

/// Signs `pe` with a throwaway key and returns the signed file.
fn sbsign(dir: &Path, pe: &[u8]) -> Vec<u8> {
    let (key, cert, unsigned, signed) = (
        dir.join("k.pem"),
        dir.join("c.pem"),
        dir.join("in.efi"),
        dir.join("out.efi"),
    );
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", "/CN=cdvm test", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    std::fs::write(&unsigned, pe).unwrap();
    run(Command::new("sbsign")
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .arg("--output")
        .arg(&signed)
        .arg(&unsigned));
    std::fs::read(&signed).unwrap()
}

/// The SHA-256 digest inside the signature's `SpcIndirectDataContent`: the DigestInfo
/// `SEQUENCE { AlgorithmIdentifier { sha256, NULL }, OCTET STRING (32) }`.
fn signed_digest(signed: &[u8]) -> [u8; 32] {
    const DIGEST_INFO: [u8; 15] = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
    ];
    let at = signed
        .windows(DIGEST_INFO.len())
        .position(|w| w == DIGEST_INFO)
        .expect("the signature holds a SHA-256 DigestInfo");
    signed[at + DIGEST_INFO.len()..at + DIGEST_INFO.len() + 32]
        .try_into()
        .unwrap()
}

#[test]
fn authenticode_digest_is_the_one_sbsign_signs() {
    let dir = tempfile::tempdir().unwrap();
    let unsigned = pe();
    let signed = sbsign(dir.path(), &unsigned);
    let theirs = signed_digest(&signed);
    assert_eq!(authenticode::sha256(&signed).unwrap(), theirs);
    // The certificates are not part of the digest: when sbsign did not need to pad the file,
    // the unsigned image (what the firmware measures) has the digest a signature signs.
    if unsigned.len().is_multiple_of(8) {
        assert_eq!(authenticode::sha256(&unsigned).unwrap(), theirs);
    }
}

#[test]
fn authenticode_tamper_twins() {
    let unsigned = pe();
    let good = authenticode::sha256(&unsigned).unwrap();
    // The checksum field is excluded: changing it changes nothing.
    let mut checksum = unsigned.clone();
    let nt = u32::from_le_bytes(unsigned[0x3c..0x40].try_into().unwrap()) as usize;
    checksum[nt + 24 + 64] ^= 0xff;
    assert_eq!(authenticode::sha256(&checksum).unwrap(), good);
    // One byte of code is not.
    let mut code = unsigned.clone();
    let last = code.len() - 1;
    code[last / 2] ^= 1;
    assert_ne!(authenticode::sha256(&code).unwrap(), good);
    // Cut inside the headers: refused, no panic.
    assert!(authenticode::sha256(&unsigned[..nt + 30]).is_err());
}

fn measure_pcr11(files: &[(&str, PathBuf)]) -> [u8; 32] {
    let mut cmd = Command::new(MEASURE);
    // Phase ":" is no phase word at all: what the stub alone extends (our PID 1 is not systemd,
    // so systemd-pcrphase never adds "enter-initrd" and the rest).
    cmd.arg("calculate").arg("--bank=sha256").arg("--phase=:");
    for (opt, path) in files {
        cmd.arg(format!("--{opt}={}", path.display()));
    }
    let out = run(&mut cmd);
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("11:sha256="))
        .unwrap_or_else(|| panic!("no PCR 11 value in: {out}"));
    hex::decode(line.trim()).unwrap().try_into().unwrap()
}

#[test]
fn pcr11_is_what_systemd_measure_calculates() {
    let dir = tempfile::tempdir().unwrap();
    let parts: [(&str, &str, Vec<u8>); 4] = [
        ("linux", ".linux", pe()),
        (
            "osrel",
            ".osrel",
            b"ID=cdvm\nNAME=ConfidentialDVM\n".to_vec(),
        ),
        ("cmdline", ".cmdline", b"console=ttyS0 quiet".to_vec()),
        (
            "initrd",
            ".initrd",
            (0..=255u8).cycle().take(70_000).collect(),
        ),
    ];
    let mut files = Vec::new();
    for (opt, _, data) in &parts {
        let path = dir.path().join(opt);
        std::fs::write(&path, data).unwrap();
        files.push((*opt, path));
    }
    let sections: Vec<(&str, &[u8])> = parts.iter().map(|(_, s, d)| (*s, d.as_slice())).collect();
    let theirs = measure_pcr11(&files);
    assert_eq!(pcr::pcr11(&sections), theirs);

    // Tamper twin: one byte of the command line.
    let mut other = sections.clone();
    other[2] = (".cmdline", b"console=ttyS0 quieT");
    assert_ne!(pcr::pcr11(&other), theirs);
}
