//! `images/inputs.lock`: the committed lock parses, is in its canonical form and agrees with what
//! the repository itself holds; a file that differs from its pin is refused with an error naming
//! the input (by the library, the build and the CLI the script uses); unknown fields are refused;
//! an update rewrites only the entry it names. No network, no cached packages needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cdvm_image::deb;
use cdvm_image::inputs::{self, Places};
use cdvm_image::lock::{deb_file_name, InputId, Lock, LockError, Update, LOCK_FILE};
use cdvm_image::recipe::{self, BuildConfig, BuildError};

fn lock_path() -> PathBuf {
    common::repo().join(LOCK_FILE)
}

fn lock_text() -> String {
    std::fs::read_to_string(lock_path()).unwrap()
}

fn parse(text: &str) -> Result<Lock, LockError> {
    Lock::parse(text, Path::new("test.lock"))
}

/// The lock's text with one JSON value replaced (`pointer` as in RFC 6901).
fn edited(pointer: &str, value: serde_json::Value) -> String {
    let mut json: serde_json::Value = serde_json::from_str(&lock_text()).unwrap();
    *json.pointer_mut(pointer).unwrap() = value;
    serde_json::to_string_pretty(&json).unwrap()
}

#[test]
fn the_committed_lock_parses_and_is_in_its_canonical_form() {
    let text = lock_text();
    let lock = parse(&text).expect("images/inputs.lock parses");
    // Byte for byte what an update would write: a re-pin changes only its entry's lines.
    assert_eq!(lock.to_text(), text, "images/inputs.lock is not canonical");
    for id in InputId::ALL {
        assert_eq!(InputId::parse(id.as_str()).unwrap(), id);
        assert_eq!(lock.sha256(id).len(), 64, "{id}");
    }
    assert!(matches!(
        InputId::parse("kernel-headers"),
        Err(LockError::UnknownId(_))
    ));
}

#[test]
fn the_lock_agrees_with_what_the_repository_holds() {
    let lock = common::lock();
    let repo = common::repo();
    // models.json as committed, and the OVMF package as committed (real hash, real control file).
    assert_eq!(
        deb::sha256_file(&repo.join(&lock.models.path)).unwrap(),
        lock.models.sha256,
        "images/models/models.json changed without a new pin (scripts/build-image --update-lock)"
    );
    let places = Places::under(&repo);
    let amdsev = places.path(&lock, InputId::OvmfAmdsev);
    assert_eq!(
        inputs::verify_deb(&lock, InputId::OvmfAmdsev, &amdsev).expect("committed OVMF"),
        lock.ovmf_amdsev.sha256
    );
    // Each wheel pin is the one models.json's `source` cites.
    let models = std::fs::read_to_string(repo.join(&lock.models.path)).unwrap();
    assert_eq!(lock.models.wheels.len(), 2);
    for w in &lock.models.wheels {
        assert!(
            models.contains(&format!(
                "{} {} (wheel sha256 {})",
                w.name, w.version, w.sha256
            )),
            "models.json does not cite wheel {} {} {}",
            w.name,
            w.version,
            w.sha256
        );
    }
    // The Debian file names are apt-get download's, and the kernel is the 6.12 series.
    for id in InputId::DEBIAN {
        let p = lock.debian(id).unwrap();
        assert_eq!(
            p.file,
            deb_file_name(&p.package, &p.version, &p.arch),
            "{id}"
        );
    }
    assert!(lock.kernel.package.starts_with("linux-image-6.12."));
    // The stub and firmware paths the tests extract are the lock's, never /usr/share/OVMF.
    let boot = std::fs::read_to_string(repo.join("images/builder/tests/uefi_boot.rs")).unwrap();
    assert!(!boot.contains("\"/usr/share/OVMF"));
}

#[test]
fn unknown_fields_and_malformed_pins_are_refused() {
    assert!(parse(&lock_text()).is_ok(), "the committed lock parses");
    // An unknown field at the top and inside an entry (a typo must not drop a pin).
    let mut json: serde_json::Value = serde_json::from_str(&lock_text()).unwrap();
    json["kernels"] = serde_json::json!({});
    let err = parse(&json.to_string()).unwrap_err();
    assert!(matches!(err, LockError::Parse { .. }), "{err}");
    let mut json: serde_json::Value = serde_json::from_str(&lock_text()).unwrap();
    json["kernel"]["sha512"] = "00".into();
    assert!(matches!(
        parse(&json.to_string()),
        Err(LockError::Parse { .. })
    ));
    // A missing entry.
    let mut json: serde_json::Value = serde_json::from_str(&lock_text()).unwrap();
    json.as_object_mut().unwrap().remove("ovmf");
    assert!(matches!(
        parse(&json.to_string()),
        Err(LockError::Parse { .. })
    ));
    // Values: hash, file name, whitespace, paths, format version.
    let cases = [
        ("/kernel/sha256", serde_json::json!("5E52")),
        ("/efi-stub/file", serde_json::json!("systemd-boot-efi.deb")),
        ("/ovmf/version", serde_json::json!("2022.11 6")),
        (
            "/ovmf-amdsev/path",
            serde_json::json!("../firmware/ovmf.deb"),
        ),
        ("/models/path", serde_json::json!("/etc/models.json")),
        ("/models/wheels/0/sha256", serde_json::json!("")),
    ];
    for (pointer, value) in cases {
        let err = parse(&edited(pointer, value)).unwrap_err();
        assert!(matches!(err, LockError::Invalid { .. }), "{pointer}: {err}");
    }
    assert!(matches!(
        parse(&edited("/v", 2.into())),
        Err(LockError::Version { found: 2 })
    ));
}

#[test]
fn a_file_that_differs_from_its_pin_is_refused_naming_the_input() {
    let lock = common::lock();
    let repo = common::repo();
    let amdsev = repo.join(&lock.ovmf_amdsev.path);
    assert!(inputs::verify_deb(&lock, InputId::OvmfAmdsev, &amdsev).is_ok());

    // A copy of the lock whose ovmf-amdsev hash is another one.
    let mut other = lock.clone();
    other.ovmf_amdsev.sha256 = "ab".repeat(32);
    let err = inputs::verify_deb(&other, InputId::OvmfAmdsev, &amdsev).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(
        err,
        LockError::Mismatch {
            id: InputId::OvmfAmdsev,
            ..
        }
    ));
    for part in [
        "input ovmf-amdsev",
        &"ab".repeat(32),
        &lock.ovmf_amdsev.sha256,
        "images/inputs.lock",
        "git checkout",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }

    // The right hash but another package's name (a hand-edited lock).
    let mut renamed = lock.clone();
    renamed.ovmf_amdsev.version = "2026.09+ds-1".into();
    let err = inputs::verify_deb(&renamed, InputId::OvmfAmdsev, &amdsev).unwrap_err();
    assert!(
        matches!(
            err,
            LockError::Package {
                field: "Version",
                ..
            }
        ),
        "{err}"
    );

    // A cached Debian package that is not the pinned one, and one that is missing.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join(&lock.kernel.file);
    std::fs::write(&fake, b"not the kernel").unwrap();
    let err = inputs::verify_deb(&lock, InputId::Kernel, &fake).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(
        err,
        LockError::Mismatch {
            id: InputId::Kernel,
            ..
        }
    ));
    assert!(
        msg.contains("input kernel") && msg.contains("--update-lock"),
        "{msg}"
    );
    let err =
        inputs::verify_deb(&lock, InputId::EfiStub, &dir.path().join("none.deb")).unwrap_err();
    assert!(
        matches!(
            err,
            LockError::Missing {
                id: InputId::EfiStub,
                ..
            }
        ),
        "{err}"
    );

    // A model directory whose models.json is not the pinned one.
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::copy(repo.join(&lock.models.path), models.join("models.json")).unwrap();
    assert!(inputs::verify_models(&lock, &models).is_ok());
    std::fs::write(models.join("models.json"), b"{\"v\": 1, \"models\": []}").unwrap();
    let err = inputs::verify_models(&lock, &models).unwrap_err();
    assert!(matches!(
        err,
        LockError::Mismatch {
            id: InputId::Models,
            ..
        }
    ));
    assert!(err.to_string().contains("scripts/fetch-models"));
}

#[test]
fn check_all_lists_what_is_missing_and_what_differs() {
    let lock = common::lock();
    let dir = tempfile::tempdir().unwrap();
    let places = Places {
        repo: common::repo(),
        cache: dir.path().join("cache"),
        models: dir.path().join("models"),
    };
    std::fs::create_dir_all(&places.cache).unwrap();
    std::fs::write(places.cache.join(&lock.efi_stub.file), b"other bytes").unwrap();
    let checked = inputs::check_all(&lock, &places);
    let state = |id| checked.iter().find(|c| c.id == id).unwrap();
    assert_eq!(checked.len(), InputId::ALL.len());
    assert!(state(InputId::Kernel).missing && state(InputId::Ovmf).missing);
    let stub = state(InputId::EfiStub);
    assert!(!stub.missing && stub.result.as_ref().unwrap_err().contains("input efi-stub"));
    // The committed firmware is there whatever the cache holds.
    assert!(state(InputId::OvmfAmdsev).result.is_ok());
    assert!(state(InputId::Models).missing);
}

#[test]
fn a_build_with_an_input_that_differs_from_the_lock_stops_before_reading_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let lock = common::lock();
    let kernel = dir.path().join(&lock.kernel.file);
    std::fs::write(&kernel, b"a kernel package from elsewhere").unwrap();
    let cfg = BuildConfig {
        kernel_deb: kernel,
        ovmf_deb: common::repo().join(&lock.ovmf_amdsev.path),
        stub_deb: dir.path().join("stub.deb"),
        lock: lock_path(),
        agent: dir.path().join("no-agent"),
        agent_version: "0.0.0".into(),
        out_dir: dir.path().join("out"),
        base_policy: None,
        policy_out: None,
        models: None,
        force: true,
    };
    let err = recipe::build(&cfg, &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Lock(LockError::Mismatch {
                id: InputId::Kernel,
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&lock.kernel.sha256));
    // The same build against a lock that cannot be read says so (not a missing input).
    let cfg = BuildConfig {
        lock: dir.path().join("inputs.lock"),
        ..cfg
    };
    let err = recipe::build(&cfg, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, BuildError::Lock(LockError::Io { .. })),
        "{err}"
    );
}

/// The lines of `after` that differ from `before` (same line count expected).
fn changed_lines(before: &str, after: &str) -> Vec<String> {
    let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    assert_eq!(b.len(), a.len(), "an update added or removed lines");
    b.iter()
        .zip(&a)
        .filter(|(x, y)| x != y)
        .map(|(_, y)| y.trim().to_string())
        .collect()
}

#[test]
fn an_update_rewrites_only_the_named_entry() {
    let before = lock_text();
    let mut lock = parse(&before).unwrap();
    let repo = common::repo();
    let new_sha = "cd".repeat(32);
    lock.update(
        InputId::Kernel,
        &Update {
            package: Some("linux-image-6.12.99+deb12-amd64".into()),
            version: Some("6.12.99-1~bpo12+1".into()),
            sha256: Some(new_sha.clone()),
            path: None,
        },
        &repo,
    )
    .unwrap();
    let after = lock.to_text();
    assert_eq!(
        parse(&after).unwrap(),
        lock,
        "the rewritten lock reads back"
    );
    assert_eq!(
        changed_lines(&before, &after),
        [
            "\"package\": \"linux-image-6.12.99+deb12-amd64\",",
            "\"version\": \"6.12.99-1~bpo12+1\",",
            "\"file\": \"linux-image-6.12.99+deb12-amd64_6.12.99-1~bpo12+1_amd64.deb\",",
            &format!("\"sha256\": \"{new_sha}\","),
        ]
    );
    let old = parse(&before).unwrap();
    assert_eq!((&lock.efi_stub, &lock.ovmf), (&old.efi_stub, &old.ovmf));
    assert_eq!(
        (&lock.ovmf_amdsev, &lock.models),
        (&old.ovmf_amdsev, &old.models)
    );

    // Re-hashing committed files that did not change changes nothing.
    let mut same = old.clone();
    for id in [InputId::OvmfAmdsev, InputId::Models] {
        same.update(id, &Update::default(), &repo).unwrap();
    }
    assert_eq!(same.to_text(), before);

    // Updates that do not fit the entry are refused, and leave a bad pin out.
    let mut refused = old.clone();
    let version_only = Update {
        version: Some("1".into()),
        ..Update::default()
    };
    assert!(matches!(
        refused.update(InputId::Ovmf, &version_only, &repo),
        Err(LockError::Update {
            id: InputId::Ovmf,
            ..
        })
    ));
    let with_path = Update {
        version: Some("1".into()),
        sha256: Some("ab".repeat(32)),
        path: Some("x.deb".into()),
        ..Update::default()
    };
    assert!(refused.update(InputId::EfiStub, &with_path, &repo).is_err());
    assert!(refused
        .update(InputId::Models, &version_only, &repo)
        .is_err());
    let bad_sha = Update {
        version: Some("1".into()),
        sha256: Some("XYZ".into()),
        ..Update::default()
    };
    assert!(matches!(
        refused.update(InputId::EfiStub, &bad_sha, &repo),
        Err(LockError::Invalid {
            field: "sha256",
            ..
        })
    ));
}

fn cdvm_image(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cdvm-image"))
        .args(args)
        .current_dir(common::repo())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_lists_checks_and_updates_what_the_script_needs() {
    let lock = common::lock();
    // `inputs debian`: one line of seven fields per Debian input, in the lock's order.
    let (ok, out, err) = cdvm_image(&["inputs", "debian"]);
    assert!(ok, "{err}");
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0],
        [
            "kernel",
            lock.kernel.suite.as_str(),
            &lock.kernel.package,
            &lock.kernel.version,
            &lock.kernel.sha256,
            &format!("target/image-cache/{}", lock.kernel.file),
            "linux-image-amd64"
        ]
    );
    assert_eq!(
        (lines[1][0], lines[2][0], lines[3][0]),
        ("efi-stub", "ovmf", "shim")
    );

    // `inputs path` checks what it prints: the committed firmware passes, a lock copy that
    // pins another hash fails naming the input.
    let (ok, out, _) = cdvm_image(&["inputs", "path", "ovmf-amdsev"]);
    assert!(ok);
    assert_eq!(out.trim(), lock.ovmf_amdsev.path);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("inputs.lock");
    let mut other = lock.clone();
    other.ovmf_amdsev.sha256 = "ef".repeat(32);
    std::fs::write(&copy, other.to_text()).unwrap();
    let copy_arg = copy.to_str().unwrap();
    let (ok, _, err) = cdvm_image(&["inputs", "path", "ovmf-amdsev", "--lock", copy_arg]);
    assert!(!ok);
    assert!(
        err.contains("input ovmf-amdsev") && err.contains(&"ef".repeat(32)),
        "{err}"
    );
    let (ok, _, err) = cdvm_image(&["inputs", "path", "kernels"]);
    assert!(!ok && err.contains("unknown input id"), "{err}");

    // `inputs update` rewrites the copy's one entry and says so.
    let (ok, out, err) = cdvm_image(&[
        "inputs",
        "update",
        "--lock",
        copy_arg,
        "--id",
        "ovmf-amdsev",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("re-pinned"), "{out}");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), lock.to_text());
}
