//! The guest image as this provider measures and ships it: the local files read once per launch,
//! hashed, measured, and uploaded to the remote host's content-addressed image store
//! (`<remote_dir>/images/<sha256>/<name>`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cdvm_attestation::Measurement;
use cdvm_provider_qemu::{CpuModel, GuestImage};
use sha2::{Digest, Sha256};

use crate::SshError;

/// One image file, read into memory.
#[derive(Debug)]
pub(crate) struct ImageFile {
    /// The file's name (`vmlinuz`, `initrd.img`, `OVMF.amdsev.fd`).
    pub name: String,
    /// The local path.
    pub local: PathBuf,
    /// Its bytes, exactly as hashed and uploaded.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, hex.
    pub sha256: String,
}

impl ImageFile {
    /// Where this file lives in the remote image store.
    pub fn remote_path(&self, remote_dir: &Path) -> PathBuf {
        remote_dir
            .join("images")
            .join(&self.sha256)
            .join(&self.name)
    }
}

/// The image files of one launch and the launch digest over them.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Kernel, initrd, OVMF, in that order.
    pub files: [ImageFile; 3],
    /// The SEV-SNP launch digest the simulated secure processor reports.
    pub measurement: Measurement,
}

impl Snapshot {
    /// The image as QEMU on the remote host sees it.
    pub fn remote_image(&self, local: &GuestImage, remote_dir: &Path) -> GuestImage {
        let [kernel, initrd, ovmf] = &self.files;
        GuestImage {
            kernel: kernel.remote_path(remote_dir),
            initrd: initrd.remote_path(remote_dir),
            cmdline: local.cmdline.clone(),
            ovmf: ovmf.remote_path(remote_dir),
            // The ssh provider runs simulated guests only (no TDX host mode).
            tdx: None,
        }
    }
}

/// Identity of a file's current content as the file system sees it.
fn stamp(path: &Path) -> Result<(u64, u64, u64, i64, i64), SshError> {
    let m = std::fs::metadata(path).map_err(|source| SshError::Local {
        what: "guest image file",
        path: path.to_path_buf(),
        source,
    })?;
    Ok((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

fn read(path: &Path) -> Result<ImageFile, SshError> {
    let bytes = std::fs::read(path).map_err(|source| SshError::Local {
        what: "guest image file",
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("image-file")
        .to_string();
    Ok(ImageFile {
        name,
        local: path.to_path_buf(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes,
    })
}

/// The SEV-SNP launch digest of the image files as they are on disk now.
pub(crate) fn launch_digest(
    image: &GuestImage,
    vcpus: u32,
    cpu: CpuModel,
) -> Result<Measurement, SshError> {
    Ok(image.launch_digest(vcpus, cpu)?)
}

/// Reads, hashes and measures the image for a VM of `vcpus` vCPUs. The files must not change
/// meanwhile (checked by inode, size and mtime), so the digest is the one of the bytes uploaded.
pub(crate) fn snapshot(
    image: &GuestImage,
    vcpus: u32,
    cpu: CpuModel,
) -> Result<Snapshot, SshError> {
    let paths = [&image.kernel, &image.initrd, &image.ovmf];
    let before = paths
        .iter()
        .map(|p| stamp(p))
        .collect::<Result<Vec<_>, _>>()?;
    let files = [
        read(&image.kernel)?,
        read(&image.initrd)?,
        read(&image.ovmf)?,
    ];
    let measurement = launch_digest(image, vcpus, cpu)?;
    for (path, was) in paths.iter().zip(before) {
        if stamp(path)? != was {
            return Err(SshError::ImageChanged(path.to_path_buf()));
        }
    }
    Ok(Snapshot { files, measurement })
}
