//! Reproducibility of the real image: rebuild what `scripts/build-image` wrote to `target/image/`
//! from the inputs its manifest records, and compare bytes.
//!
//! This test needs the image: it FAILS (never skips) when `target/image/manifest.json` is missing,
//! saying to run `scripts/build-image` first. It reads only local files (the cached kernel package
//! in `target/image-cache/`, the committed OVMF package, the agent binary, the model directory
//! the manifest names, normally `target/models/`, and the EFI stub's package for `uki.efi` and
//! `disk.raw`), no network.

use std::path::{Path, PathBuf};

use cdvm_image::deb;
use cdvm_image::initramfs;
use cdvm_image::manifest::Manifest;
use cdvm_image::models::ModelSet;
use cdvm_image::recipe::{
    self, CMDLINE_FILE, DISK_FILE, INITRD, MANIFEST, OVMF_FILE, UKI_FILE, VMLINUZ,
};
use cdvm_image::{snp_launch_digest, CpuModel};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn resolve(path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        repo().join(p)
    }
}

/// The input at `path` must still be the one the manifest recorded.
fn input(path: &str, sha256: &str, what: &str) -> PathBuf {
    let p = resolve(path);
    let actual = deb::sha256_file(&p).unwrap_or_else(|e| {
        panic!(
            "{what} {}: {e}; run scripts/build-image to rebuild the image",
            p.display()
        )
    });
    assert_eq!(
        actual,
        sha256,
        "{what} {} changed since target/image was built; run scripts/build-image",
        p.display()
    );
    p
}

#[test]
fn image_rebuilds_to_identical_bytes() {
    let image = repo().join("target/image");
    let manifest_path = image.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. This test checks the real guest image: run scripts/build-image first \
             (it downloads the Debian kernel package once into target/image-cache/).",
            manifest_path.display()
        )
    });
    let manifest = Manifest::from_json(&text).expect("manifest.json parses");

    // The outputs on disk are the ones the manifest describes.
    for (name, rec) in &manifest.outputs {
        let actual = deb::sha256_file(&image.join(name)).expect("output readable");
        assert_eq!(
            actual, rec.sha256,
            "target/image/{name} differs from its manifest entry"
        );
    }

    // Rebuild from the recorded inputs.
    let kernel_deb = input(
        &manifest.inputs.kernel_deb.path,
        &manifest.inputs.kernel_deb.sha256,
        "kernel package",
    );
    let ovmf_deb = input(
        &manifest.inputs.ovmf_deb.path,
        &manifest.inputs.ovmf_deb.sha256,
        "OVMF package",
    );
    let agent = input(
        &manifest.inputs.agent.path,
        &manifest.inputs.agent.sha256,
        "agent binary",
    );
    let agent_bytes = std::fs::read(&agent).expect("agent");
    let work = tempfile::tempdir().expect("tempdir");
    let mut quiet = |_: &str| {};
    let rebuilt = recipe::prepare(&kernel_deb, &agent_bytes, work.path(), &mut quiet)
        .expect("rebuild the initramfs");
    let (_, ovmf) = recipe::extract_ovmf(&ovmf_deb, &manifest.inputs.ovmf_deb.sha256, work.path())
        .expect("extract OVMF");

    // The models, checked against their models.json and against what the manifest recorded.
    let models = manifest.inputs.models.as_ref().map(|recorded| {
        let dir = resolve(&recorded.path);
        let set = ModelSet::load(&dir)
            .unwrap_or_else(|e| panic!("{e}; run scripts/fetch-models, then scripts/build-image"));
        assert!(
            set.input().same_content(recorded),
            "the models in {} changed since target/image was built; run scripts/build-image",
            dir.display()
        );
        set
    });

    let on_disk = |name: &str| std::fs::read(image.join(name)).expect("read output");
    // The whole initrd, streamed (the models are not held in memory) and hashed.
    let (_, written) = initramfs::write_initrd(std::io::sink(), models.as_ref(), &rebuilt.cpio_gz)
        .expect("rebuild the initrd");
    assert_eq!(
        written.initrd.sha256, manifest.outputs[INITRD].sha256,
        "initrd.img is not reproducible: the rebuild from the same inputs differs"
    );
    assert_eq!(written.initrd.size, manifest.outputs[INITRD].size);
    assert_eq!(written.models_cpio, manifest.initrd.models_cpio);
    assert_eq!(
        deb::sha256_hex(&rebuilt.cpio),
        manifest.initrd.cpio_sha256,
        "uncompressed cpio differs"
    );
    assert!(rebuilt.vmlinuz == on_disk(VMLINUZ), "vmlinuz differs");
    assert!(ovmf == on_disk(OVMF_FILE), "OVMF.amdsev.fd differs");
    assert_eq!(on_disk(CMDLINE_FILE), recipe::CMDLINE.as_bytes());
    assert_eq!(rebuilt.modules, manifest.modules.load_order);
    assert_eq!(rebuilt.release, manifest.kernel_release);

    // The recorded launch digests are those of the files on disk.
    for d in &manifest.snp.digests {
        let cpu = CpuModel::parse(&d.cpu).expect("known model");
        let digest = snp_launch_digest(
            &image.join(OVMF_FILE),
            &image.join(VMLINUZ),
            &image.join(INITRD),
            &manifest.cmdline,
            d.vcpus,
            cpu,
        )
        .expect("digest");
        assert_eq!(
            hex::encode(digest),
            d.measurement,
            "{} × {}",
            d.vcpus,
            d.cpu
        );
    }

    // The UKI and the disk (format 4 on): rebuilt from the stub package the manifest records and
    // the files on disk, into another folder, they are the same bytes and the same layout.
    let stub_input = manifest
        .inputs
        .stub_deb
        .as_ref()
        .expect("a format-4 manifest records the EFI stub package; run scripts/build-image");
    let stub_deb = input(&stub_input.path, &stub_input.sha256, "EFI stub package");
    let stub = cdvm_image::uki::extract_stub(&stub_deb, &stub_input.sha256, work.path())
        .expect("extract the stub");
    let out = tempfile::tempdir().expect("tempdir");
    let built = recipe::build_uefi(
        &stub,
        &manifest.inputs.agent.version,
        &image.join(VMLINUZ),
        &image.join(INITRD),
        &manifest.cmdline,
        out.path(),
    )
    .expect("rebuild uki.efi and disk.raw");
    assert_eq!(
        built.uki.sha256, manifest.outputs[UKI_FILE].sha256,
        "uki.efi differs"
    );
    assert_eq!(
        built.disk.sha256, manifest.outputs[DISK_FILE].sha256,
        "disk.raw differs"
    );
    assert_eq!(
        Some(recipe::uefi_info(
            &stub,
            &manifest.inputs.agent.version,
            &built,
            recipe::uefi_expected(out.path(), &built).expect("expected values"),
        )),
        manifest.uefi,
        "the recorded UEFI layout differs"
    );
}
