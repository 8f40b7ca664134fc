//! `cdvm-image publish`: checks the built disk against its manifest, makes the cloud's upload
//! format if it is missing, and hands over to `cdvm-publish`.

use std::path::Path;

use anyhow::Context;
use cdvm_image::recipe;
use cdvm_publish::{Cloud, ImageToPublish, PublishConfig};

/// Publishes the image folder `image` to `cloud` as `config` says; prints the result as JSON.
pub fn publish(image: &Path, cloud: Cloud, config: &Path) -> anyhow::Result<()> {
    let config = PublishConfig::load(config)?;
    let (manifest_path, manifest) = crate::read_manifest(image)?;
    let record = manifest.outputs.get(recipe::DISK_FILE).with_context(|| {
        format!(
            "{} records no {}: rebuild with scripts/build-image",
            manifest_path.display(),
            recipe::DISK_FILE
        )
    })?;
    let disk_raw = image.join(recipe::DISK_FILE);
    eprintln!(
        "[cdvm-image] checking {} against the manifest",
        disk_raw.display()
    );
    let actual = cdvm_image::deb::sha256_file(&disk_raw)
        .with_context(|| format!("hashing {}", disk_raw.display()))?;
    anyhow::ensure!(
        actual == record.sha256,
        "{} has sha256 {actual} but {} says {}: the disk is not the one the policies describe; rebuild with scripts/build-image",
        disk_raw.display(),
        manifest_path.display(),
        record.sha256
    );
    let mut to_publish = ImageToPublish {
        name: format!("cdvm-{}", &record.sha256[..16]),
        disk_raw: disk_raw.clone(),
        disk_sha256: record.sha256.clone(),
        gce_tar: None,
        vhd: None,
    };
    // The upload formats are derived from the checked disk here, so a stale export can never
    // be uploaded under this disk's name.
    match cloud {
        Cloud::Aws => {}
        Cloud::Gcp => {
            let out = image.join("disk.tar.gz");
            eprintln!("[cdvm-image] writing {}", out.display());
            cdvm_image::gce_tar::write_file(&disk_raw, &out)?;
            to_publish.gce_tar = Some(out);
        }
        Cloud::Azure => {
            let out = image.join("disk.vhd");
            eprintln!("[cdvm-image] writing {}", out.display());
            cdvm_image::vhd::write_file(&disk_raw, &out)?;
            to_publish.vhd = Some(out);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let progress = |line: &str| eprintln!("[cdvm-image] {cloud}: {line}");
    let published = runtime.block_on(cdvm_publish::publish(
        cloud,
        &config,
        &to_publish,
        &progress,
    ))?;
    let key = match cloud {
        Cloud::Aws => "ami_id",
        Cloud::Gcp => "image",
        Cloud::Azure => "image_id",
    };
    eprintln!(
        "[cdvm-image] {cloud}: published {}; set `{key}: {}` in the {cloud} provider's config",
        published.image, published.image
    );
    println!("{}", serde_json::to_string_pretty(&published)?);
    Ok(())
}
