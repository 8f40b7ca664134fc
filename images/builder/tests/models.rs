//! The models in the image: `--models DIR` checked against its `models.json`, written as an
//! uncompressed newc archive ahead of the gzip one, and read back the way the kernel walks a
//! concatenated initrd. Small fake model files only.

use std::path::Path;

use cdvm_image::cpio::{ParsedEntry, TRAILER};
use cdvm_image::deb;
use cdvm_image::initramfs::{self, ModuleFile};
use cdvm_image::manifest::{
    AgentInput, FileRecord, InitrdInfo, Inputs, Manifest, Modules, PackageInput, SnpInfo, FORMAT,
};
use cdvm_image::models::{ModelSet, ModelsError};
use cdvm_image::recipe::{self, InputKey, CMDLINE, INITRD};

/// Stand-ins for the pinned OVMF and stub packages' and the lock's hashes.
const OVMF_SHA: &str = "0f";
const STUB_SHA: &str = "5b";
const LOCK_SHA: &str = "1c";

fn lock_input() -> Option<cdvm_image::manifest::FileInput> {
    Some(cdvm_image::manifest::FileInput {
        path: "images/inputs.lock".into(),
        sha256: LOCK_SHA.into(),
    })
}

/// A generator of 1,001 bytes (not a multiple of 4: the data needs padding) and an embedder of
/// 6 bytes.
fn gen_bytes() -> Vec<u8> {
    (0..1001u32).map(|i| (i * 7 + 3) as u8).collect()
}
const EMB: &[u8] = b"GGUF\x03e";

fn manifest_json(entries: &[(&str, &str, &str)]) -> String {
    let models: Vec<serde_json::Value> = entries
        .iter()
        .map(|(name, file, sha)| {
            serde_json::json!({
                "name": name, "role": "generator", "file": file, "sha256": sha,
                "license": "Apache-2.0", "context_length": 2048,
                "price_unit": "generated token", "source": "a test",
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "v": 1, "models": models })).expect("json")
}

/// A model directory with `gen.gguf` and `emb.gguf` listed, and an unlisted `notes.txt`.
fn model_dir(dir: &Path) {
    std::fs::write(dir.join("gen.gguf"), gen_bytes()).expect("write");
    std::fs::write(dir.join("emb.gguf"), EMB).expect("write");
    std::fs::write(dir.join("notes.txt"), b"not listed").expect("write");
    let json = manifest_json(&[
        ("tiny-gen", "gen.gguf", &deb::sha256_hex(&gen_bytes())),
        ("tiny-emb", "emb.gguf", &deb::sha256_hex(EMB)),
    ]);
    std::fs::write(dir.join("models.json"), json).expect("write");
}

fn main_archive() -> Vec<u8> {
    let modules = vec![ModuleFile {
        file_name: "sev-guest.ko".into(),
        depends: vec![],
        data: b"\x7fELF sev".to_vec(),
    }];
    initramfs::build(b"\x7fELF the agent", &modules).expect("main archive")
}

fn initrd(models: &ModelSet, gz: &[u8]) -> (Vec<u8>, initramfs::InitrdWritten) {
    initramfs::write_initrd(Vec::new(), Some(models), gz).expect("write initrd")
}

fn by<'a>(entries: &'a [ParsedEntry], name: &str) -> &'a ParsedEntry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn initrd_is_the_models_archive_then_the_gzip_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    model_dir(dir.path());
    let set = ModelSet::load(dir.path()).expect("load");
    let gz = main_archive();
    let (bytes, written) = initrd(&set, &gz);

    let segments = initramfs::unpack(&bytes).expect("the kernel's walk accepts it");
    assert_eq!(segments.len(), 2, "two archives");
    let (models, main) = (&segments[0], &segments[1]);

    // First: uncompressed, at offset 0, a multiple of 4 long, exactly /models and what the
    // manifest lists (not notes.txt), sorted, with the canonical header fields.
    assert!(!models.gzip);
    assert_eq!(models.offset, 0);
    assert_eq!(models.len % 4, 0);
    assert_eq!(&bytes[..6], b"070701");
    let names: Vec<&str> = models.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "models",
            "models/emb.gguf",
            "models/gen.gguf",
            "models/models.json",
            TRAILER
        ]
    );
    let d = by(&models.entries, "models");
    assert!(d.is_dir() && d.perm() == 0o755 && d.nlink == 2);
    for (name, data) in [
        ("models/gen.gguf", gen_bytes()),
        ("models/emb.gguf", EMB.to_vec()),
        (
            "models/models.json",
            std::fs::read(dir.path().join("models.json")).expect("read"),
        ),
    ] {
        let e = by(&models.entries, name);
        assert!(e.is_file(), "{name}");
        assert_eq!(e.perm(), 0o444, "{name}");
        assert_eq!(e.nlink, 1, "{name}");
        assert!(e.data == data, "{name}: contents");
    }
    for (i, e) in models.entries.iter().enumerate() {
        assert_eq!((e.mtime, e.uid, e.gid), (0, 0, 0), "{}", e.name);
        if e.name != TRAILER {
            assert_eq!(e.ino as usize, i + 1, "{}", e.name);
        }
    }

    // Then: the gzip archive, byte for byte, right after; it holds /init and no /models.
    assert!(main.gzip);
    assert_eq!(main.offset, models.len);
    assert_eq!(main.len, gz.len());
    assert!(bytes[models.len..] == gz[..]);
    assert!(by(&main.entries, "init").is_file());
    assert!(by(&main.entries, "lib/modules/cdvm/sev-guest.ko").is_file());
    assert!(!main.entries.iter().any(|e| e.name.starts_with("models")));

    // What write_initrd reports is what it wrote.
    assert_eq!(
        written.initrd,
        FileRecord {
            sha256: deb::sha256_hex(&bytes),
            size: bytes.len() as u64
        }
    );
    assert_eq!(
        written.models_cpio,
        Some(FileRecord {
            sha256: deb::sha256_hex(&bytes[..models.len]),
            size: models.len as u64
        })
    );

    // The manifest's record of the models.
    let input = set.input();
    assert_eq!(
        input.manifest_sha256,
        deb::sha256_hex(&std::fs::read(dir.path().join("models.json")).expect("read"))
    );
    let recorded: Vec<(&str, &str, u64)> = input
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.file.as_str(), m.size))
        .collect();
    assert_eq!(
        recorded,
        [("tiny-gen", "gen.gguf", 1001), ("tiny-emb", "emb.gguf", 6)],
        "in the manifest's order"
    );
    assert_eq!(input.models[0].sha256, deb::sha256_hex(&gen_bytes()));
}

#[test]
fn without_models_the_initrd_is_the_gzip_archive_alone() {
    let gz = main_archive();
    let (bytes, written) = initramfs::write_initrd(Vec::new(), None, &gz).expect("write");
    assert_eq!(bytes, gz);
    assert_eq!(written.models_cpio, None);
    let segments = initramfs::unpack(&bytes).expect("unpack");
    assert_eq!(segments.len(), 1);
    assert!(segments[0].gzip);
}

#[test]
fn same_models_same_bytes_wherever_they_are() {
    let one = tempfile::tempdir().expect("tempdir");
    let two = tempfile::tempdir().expect("tempdir");
    model_dir(one.path());
    model_dir(two.path());
    let gz = main_archive();
    let a = initrd(&ModelSet::load(one.path()).expect("load"), &gz).0;
    let b = initrd(&ModelSet::load(one.path()).expect("load"), &gz).0;
    let c = initrd(&ModelSet::load(two.path()).expect("load"), &gz).0;
    assert_eq!(a, b, "two builds, same bytes");
    assert_eq!(a, c, "the directory's path is not in the image");

    // A changed model (with a manifest that matches it) changes the image.
    std::fs::write(two.path().join("emb.gguf"), b"GGUF\x03f").expect("write");
    let json = manifest_json(&[
        ("tiny-gen", "gen.gguf", &deb::sha256_hex(&gen_bytes())),
        ("tiny-emb", "emb.gguf", &deb::sha256_hex(b"GGUF\x03f")),
    ]);
    std::fs::write(two.path().join("models.json"), json).expect("write");
    let d = initrd(&ModelSet::load(two.path()).expect("load"), &gz).0;
    assert_ne!(a, d);
}

#[test]
fn a_tampered_model_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    model_dir(dir.path());
    let mut bytes = gen_bytes();
    bytes[500] ^= 1;
    std::fs::write(dir.path().join("gen.gguf"), &bytes).expect("write");
    match ModelSet::load(dir.path()) {
        Err(ModelsError::HashMismatch {
            name,
            actual,
            expected,
            ..
        }) => {
            assert_eq!(name, "tiny-gen");
            assert_eq!(actual, deb::sha256_hex(&bytes));
            assert_eq!(expected, deb::sha256_hex(&gen_bytes()));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
}

#[test]
fn a_model_changed_after_the_check_fails_the_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    model_dir(dir.path());
    let set = ModelSet::load(dir.path()).expect("load");
    let gz = main_archive();
    // Same size, other bytes.
    std::fs::write(dir.path().join("emb.gguf"), b"GGUF\x03X").expect("write");
    assert!(matches!(
        initramfs::write_initrd(Vec::new(), Some(&set), &gz),
        Err(initramfs::InitramfsError::Models(
            ModelsError::Changed { .. }
        ))
    ));
    // Shorter.
    std::fs::write(dir.path().join("emb.gguf"), b"GG").expect("write");
    assert!(matches!(
        initramfs::write_initrd(Vec::new(), Some(&set), &gz),
        Err(initramfs::InitramfsError::Models(
            ModelsError::Changed { .. }
        ))
    ));
}

#[test]
fn file_names_that_are_not_plain_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("models");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::create_dir(dir.join("sub")).expect("mkdir");
    // Files that exist and hash right: only the name is wrong.
    let evil = b"evil";
    let sha = deb::sha256_hex(evil);
    std::fs::write(root.path().join("evil.gguf"), evil).expect("write");
    std::fs::write(dir.join("sub/evil.gguf"), evil).expect("write");
    std::fs::write(dir.join(".evil.gguf"), evil).expect("write");
    let abs = root.path().join("evil.gguf").display().to_string();
    for file in [
        "../evil.gguf",
        abs.as_str(),
        "sub/evil.gguf",
        ".evil.gguf",
        "..",
        ".",
        "",
        "models.json",
    ] {
        std::fs::write(dir.join("models.json"), manifest_json(&[("m", file, &sha)]))
            .expect("write");
        match ModelSet::load(&dir) {
            Err(ModelsError::BadFileName { file: f, .. }) => assert_eq!(f, file),
            other => panic!("{file:?}: expected BadFileName, got {other:?}"),
        }
    }
}

#[test]
fn other_manifest_faults_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    model_dir(dir.path());
    let sha = deb::sha256_hex(EMB);
    let write = |json: String| std::fs::write(dir.path().join("models.json"), json).expect("w");

    write(manifest_json(&[("m", "absent.gguf", &sha)]));
    assert!(matches!(
        ModelSet::load(dir.path()),
        Err(ModelsError::Missing { .. })
    ));

    write(manifest_json(&[("m", "emb.gguf", &sha.to_uppercase())]));
    assert!(matches!(
        ModelSet::load(dir.path()),
        Err(ModelsError::Manifest { .. })
    ));

    write(manifest_json(&[
        ("a", "emb.gguf", &sha),
        ("b", "emb.gguf", &sha),
    ]));
    assert!(matches!(
        ModelSet::load(dir.path()),
        Err(ModelsError::Manifest { .. })
    ));

    write(manifest_json(&[
        ("a", "emb.gguf", &sha),
        ("a", "gen.gguf", &sha),
    ]));
    assert!(matches!(
        ModelSet::load(dir.path()),
        Err(ModelsError::Manifest { .. })
    ));

    write(manifest_json(&[]));
    assert!(matches!(
        ModelSet::load(dir.path()),
        Err(ModelsError::Manifest { .. })
    ));

    write(manifest_json(&[("m", "emb.gguf", &sha)]).replace("\"v\": 1", "\"v\": 2"));
    assert!(matches!(
        ModelSet::load(dir.path()),
        Err(ModelsError::Manifest { .. })
    ));

    std::fs::create_dir(dir.path().join("adir.gguf")).expect("mkdir");
    write(manifest_json(&[("m", "adir.gguf", &sha)]));
    assert!(matches!(
        ModelSet::load(dir.path()),
        Err(ModelsError::NotAFile { .. })
    ));

    std::fs::remove_file(dir.path().join("models.json")).expect("rm");
    assert!(matches!(
        ModelSet::load(dir.path()),
        Err(ModelsError::Io { .. })
    ));
}

#[test]
fn the_other_order_needs_alignment_the_gzip_stream_does_not_give() {
    // gzip first, then the uncompressed archive: the kernel takes an uncompressed archive only
    // at a 4-byte aligned offset from the end of the compressed one, so this order works only
    // when the gzip stream's length happens to be a multiple of 4 (or with NUL padding). The
    // models archive goes first so that nothing depends on that.
    let dir = tempfile::tempdir().expect("tempdir");
    model_dir(dir.path());
    let set = ModelSet::load(dir.path()).expect("load");
    let models = set.write_archive(Vec::new()).expect("models archive");
    let gz = (0..64)
        .map(|n| {
            let agent = vec![b'a'; n];
            initramfs::build(&agent, &[]).expect("build")
        })
        .find(|gz| gz.len() % 4 != 0)
        .expect("an unaligned gzip stream");
    let mut reversed = gz.clone();
    reversed.extend_from_slice(&models);
    assert!(initramfs::unpack(&reversed).is_err());
    // NUL padding to 4 bytes makes it acceptable; ours needs none.
    let mut padded = gz.clone();
    padded.resize(gz.len().next_multiple_of(4), 0);
    padded.extend_from_slice(&models);
    assert_eq!(initramfs::unpack(&padded).expect("padded").len(), 2);
    let mut ours = models.clone();
    ours.extend_from_slice(&gz);
    assert_eq!(initramfs::unpack(&ours).expect("ours").len(), 2);
}

#[test]
fn unpack_refuses_a_truncated_or_trailing_junk_initrd() {
    let dir = tempfile::tempdir().expect("tempdir");
    model_dir(dir.path());
    let (bytes, _) = initrd(&ModelSet::load(dir.path()).expect("load"), &main_archive());
    assert!(initramfs::unpack(&bytes[..bytes.len() - 9]).is_err());
    assert!(initramfs::unpack(&bytes[..200]).is_err());
    let mut junk = bytes.clone();
    junk.push(b'x');
    assert!(initramfs::unpack(&junk).is_err());
    let mut zeros = bytes.clone();
    zeros.extend_from_slice(&[0; 7]);
    assert_eq!(initramfs::unpack(&zeros).expect("NUL padding").len(), 2);
}

fn manifest(models: Option<cdvm_image::manifest::ModelsInput>) -> Manifest {
    let pkg = |name: &str, sha: &str| PackageInput {
        package: name.into(),
        version: "1".into(),
        path: format!("{name}.deb"),
        sha256: sha.into(),
        size: 1,
    };
    Manifest {
        format: FORMAT,
        builder: "cdvm-image test".into(),
        inputs: Inputs {
            kernel_deb: pkg("linux-image", "kk"),
            ovmf_deb: pkg("ovmf-amdsev", OVMF_SHA),
            agent: AgentInput {
                path: "cdvm-agent".into(),
                version: "0.1.0".into(),
                build: recipe::AGENT_BUILD.into(),
                sha256: "aa".into(),
                size: 1,
            },
            base_policy: None,
            models,
            stub_deb: Some(pkg("systemd-boot-efi", STUB_SHA)),
            lock: lock_input(),
        },
        kernel_release: "6.12".into(),
        cmdline: CMDLINE.into(),
        modules: Modules {
            dep_source: String::new(),
            wanted: vec![],
            builtin: vec![],
            load_order: vec![],
        },
        initrd: InitrdInfo {
            format: String::new(),
            cpio_sha256: String::new(),
            cpio_size: 0,
            models_cpio: None,
        },
        outputs: [(
            INITRD.to_string(),
            FileRecord {
                sha256: String::new(),
                size: 0,
            },
        )]
        .into(),
        snp: SnpInfo {
            method: String::new(),
            vmm: String::new(),
            guest_features: String::new(),
            ovmf_hash: String::new(),
            digests: vec![],
        },
        uefi: Some(cdvm_image::manifest::UefiInfo {
            stub: cdvm_image::uki::STUB_IN_DEB.into(),
            stub_sha256: String::new(),
            os_release: cdvm_image::uki::os_release("0.1.0"),
            uki_sections: vec![],
            disk: cdvm_image::manifest::DiskInfo {
                table: String::new(),
                disk_guid: String::new(),
                esp_guid: String::new(),
                esp_first_lba: 2048,
                esp_sectors: 0,
                esp_volume_id: String::new(),
                esp_cluster_bytes: 0,
                uki_offset: 0,
            },
            expected: cdvm_image::expected::UefiExpected {
                authenticode_sha256: String::new(),
                authenticode_sha384: String::new(),
                kernel_authenticode_sha256: String::new(),
                pcr4: String::new(),
                pcr11: String::new(),
                pcr12: String::new(),
            },
        }),
    }
}

#[test]
fn a_changed_model_makes_the_image_out_of_date() {
    let dir = tempfile::tempdir().expect("tempdir");
    model_dir(dir.path());
    let input = ModelSet::load(dir.path()).expect("load").input();
    let key = |models| InputKey {
        builder: "cdvm-image test".into(),
        kernel_sha256: "kk".into(),
        ovmf_sha256: OVMF_SHA.into(),
        stub_sha256: STUB_SHA.into(),
        lock: lock_input(),
        agent_sha256: "aa".into(),
        agent_version: "0.1.0".into(),
        base_policy: None,
        models,
    };
    let old = manifest(Some(input.clone()));
    assert!(key(Some(input.clone())).matches(&old), "same inputs");

    // The same models read from elsewhere: still up to date.
    let mut moved = input.clone();
    moved.path = "/elsewhere/models".into();
    assert!(key(Some(moved)).matches(&old));

    // A model's hash, a model's size, the manifest's hash, or models added or dropped: rebuild.
    let mut changed = input.clone();
    changed.models[1].sha256 = "00".repeat(32);
    assert!(!key(Some(changed)).matches(&old));
    let mut resized = input.clone();
    resized.models[0].size += 1;
    assert!(!key(Some(resized)).matches(&old));
    let mut manifest_changed = input.clone();
    manifest_changed.manifest_sha256 = "11".repeat(32);
    assert!(!key(Some(manifest_changed)).matches(&old));
    assert!(!key(None).matches(&old));
    assert!(!key(Some(input.clone())).matches(&manifest(None)));

    // An image manifest from before models (no `models` field, format 2) parses, and is out of
    // date.
    let mut json: serde_json::Value =
        serde_json::from_str(&manifest(None).to_json().expect("json")).expect("value");
    json["inputs"]
        .as_object_mut()
        .expect("inputs")
        .remove("models");
    json["initrd"]
        .as_object_mut()
        .expect("initrd")
        .remove("models_cpio");
    json["format"] = 2.into();
    let older = Manifest::from_json(&json.to_string()).expect("parses");
    assert_eq!(older.inputs.models, None);
    assert!(!key(None).matches(&older));
}

#[test]
fn a_missing_or_other_stub_package_or_os_release_makes_the_image_out_of_date() {
    let key = InputKey {
        builder: "cdvm-image test".into(),
        kernel_sha256: "kk".into(),
        ovmf_sha256: OVMF_SHA.into(),
        stub_sha256: STUB_SHA.into(),
        lock: lock_input(),
        agent_sha256: "aa".into(),
        agent_version: "0.1.0".into(),
        base_policy: None,
        models: None,
    };
    let current = manifest(None);
    assert!(key.matches(&current), "the pinned stub: up to date");
    // Built before the UKI (no stub recorded), or from another stub: rebuild.
    let mut before = current.clone();
    before.inputs.stub_deb = None;
    assert!(!key.matches(&before));
    let mut other = current.clone();
    if let Some(stub) = other.inputs.stub_deb.as_mut() {
        stub.sha256 = "00".repeat(32);
    }
    assert!(!key.matches(&other));
    // A UKI whose os-release is not today's text (another version, or an older builder).
    let mut osrel = current.clone();
    if let Some(u) = osrel.uefi.as_mut() {
        u.os_release = cdvm_image::uki::os_release("0.0.9");
    }
    assert!(!key.matches(&osrel));
    let mut no_uefi = current.clone();
    no_uefi.uefi = None;
    assert!(!key.matches(&no_uefi));
    // The same lock read from elsewhere: still up to date.
    let mut moved_lock = current.clone();
    if let Some(l) = moved_lock.inputs.lock.as_mut() {
        l.path = "/elsewhere/inputs.lock".into();
    }
    assert!(key.matches(&moved_lock));
    // Checked against another input lock, or built before the lock: rebuild.
    let mut other_lock = current.clone();
    if let Some(l) = other_lock.inputs.lock.as_mut() {
        l.sha256 = "2d".into();
    }
    assert!(!key.matches(&other_lock));
    let mut no_lock = current;
    no_lock.inputs.lock = None;
    assert!(!key.matches(&no_lock));
}
