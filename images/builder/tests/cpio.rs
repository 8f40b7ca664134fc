//! The newc writer and the initramfs: determinism and format, checked by parsing back.

use std::io::Read;

use cdvm_image::cpio::{self, Archive, CpioError, Entry, EntryKind, StreamWriter, TRAILER};
use cdvm_image::initramfs::{self, ModuleFile};

fn sample(order: &[usize]) -> Archive {
    let dir = |path: &str, perm| Entry {
        path: path.into(),
        perm,
        kind: EntryKind::Dir,
    };
    let file = |path: &str, perm, data: &[u8]| Entry {
        path: path.into(),
        perm,
        kind: EntryKind::File(data.to_vec()),
    };
    let items = [
        dir("dev", 0o755),
        Entry {
            path: "dev/console".into(),
            perm: 0o600,
            kind: EntryKind::CharDev { major: 5, minor: 1 },
        },
        dir("lib", 0o755),
        dir("lib/modules", 0o755),
        file("init", 0o755, b"#!agent"),
        file("lib/modules/x.ko", 0o644, &[7u8; 5]),
        dir("tmp", 0o1777),
    ];
    let mut a = Archive::new();
    for &i in order {
        a.add(items[i].clone()).expect("add");
    }
    a
}

#[test]
fn same_entries_same_bytes_in_any_insertion_order() {
    let one = sample(&[0, 1, 2, 3, 4, 5, 6]).to_bytes().expect("write");
    let two = sample(&[6, 5, 4, 3, 2, 1, 0]).to_bytes().expect("write");
    let three = sample(&[4, 2, 6, 0, 5, 1, 3]).to_bytes().expect("write");
    assert_eq!(one, two);
    assert_eq!(one, three);
}

#[test]
fn parses_back_with_canonical_headers() {
    let bytes = sample(&[0, 1, 2, 3, 4, 5, 6]).to_bytes().expect("write");
    assert_eq!(bytes.len() % 4, 0);
    assert_eq!(&bytes[..6], b"070701");
    let entries = cpio::parse(&bytes).expect("parse");
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dev",
            "dev/console",
            "init",
            "lib",
            "lib/modules",
            "lib/modules/x.ko",
            "tmp",
            TRAILER
        ]
    );
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.mtime, 0, "{}", e.name);
        assert_eq!((e.uid, e.gid), (0, 0), "{}", e.name);
        if e.name != TRAILER {
            assert_eq!(
                e.ino as usize,
                i + 1,
                "inodes are numbered in archive order"
            );
        }
    }
    let by = |n: &str| entries.iter().find(|e| e.name == n).expect(n);
    assert!(by("dev").is_dir() && by("dev").perm() == 0o755 && by("dev").nlink == 2);
    assert!(by("dev/console").is_char_dev() && by("dev/console").rdev == (5, 1));
    assert_eq!(by("dev/console").perm(), 0o600);
    assert!(by("init").is_file() && by("init").perm() == 0o755);
    assert_eq!(by("init").data, b"#!agent");
    assert_eq!(by("init").nlink, 1);
    assert_eq!(by("lib/modules/x.ko").data, vec![7u8; 5]);
    assert_eq!(by("tmp").perm(), 0o1777);
    let trailer = entries.last().expect("trailer");
    assert_eq!((trailer.ino, trailer.mode, trailer.nlink), (0, 0, 1));
}

#[test]
fn header_layout_is_newc() {
    let mut a = Archive::new();
    a.add_file("init", 0o755, b"abc".to_vec()).expect("init");
    let bytes = a.to_bytes().expect("write");
    let header = std::str::from_utf8(&bytes[..110]).expect("ascii header");
    // magic, ino 1, mode 0100755, uid 0, gid 0, nlink 1, mtime 0, size 3, dev 0:0, rdev 0:0,
    // namesize 5 ("init\0"), check 0.
    let fields: Vec<&str> = (0..13).map(|i| &header[6 + 8 * i..14 + 8 * i]).collect();
    assert_eq!(&header[..6], "070701");
    assert_eq!(
        fields,
        [
            "00000001", "000081ED", "00000000", "00000000", "00000001", "00000000", "00000003",
            "00000000", "00000000", "00000000", "00000000", "00000005", "00000000"
        ]
    );
    // Name at 110..115, padded to 116; data at 116..119, padded to 120; then the trailer.
    assert_eq!(&bytes[110..116], b"init\0\0");
    assert_eq!(&bytes[116..120], b"abc\0");
    assert_eq!(&bytes[120..126], b"070701");
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn modules() -> Vec<ModuleFile> {
    vec![
        ModuleFile {
            file_name: "virtio_ring.ko".into(),
            depends: vec![],
            data: b"\x7fELF ring".to_vec(),
        },
        ModuleFile {
            file_name: "sev-guest.ko".into(),
            depends: vec!["virtio_ring.ko".into()],
            data: b"\x7fELF sev".to_vec(),
        },
    ]
}

#[test]
fn initramfs_is_deterministic_and_complete() {
    let agent = b"\x7fELF the agent".repeat(1000);
    let one = initramfs::build(&agent, &modules()).expect("build");
    let two = initramfs::build(&agent, &modules()).expect("build");
    assert_eq!(one, two, "same inputs, same bytes");

    // gzip header: magic, deflate, no flags (no name), mtime 0, XFL 0, OS 3.
    assert_eq!(&one[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

    let entries = cpio::parse(&gunzip(&one)).expect("parse");
    let by = |n: &str| entries.iter().find(|e| e.name == n);
    let init = by("init").expect("/init");
    assert_eq!(init.data, agent);
    assert_eq!(init.perm(), 0o755);
    for d in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "etc",
        "lib",
        "lib/modules",
        "lib/modules/cdvm",
    ] {
        assert!(by(d).is_some_and(|e| e.is_dir()), "{d}");
    }
    assert_eq!(
        by("etc/cdvm-release").expect("release file").data,
        initramfs::RELEASE
    );
    assert_eq!(
        by("lib/modules/cdvm/load-order").expect("load-order").data,
        b"virtio_ring.ko\nsev-guest.ko virtio_ring.ko\n",
        "load-order keeps the given order, each line with its dependencies"
    );
    assert_eq!(
        by("lib/modules/cdvm/sev-guest.ko").expect("module").data,
        b"\x7fELF sev"
    );
    assert!(by("lib/modules/cdvm/sev-guest.ko").is_some_and(|e| e.perm() == 0o644));

    // Any change in an input changes the output.
    let other = initramfs::build(b"another agent", &modules()).expect("build");
    assert_ne!(one, other);
}

#[test]
fn initramfs_refuses_a_dependency_that_is_not_loaded_earlier() {
    // The same dependency, given after the module that needs it or not given at all.
    let mut m = modules();
    m.swap(0, 1);
    assert!(matches!(
        initramfs::build(b"agent", &m),
        Err(initramfs::InitramfsError::BadModuleDep { .. })
    ));
    let mut m = modules();
    m[1].depends = vec!["virtio.ko".into()];
    assert!(initramfs::build(b"agent", &m).is_err());
    assert!(initramfs::build(b"agent", &modules()).is_ok());
}

#[test]
fn initramfs_refuses_odd_module_names() {
    for bad in ["../x.ko", "x.o", ".ko", "a/b.ko", "a b.ko"] {
        let m = vec![ModuleFile {
            file_name: bad.into(),
            depends: vec![],
            data: vec![],
        }];
        assert!(initramfs::build(b"agent", &m).is_err(), "{bad}");
    }
}

#[test]
fn stream_writer_writes_what_archive_writes() {
    let big: Vec<u8> = (0..70_001u32).map(|i| (i % 251) as u8).collect();
    let mut a = Archive::new();
    a.add_dir("models", 0o755).expect("dir");
    a.add_file("models/a.gguf", 0o444, big.clone())
        .expect("file");
    a.add_file("models/b", 0o444, vec![]).expect("empty file");
    a.add_file("models/models.json", 0o444, b"{}".to_vec())
        .expect("file");
    let expected = a.to_bytes().expect("write");

    let mut w = StreamWriter::new(Vec::new());
    w.add_dir("models", 0o755).expect("dir");
    w.add_file_from(
        "models/a.gguf",
        0o444,
        big.len() as u64,
        &mut big.as_slice(),
    )
    .expect("file");
    w.add_file_from("models/b", 0o444, 0, &mut std::io::empty())
        .expect("empty file");
    // A reader with more than `size` bytes: only `size` are taken.
    w.add_file_from("models/models.json", 0o444, 2, &mut &b"{}junk"[..])
        .expect("file");
    let written = w.written();
    let streamed = w.finish().expect("finish");
    assert_eq!(streamed, expected);
    assert_eq!(streamed.len() % 4, 0);
    assert!(
        written < streamed.len() as u64,
        "written() counts up to the trailer"
    );

    let (entries, used) = cpio::parse_prefix(&streamed).expect("parse");
    assert_eq!(used, streamed.len());
    assert_eq!(entries.len(), 5);
    // parse_prefix stops after the trailer's padding; what follows is not its business.
    let mut two = streamed.clone();
    two.extend_from_slice(b"\x1f\x8bmore");
    let (_, used) = cpio::parse_prefix(&two).expect("parse");
    assert_eq!(used, streamed.len());
    assert!(cpio::parse(&two).is_err(), "parse wants only padding after");
}

#[test]
fn stream_writer_keeps_the_canonical_order() {
    let mut w = StreamWriter::new(Vec::new());
    assert!(matches!(
        w.add_file_from("models/x", 0o444, 0, &mut std::io::empty()),
        Err(CpioError::MissingParent { .. })
    ));
    w.add_dir("models", 0o755).expect("dir");
    w.add_file_from("models/b", 0o444, 0, &mut std::io::empty())
        .expect("b");
    assert!(matches!(
        w.add_file_from("models/a", 0o444, 0, &mut std::io::empty()),
        Err(CpioError::OutOfOrder { .. })
    ));
    assert!(matches!(
        w.add_file_from("models/b", 0o444, 0, &mut std::io::empty()),
        Err(CpioError::Duplicate(_))
    ));
    assert!(matches!(
        w.add_file_from("models/../c", 0o444, 0, &mut std::io::empty()),
        Err(CpioError::InvalidPath(_))
    ));
    assert!(matches!(
        w.add_file_from("models/c", 0o444, 10, &mut &b"short"[..]),
        Err(CpioError::ShortData {
            expected: 10,
            got: 5,
            ..
        })
    ));
    assert!(matches!(
        w.add_file_from("models/d", 0o444, 1 << 32, &mut std::io::empty()),
        Err(CpioError::TooLarge(_))
    ));
}
