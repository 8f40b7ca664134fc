//! Shared by the UKI, disk and UEFI boot tests: where the stub package and the built image are,
//! and running the external checkers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cdvm_image::inputs::Places;
use cdvm_image::lock::{InputId, Lock, LOCK_FILE};
use cdvm_image::{deb, uki};

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed input lock (`images/inputs.lock`).
pub fn lock() -> Lock {
    Lock::load(&repo().join(LOCK_FILE))
        .expect("images/inputs.lock parses")
        .0
}

/// A pinned Debian package: `env`, or where `scripts/build-image` caches it (the lock's file
/// name in `target/image-cache/`). Missing: the test fails and says how to get it.
pub fn cached_deb(id: InputId, env: &str) -> PathBuf {
    let lock = lock();
    let pin = lock.debian(id).expect("a Debian input");
    let path =
        std::env::var_os(env).map_or_else(|| Places::under(&repo()).path(&lock, id), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-image (it fetches the pinned {} {} into \
         target/image-cache/), or set {env} to that package",
        path.display(),
        pin.package,
        pin.version
    );
    path
}

/// The pinned `systemd-boot-efi` package: `CDVM_STUB_DEB`, or the cache.
pub fn stub_deb() -> PathBuf {
    cached_deb(InputId::EfiStub, "CDVM_STUB_DEB")
}

/// The stub's bytes, extracted from the pinned package (its SHA-256 checked).
pub fn stub() -> Vec<u8> {
    let work = tempfile::tempdir().unwrap();
    uki::extract_stub(&stub_deb(), &lock().efi_stub.sha256, work.path())
        .expect("extract the pinned stub")
}

/// Debian's `ovmf` as the lock pins it (`CDVM_OVMF_DEB`, or the cache), checked and extracted
/// into `dir`: returns the firmware code and the variable store template (`OVMF_CODE_4M.fd`,
/// `OVMF_VARS_4M.fd`). Not the machine's /usr/share/OVMF, whose version apt decides.
pub fn ovmf(dir: &Path) -> (PathBuf, PathBuf) {
    let path = cached_deb(InputId::Ovmf, "CDVM_OVMF_DEB");
    deb::verify_sha256(&path, &lock().ovmf.sha256).expect("the pinned ovmf package");
    let root = dir.join("ovmf");
    deb::extract(&path, &root).expect("extract ovmf");
    let fw = root.join("usr/share/OVMF");
    (fw.join("OVMF_CODE_4M.fd"), fw.join("OVMF_VARS_4M.fd"))
}

/// The built guest image: `CDVM_IMAGE_DIR`, or `<workspace>/target/image` (the same convention
/// as `cdvm_provider_qemu::built_image_dir`). Missing: the test fails and says so.
pub fn image_dir() -> PathBuf {
    let dir = std::env::var_os("CDVM_IMAGE_DIR")
        .map_or_else(|| repo().join("target/image"), PathBuf::from);
    assert!(
        dir.join("manifest.json").is_file(),
        "no guest image in {}: run scripts/build-image first (or set CDVM_IMAGE_DIR)",
        dir.display()
    );
    dir
}

/// Runs a checker; a missing tool fails the test, naming the package that has it.
pub fn tool(program: &str, package: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} could not be run ({e}): install the Debian package {package} (.ci/run lists it)")
        })
}

/// Like [`tool`], and fails unless it succeeds; returns stdout.
pub fn tool_ok(program: &str, package: &str, args: &[&str]) -> String {
    let out = tool(program, package, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies `len` bytes at `offset` of `src` into a new file `dst` (a partition out of a disk).
pub fn extract(src: &Path, offset: u64, len: u64, dst: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(src).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut out = std::fs::File::create(dst).unwrap();
    let n = std::io::copy(&mut f.take(len), &mut out).unwrap();
    assert_eq!(n, len, "{} is shorter than expected", src.display());
}

/// Pseudo-random bytes (a fixed xorshift), as stand-in kernels and initrds.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `objdump -h`'s sections: name, size, VMA, file offset.
pub fn objdump_sections(file: &Path) -> Vec<(String, u64, u64, u64)> {
    let text = tool_ok("objdump", "binutils", &["-h", file.to_str().unwrap()]);
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 7 && f[0].parse::<u32>().is_ok() {
                let hex = |s: &str| u64::from_str_radix(s, 16).ok();
                Some((f[1].to_string(), hex(f[2])?, hex(f[3])?, hex(f[5])?))
            } else {
                None
            }
        })
        .collect()
}
