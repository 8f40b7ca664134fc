//! Deterministic packing and refusing unpacking.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use cdvm_blob::tarball::{for_each_file, pack_dir, Limits, PackSummary, TarError};

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

fn make_tree(root: &Path) {
    let long = format!("deep/{}/file.txt", "n".repeat(150));
    // Created in an order unlike the sorted one.
    write(root, "z.txt", b"last");
    write(root, "a/b/c.bin", &[0, 1, 2, 3]);
    write(root, "a.txt", b"hello");
    write(root, "empty", b"");
    write(root, &long, b"long name");
    write(root, "big", &vec![7u8; 200_000]);
    std::fs::create_dir_all(root.join("emptydir")).expect("mkdir");
}

fn pack(root: &Path) -> (Vec<u8>, PackSummary) {
    let mut out = Vec::new();
    let s = pack_dir(root, &mut out).expect("pack");
    (out, s)
}

fn unpack(
    archive: &[u8],
    limits: &Limits,
) -> Result<BTreeMap<String, Vec<u8>>, TarError<std::io::Error>> {
    let mut files = BTreeMap::new();
    for_each_file(archive, limits, |path, r| {
        let mut data = Vec::new();
        r.read_to_end(&mut data)?;
        files.insert(path.to_owned(), data);
        Ok::<_, std::io::Error>(())
    })?;
    Ok(files)
}

#[test]
fn same_tree_same_bytes_anywhere() {
    let one = tempfile::tempdir().expect("tmp");
    let two = tempfile::tempdir().expect("tmp");
    make_tree(one.path());
    make_tree(&two.path().join("elsewhere/nested"));
    // Different permissions and times must not matter.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        two.path().join("elsewhere/nested/a.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let (a, sa) = pack(one.path());
    let (b, sb) = pack(&two.path().join("elsewhere/nested"));
    assert_eq!(sa, sb);
    assert!(a == b, "archives differ");
    assert_eq!(
        sa,
        PackSummary {
            files: 6,
            dirs: 5,
            bytes: 4 + 4 + 5 + 9 + 200_000
        }
    );

    // Headers: sorted paths, fixed metadata.
    let mut archive = tar::Archive::new(&a[..]);
    let mut names = Vec::new();
    for e in archive.entries().expect("entries") {
        let e = e.expect("entry");
        let h = e.header();
        assert_eq!(h.mtime().expect("mtime"), 0);
        assert_eq!((h.uid().expect("uid"), h.gid().expect("gid")), (0, 0));
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        let dir = h.entry_type().is_dir();
        assert_eq!(h.mode().expect("mode"), if dir { 0o755 } else { 0o644 });
        names.push(String::from_utf8(e.path_bytes().into_owned()).expect("utf8"));
    }
    let mut sorted = names.clone();
    sorted.sort_by(|x, y| {
        x.trim_end_matches('/')
            .as_bytes()
            .cmp(y.trim_end_matches('/').as_bytes())
    });
    assert_eq!(names, sorted);
    assert_eq!(names[0], "a/");
    assert_eq!(names[1], "a.txt");

    // And it unpacks to the same contents.
    let files = unpack(&a, &Limits::default()).expect("unpack");
    assert_eq!(files.len(), 6);
    assert_eq!(files["a.txt"], b"hello");
    assert_eq!(files["a/b/c.bin"], [0, 1, 2, 3]);
    assert_eq!(
        files[&format!("deep/{}/file.txt", "n".repeat(150))],
        b"long name"
    );
    assert_eq!(files["big"].len(), 200_000);
}

#[test]
fn symlinks_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "sub/real.txt", b"x");
    std::os::unix::fs::symlink("real.txt", dir.path().join("sub/link")).expect("symlink");
    let err = pack_dir(dir.path(), Vec::new()).expect_err("symlink");
    assert!(
        matches!(&err, TarError::Unsupported { path, kind: "symbolic link" } if path == "sub/link"),
        "{err:?}"
    );
    assert!(err.to_string().contains("sub/link"));
}

#[test]
fn fifos_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe"))
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("mkfifo unavailable; skipped");
        return;
    }
    let err = pack_dir(dir.path(), Vec::new()).expect_err("fifo");
    assert!(
        matches!(&err, TarError::Unsupported { path, kind: "FIFO" } if path == "pipe"),
        "{err:?}"
    );
}

#[test]
fn unpack_limits() {
    let dir = tempfile::tempdir().expect("tmp");
    for i in 0..5 {
        write(dir.path(), &format!("f{i}"), &[i; 1000]);
    }
    let (archive, _) = pack(dir.path());
    let ok = Limits {
        max_files: 5,
        max_total_bytes: 5000,
    };
    assert_eq!(unpack(&archive, &ok).expect("within limits").len(), 5);

    let err = unpack(
        &archive,
        &Limits {
            max_files: 4,
            max_total_bytes: 5000,
        },
    )
    .expect_err("files");
    assert!(
        matches!(
            err,
            TarError::Limit {
                what: "entries",
                limit: 4
            }
        ),
        "{err:?}"
    );
    let err = unpack(
        &archive,
        &Limits {
            max_files: 5,
            max_total_bytes: 4999,
        },
    )
    .expect_err("bytes");
    assert!(
        matches!(
            err,
            TarError::Limit {
                what: "bytes of file contents",
                limit: 4999
            }
        ),
        "{err:?}"
    );
}

#[test]
fn huge_long_name_is_bounded() {
    // A GNU long-name entry claiming a long name beyond the archive budget.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "x".repeat(50_000), &b"abc"[..])
        .expect("append");
    let archive = b.into_inner().expect("finish");
    let err = unpack(
        &archive,
        &Limits {
            max_files: 1,
            max_total_bytes: 10,
        },
    )
    .expect_err("too big");
    assert!(
        matches!(
            err,
            TarError::Limit {
                what: "bytes of archive",
                ..
            }
        ),
        "{err:?}"
    );
}

/// A header whose name field holds `name` verbatim (the tar crate refuses to write `..`).
fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

#[test]
fn dotdot_and_absolute_paths_are_refused() {
    for name in [
        &b"../evil"[..],
        b"a/../../evil",
        b"/etc/passwd",
        b"./..",
        b"./",
    ] {
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, b"fine.txt", tar::EntryType::Regular, b"ok");
        raw_entry(&mut b, name, tar::EntryType::Regular, b"evil");
        let archive = b.into_inner().expect("finish");
        let mut seen = Vec::new();
        let err = for_each_file(&archive[..], &Limits::default(), |p, _| {
            seen.push(p.to_owned());
            Ok::<_, std::io::Error>(())
        })
        .expect_err("unsafe path");
        assert!(
            matches!(&err, TarError::UnsafePath { .. }),
            "{name:?}: {err:?}"
        );
        assert_eq!(
            seen,
            ["fine.txt"],
            "the unsafe entry never reaches the callback"
        );
    }
}

#[test]
fn links_specials_and_duplicates_are_refused() {
    for (kind, what) in [
        (tar::EntryType::Symlink, "symbolic link"),
        (tar::EntryType::Link, "hard link"),
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Fifo, "FIFO"),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, b"thing", kind, b"");
        let archive = b.into_inner().expect("finish");
        let err = unpack(&archive, &Limits::default()).expect_err("special");
        assert!(
            matches!(&err, TarError::Unsupported { path, kind } if path == "thing" && *kind == what),
            "{err:?}"
        );
    }
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, b"same", tar::EntryType::Regular, b"1");
    raw_entry(&mut b, b"./same", tar::EntryType::Regular, b"2");
    let archive = b.into_inner().expect("finish");
    let err = unpack(&archive, &Limits::default()).expect_err("duplicate");
    assert!(
        matches!(&err, TarError::Duplicate { path } if path == "same"),
        "{err:?}"
    );
}

#[test]
fn callback_errors_are_passed_with_the_path() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "x", b"1");
    let (archive, _) = pack(dir.path());
    let err =
        for_each_file(&archive[..], &Limits::default(), |_, _| Err("nope")).expect_err("callback");
    assert!(matches!(err, TarError::Callback { ref path, source: "nope" } if path == "x"));
}

#[test]
fn pack_then_encrypt_then_unpack() {
    use cdvm_blob::{BlobKey, DecryptReader, EncryptReader, NoncePrefix};
    let dir = tempfile::tempdir().expect("tmp");
    make_tree(dir.path());
    let (archive, _) = pack(dir.path());
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    let mut blob = Vec::new();
    EncryptReader::new(&key, &nonce, &archive[..])
        .read_to_end(&mut blob)
        .expect("encrypt");
    let reader = DecryptReader::new(&key, &nonce, &blob[..]);
    let mut n = 0;
    for_each_file(reader, &Limits::default(), |_, r| {
        std::io::copy(r, &mut std::io::sink())?;
        n += 1;
        Ok::<_, std::io::Error>(())
    })
    .expect("unpack through decryption");
    assert_eq!(n, 6);
}
