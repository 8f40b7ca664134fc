//! The initramfs: the agent as `/init`, the kernel file systems' mount points, the modules and
//! their load order, as a deterministic gzip-compressed newc archive.

use std::io::Write;

use crate::cpio::{Archive, CpioError};

/// Where the agent finds its modules (`images/agent/src/guest/modules.rs`).
pub const MODULE_DIR: &str = "lib/modules/cdvm";
/// The load-order file in [`MODULE_DIR`]: one `.ko` file name per line, in load order.
pub const LOAD_ORDER: &str = "load-order";
/// gzip level: 6 (zlib's default). The kernel decompresses gzip natively (CONFIG_RD_GZIP).
pub const GZIP_LEVEL: u32 = 6;

/// A module to put in the image: its file name in [`MODULE_DIR`] and its (uncompressed) bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleFile {
    /// File name, e.g. `virtio_net.ko`.
    pub file_name: String,
    /// The ELF object.
    pub data: Vec<u8>,
}

/// Errors while assembling the initramfs.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// The archive refused an entry.
    #[error(transparent)]
    Cpio(#[from] CpioError),
    /// A module file name that is not a plain `.ko` name.
    #[error("module file name {0:?} is not a plain .ko file name")]
    BadModuleName(String),
    /// Compression failed (out of memory only, in practice).
    #[error("gzip failed: {0}")]
    Gzip(std::io::Error),
}

/// Content of `/etc/cdvm-release`.
pub const RELEASE: &[u8] = b"ConfidentialDVM guest image (cdvm-agent as /init)\n";

/// The uncompressed archive.
///
/// Contents: `/init` (the agent, 0755); `/dev` with a `console` node (c 5 1, so the kernel can
/// open the console for PID 1 before devtmpfs is mounted), `/proc`, `/sys`, `/tmp` (1777),
/// `/etc/cdvm-release` (the image's name), and `/lib/modules/cdvm/` with the modules (0644) and
/// `load-order`.
pub fn archive(agent: &[u8], modules: &[ModuleFile]) -> Result<Archive, InitramfsError> {
    let mut a = Archive::new();
    a.add_dir("dev", 0o755)?;
    a.add_char_dev("dev/console", 0o600, 5, 1)?;
    a.add_dir("proc", 0o555)?;
    a.add_dir("sys", 0o555)?;
    a.add_dir("tmp", 0o1777)?;
    a.add_dir("lib", 0o755)?;
    a.add_dir("lib/modules", 0o755)?;
    a.add_dir(MODULE_DIR, 0o755)?;
    a.add_file("init", 0o755, agent.to_vec())?;
    // Names the image to whoever unpacks it; also a harmless byte to change in tamper tests.
    a.add_dir("etc", 0o755)?;
    a.add_file("etc/cdvm-release", 0o644, RELEASE.to_vec())?;
    let mut order = String::new();
    for m in modules {
        let plain = !m.file_name.contains('/')
            && m.file_name.ends_with(".ko")
            && m.file_name.len() > 3
            && m.file_name != "load-order.ko";
        if !plain {
            return Err(InitramfsError::BadModuleName(m.file_name.clone()));
        }
        a.add_file(
            &format!("{MODULE_DIR}/{}", m.file_name),
            0o644,
            m.data.clone(),
        )?;
        order.push_str(&m.file_name);
        order.push('\n');
    }
    a.add_file(
        &format!("{MODULE_DIR}/{LOAD_ORDER}"),
        0o644,
        order.into_bytes(),
    )?;
    Ok(a)
}

/// gzip with a fixed header: no file name, mtime 0, OS byte 3 (Unix), level [`GZIP_LEVEL`].
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, InitramfsError> {
    let mut enc = flate2::GzBuilder::new().mtime(0).operating_system(3).write(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::new(GZIP_LEVEL),
    );
    enc.write_all(data).map_err(InitramfsError::Gzip)?;
    enc.finish().map_err(InitramfsError::Gzip)
}

/// The compressed initramfs (`initrd.img`) for an agent binary and modules in load order.
pub fn build(agent: &[u8], modules: &[ModuleFile]) -> Result<Vec<u8>, InitramfsError> {
    gzip(&archive(agent, modules)?.to_bytes()?)
}
