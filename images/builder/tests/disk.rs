//! The raw UEFI disk: byte-identical across builds in different folders, read back by
//! util-linux's `sfdisk`, gdisk's `sgdisk -v`, dosfstools' `fsck.vfat` and mtools' `mcopy`, and
//! by our own GPT reader, which (like `sgdisk`) refuses a header or entry array whose CRC32 no
//! longer matches. The last test does all of it on the real image (`CDVM_IMAGE_DIR` or
//! `target/image`, which must exist).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use cdvm_image::disk::{self, DiskWritten, ESP_FIRST_LBA};
use cdvm_image::gpt::{self, GptError, Guid};
use cdvm_image::manifest::Manifest;
use cdvm_image::recipe::{self, DISK_FILE, UKI_FILE};

fn small_disk(dir: &Path, uki: &[u8]) -> (PathBuf, DiskWritten) {
    let uki_path = dir.join(UKI_FILE);
    std::fs::write(&uki_path, uki).unwrap();
    let disk_path = dir.join(DISK_FILE);
    let written = disk::write_file(&uki_path, &disk_path).expect("write the disk");
    (disk_path, written)
}

#[test]
fn two_builds_in_different_folders_are_identical_and_another_uki_gives_another_disk() {
    let uki = common::noise(3_000_000, 7);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (da, wa) = small_disk(a.path(), &uki);
    let (db, wb) = small_disk(b.path(), &uki);
    assert_eq!(wa, wb);
    assert!(std::fs::read(&da).unwrap() == std::fs::read(&db).unwrap());
    assert_eq!(wa.sha256, cdvm_image::deb::sha256_file(&da).unwrap());
    assert_eq!(wa.size % (1 << 20), 0, "a whole number of MiB");
    assert_eq!(std::fs::metadata(&da).unwrap().len(), wa.size);
    let esp = &wa.layout.gpt.partitions[0];
    assert_eq!(esp.first_lba, ESP_FIRST_LBA);
    assert_eq!(esp.type_guid, gpt::ESP_TYPE);
    // Version 4 and RFC 4122 variant bits, as tools expect of a random GUID.
    for g in [wa.layout.gpt.disk_guid, esp.unique_guid] {
        assert_eq!(g.0[6] >> 4, 4, "{g}");
        assert_eq!(g.0[8] >> 6, 0b10, "{g}");
    }
    assert_ne!(wa.layout.gpt.disk_guid, esp.unique_guid);

    // Tamper twin: one UKI byte changed gives another disk, other GUIDs and another volume id.
    let mut other = uki.clone();
    other[100] ^= 0x80;
    let (_, wc) = small_disk(b.path(), &other);
    assert_ne!(wc.sha256, wa.sha256);
    assert_ne!(wc.layout.gpt.disk_guid, wa.layout.gpt.disk_guid);
    assert_ne!(wc.layout.volume_id, wa.layout.volume_id);
    assert_eq!(
        wc.layout.esp, wa.layout.esp,
        "same size, same file system layout"
    );
}

fn sfdisk_json(disk: &Path) -> serde_json::Value {
    let text = common::tool_ok("sfdisk", "fdisk", &["--json", disk.to_str().unwrap()]);
    serde_json::from_str(&text).expect("sfdisk --json")
}

fn sgdisk_verify(disk: &Path) -> String {
    let out = common::tool("sgdisk", "gdisk", &["-v", disk.to_str().unwrap()]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// sgdisk still says "No problems found" about the partitions when it had to use the backup
/// table; what it says about the headers and CRCs is what counts.
fn sgdisk_complains(verify: &str) -> bool {
    ["ERROR", "CRCs don't match", "Caution", "Warning"]
        .iter()
        .any(|w| verify.contains(w))
}

/// The external and our own view of a disk's table agree with its layout.
fn check_table(disk_path: &Path, w: &DiskWritten) {
    let esp = &w.layout.gpt.partitions[0];
    let json = sfdisk_json(disk_path);
    let table = &json["partitiontable"];
    assert_eq!(table["label"], "gpt", "{json}");
    assert_eq!(table["sectorsize"], 512);
    assert_eq!(table["id"], w.layout.gpt.disk_guid.to_string());
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{json}");
    assert_eq!(parts[0]["start"], ESP_FIRST_LBA);
    assert_eq!(parts[0]["size"], esp.last_lba - esp.first_lba + 1);
    assert_eq!(parts[0]["type"], gpt::ESP_TYPE.to_string());
    assert_eq!(parts[0]["uuid"], esp.unique_guid.to_string());
    assert_eq!(parts[0]["name"], disk::ESP_NAME);
    let verify = sgdisk_verify(disk_path);
    assert!(
        verify.contains("No problems found") && !sgdisk_complains(&verify),
        "sgdisk -v:\n{verify}"
    );
    let mut f = std::fs::File::open(disk_path).unwrap();
    assert_eq!(gpt::read(&mut f).expect("our reader"), w.layout.gpt);
}

/// A copy of `disk` with `bytes` written at `offset`.
fn patched(disk: &Path, dir: &Path, offset: u64, bytes: &[u8]) -> PathBuf {
    use std::io::{Seek, SeekFrom, Write};
    let copy = dir.join(format!("tampered-{offset}.raw"));
    std::fs::copy(disk, &copy).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
    copy
}

/// A copy of `disk` with one bit flipped at `offset`.
fn tampered(disk: &Path, dir: &Path, offset: u64) -> PathBuf {
    use std::io::{Read, Seek, SeekFrom};
    let mut b = [0u8; 1];
    let mut f = std::fs::File::open(disk).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    patched(disk, dir, offset, &[b[0] ^ 0x01])
}

#[test]
fn sfdisk_and_sgdisk_see_one_esp_at_1_mib_and_a_bad_crc_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (disk_path, w) = small_disk(dir.path(), &common::noise(1_000_000, 3));
    check_table(&disk_path, &w);

    let last = w.layout.gpt.total_sectors - 1;
    // The primary header (a byte of the disk GUID), an entry (the ESP's name), the backup
    // header: each breaks its CRC32.
    let cases: [(u64, &str); 3] = [
        (512 + 60, "primary GPT header"),
        (1024 + 60, "primary partition entries"),
        (last * 512 + 60, "backup GPT header"),
    ];
    for (offset, which) in cases {
        let bad = tampered(&disk_path, dir.path(), offset);
        let mut f = std::fs::File::open(&bad).unwrap();
        match gpt::read(&mut f) {
            Err(GptError::Crc { which: w, .. }) => assert_eq!(w, which),
            other => panic!("byte {offset} flipped: {other:?}"),
        }
        let verify = sgdisk_verify(&bad);
        assert!(
            sgdisk_complains(&verify),
            "sgdisk -v accepted a corrupt {which}:\n{verify}"
        );
    }
    // A damaged protective MBR is refused too.
    let bad = tampered(&disk_path, dir.path(), 446 + 4);
    let mut f = std::fs::File::open(&bad).unwrap();
    assert!(matches!(gpt::read(&mut f), Err(GptError::Signature { .. })));
}

/// The ESP as its own file, as a partition device would show it.
fn partition(disk_path: &Path, w: &DiskWritten, dir: &Path) -> PathBuf {
    let part = dir.join("esp.img");
    common::extract(disk_path, w.layout.esp_offset(), w.layout.esp.size(), &part);
    part
}

fn fsck(part: &Path) -> std::process::Output {
    common::tool(
        "fsck.vfat",
        "dosfstools",
        &["-n", "-v", part.to_str().unwrap()],
    )
}

fn mcopy(part: &Path, out: &Path) -> std::process::Output {
    common::tool(
        "mcopy",
        "mtools",
        &[
            "-n",
            "-i",
            part.to_str().unwrap(),
            "::/EFI/BOOT/BOOTX64.EFI",
            out.to_str().unwrap(),
        ],
    )
}

#[test]
fn fsck_vfat_finds_the_esp_clean_and_mtools_reads_back_the_uki() {
    let dir = tempfile::tempdir().unwrap();
    let uki = common::noise(2_500_000, 11);
    let (disk_path, w) = small_disk(dir.path(), &uki);
    let part = partition(&disk_path, &w, dir.path());
    let out = fsck(&part);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fsck.vfat -n:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("32 bit entries"),
        "not read as FAT32:\n{text}"
    );
    let copied = dir.path().join("copied.efi");
    assert!(mcopy(&part, &copied).status.success());
    assert!(
        std::fs::read(&copied).unwrap() == uki,
        "mcopy gave other bytes"
    );

    // Tamper twin: cut the file's cluster chain in the first FAT (cluster 6 marked free).
    let fat = w.layout.esp.fat_offset() + 6 * 4;
    let broken_fat = patched(&part, dir.path(), fat, &[0, 0, 0, 0]);
    let out = fsck(&broken_fat);
    assert!(
        !out.status.success(),
        "fsck.vfat -n accepted a cut cluster chain:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_real_image_gives_a_reproducible_disk_that_the_tools_accept() {
    let image = common::image_dir();
    let manifest: Manifest =
        Manifest::from_json(&std::fs::read_to_string(image.join(recipe::MANIFEST)).unwrap())
            .expect("manifest.json");
    let stub = common::stub();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let build = |out: &Path| {
        let started = std::time::Instant::now();
        let built = recipe::build_uefi(
            &stub,
            &manifest.inputs.agent.version,
            &image.join(recipe::VMLINUZ),
            &image.join(recipe::INITRD),
            &manifest.cmdline,
            out,
        )
        .expect("build uki.efi and disk.raw");
        println!(
            "built {UKI_FILE} ({} bytes, sha256 {}) and {DISK_FILE} ({} bytes, sha256 {}) in {:.1} s",
            built.uki.size,
            built.uki.sha256,
            built.disk.size,
            built.disk.sha256,
            started.elapsed().as_secs_f64()
        );
        built
    };
    let ba = build(a.path());
    let bb = build(b.path());
    assert_eq!(ba, bb, "two builds from the same inputs differ");
    assert_eq!(
        cdvm_image::deb::sha256_file(&a.path().join(DISK_FILE)).unwrap(),
        cdvm_image::deb::sha256_file(&b.path().join(DISK_FILE)).unwrap()
    );
    // An image built with the UKI records the same hashes.
    for name in [UKI_FILE, DISK_FILE] {
        if let Some(rec) = manifest.outputs.get(name) {
            let got = if name == UKI_FILE {
                &ba.uki.sha256
            } else {
                &ba.disk.sha256
            };
            assert_eq!(
                &rec.sha256,
                got,
                "{name} differs from {}'s manifest",
                image.display()
            );
        }
    }

    // objdump sees the four sections with the image's sizes.
    let uki_path = a.path().join(UKI_FILE);
    let sections = common::objdump_sections(&uki_path);
    let size_of = |name: &str| sections.iter().find(|s| s.0 == name).map(|s| s.1);
    let len = |name: &str| std::fs::metadata(image.join(name)).unwrap().len();
    assert_eq!(size_of(".linux"), Some(len(recipe::VMLINUZ)));
    assert_eq!(size_of(".initrd"), Some(len(recipe::INITRD)));
    assert_eq!(size_of(".cmdline"), Some(manifest.cmdline.len() as u64));
    assert_eq!(
        size_of(".osrel"),
        Some(cdvm_image::uki::os_release(&manifest.inputs.agent.version).len() as u64)
    );

    let disk_path = a.path().join(DISK_FILE);
    check_table(&disk_path, &ba.disk);
    let part = partition(&disk_path, &ba.disk, b.path());
    let out = fsck(&part);
    assert!(
        out.status.success(),
        "fsck.vfat -n:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let copied = b.path().join("copied.efi");
    assert!(mcopy(&part, &copied).status.success());
    assert_eq!(
        cdvm_image::deb::sha256_file(&copied).unwrap(),
        ba.uki.sha256,
        "mcopy's EFI/BOOT/BOOTX64.EFI is not uki.efi"
    );
    let l = &ba.disk.layout;
    println!(
        "layout: disk {} bytes; protective MBR + primary GPT 0..{}; ESP {}..{} ({} bytes, FAT32, {}-byte clusters, FATs of {} bytes); UKI at {}..{}; backup GPT {}..{}",
        l.size(),
        gpt::FIRST_USABLE_LBA * 512,
        l.esp_offset(),
        l.esp_offset() + l.esp.size(),
        l.esp.size(),
        l.esp.cluster_bytes(),
        u64::from(l.esp.fat_sectors) * 512,
        l.uki_offset(),
        l.uki_offset() + ba.uki.size,
        (l.gpt.total_sectors - 1 - gpt::ENTRY_SECTORS) * 512,
        l.size()
    );
}

#[test]
fn guids_are_written_mixed_endian() {
    assert_eq!(
        gpt::ESP_TYPE.to_string(),
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    );
    // The UEFI specification's byte order: the first three fields little-endian.
    let on_disk = [
        0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9,
        0x3B,
    ];
    assert_eq!(gpt::ESP_TYPE.to_disk(), on_disk);
    assert_eq!(Guid::from_disk(on_disk), gpt::ESP_TYPE);
    // Twin: the textual byte order read as on-disk bytes is another GUID.
    assert_ne!(Guid::from_disk(gpt::ESP_TYPE.0), gpt::ESP_TYPE);
}
