//! The initramfs: the agent as `/init`, the kernel file systems' mount points, the modules and
//! their load order, as a deterministic gzip-compressed newc archive; with models, preceded by
//! the uncompressed models archive ([`write_initrd`]).
//!
//! `initrd.img` = [models archive, uncompressed newc] ‖ gzip([main archive, newc]). Linux
//! unpacks any sequence of archives, compressed or not, into the same root
//! (`Documentation/driver-api/early-userspace/buffer-format.rst`: `initramfs := ("\0" |
//! cpio_archive | cpio_compressed_archive)*`); `init/initramfs.c` takes an uncompressed archive
//! only where its first byte `0` sits at a 4-byte aligned offset, and after a compressed one
//! resumes at the byte the decompressor stopped at. The uncompressed archive goes first, as
//! early-microcode initrds do: it starts at offset 0 and its length is a multiple of 4, so the
//! gzip member follows at a clean boundary and nothing depends on where gzip ends. [`unpack`]
//! reads an initrd by these rules.

use std::io::{Read, Write};

use crate::cpio::{self, Archive, CpioError, ParsedEntry};
use crate::deb::Sha256Writer;
use crate::manifest::FileRecord;
use crate::models::{ModelSet, ModelsError};

/// Where the agent finds its modules (`images/agent/src/guest/modules.rs`).
pub const MODULE_DIR: &str = "lib/modules/cdvm";
/// The load-order file in [`MODULE_DIR`]: one line per module, in load order: its `.ko` file name,
/// then the file names of the modules it depends on (earlier lines), separated by spaces. The
/// agent skips a module whose dependency did not load (a Hyper-V driver where `hv_vmbus` finds no
/// Hyper-V).
pub const LOAD_ORDER: &str = "load-order";
/// gzip level: 6 (zlib's default). The kernel decompresses gzip natively (CONFIG_RD_GZIP).
pub const GZIP_LEVEL: u32 = 6;

/// A module to put in the image: its file name in [`MODULE_DIR`] and its (uncompressed) bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleFile {
    /// File name, e.g. `virtio_net.ko`.
    pub file_name: String,
    /// The file names of the modules it needs loaded first (each earlier in the list).
    pub depends: Vec<String>,
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
    /// A dependency that is not an earlier module in the list.
    #[error("module {module:?} depends on {dep:?}, which is not an earlier module")]
    BadModuleDep {
        /// The module.
        module: String,
        /// Its dependency.
        dep: String,
    },
    /// Compression failed (out of memory only, in practice).
    #[error("gzip failed: {0}")]
    Gzip(std::io::Error),
    /// The models archive could not be written.
    #[error(transparent)]
    Models(#[from] ModelsError),
    /// Writing the initrd failed.
    #[error("writing the initrd: {0}")]
    Write(std::io::Error),
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
    let mut earlier = std::collections::BTreeSet::new();
    for m in modules {
        let plain = !m.file_name.contains(['/', ' ', '\n'])
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
        for dep in &m.depends {
            if !earlier.contains(dep.as_str()) {
                return Err(InitramfsError::BadModuleDep {
                    module: m.file_name.clone(),
                    dep: dep.clone(),
                });
            }
            order.push(' ');
            order.push_str(dep);
        }
        order.push('\n');
        earlier.insert(m.file_name.as_str());
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

/// What [`write_initrd`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitrdWritten {
    /// The models archive at its start, if any.
    pub models_cpio: Option<FileRecord>,
    /// The whole initrd.
    pub initrd: FileRecord,
}

/// Writes `initrd.img` to `out`: the models archive (uncompressed, streamed from the model files)
/// when there are models, then `cpio_gz` (the gzip-compressed main archive, [`build`]). Hashes
/// both on the way; returns `out` (not flushed) and what was written.
pub fn write_initrd<W: Write>(
    out: W,
    models: Option<&ModelSet>,
    cpio_gz: &[u8],
) -> Result<(W, InitrdWritten), InitramfsError> {
    let mut whole = Sha256Writer::new(out);
    let models_cpio = match models {
        Some(set) => {
            let part = set.write_archive(Sha256Writer::new(&mut whole))?;
            let (_, sha256, size) = part.finish();
            debug_assert_eq!(size % 4, 0, "a newc archive ends 4-byte aligned");
            Some(FileRecord { sha256, size })
        }
        None => None,
    };
    whole.write_all(cpio_gz).map_err(InitramfsError::Write)?;
    let (out, sha256, size) = whole.finish();
    Ok((
        out,
        InitrdWritten {
            models_cpio,
            initrd: FileRecord { sha256, size },
        },
    ))
}

/// One archive of an initrd, as [`unpack`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset of its first byte in the initrd.
    pub offset: usize,
    /// Its length in the initrd (compressed length for a compressed one; with an uncompressed
    /// one, up to the end of the trailer's padding).
    pub len: usize,
    /// Whether it was gzip-compressed.
    pub gzip: bool,
    /// Its entries, the trailer last.
    pub entries: Vec<ParsedEntry>,
}

/// Splits an initrd into its archives the way Linux's `unpack_to_rootfs` walks it: NUL bytes
/// between archives are skipped; an uncompressed newc archive is taken only where its `0`
/// starts at an offset that is a multiple of 4 counted from the end of the previous compressed
/// archive (or the start); anything else must be gzip (the only compression this image uses),
/// whose stream must hold one complete archive. For tests and checks; it holds the whole initrd
/// in memory.
pub fn unpack(initrd: &[u8]) -> Result<Vec<Segment>, CpioError> {
    let mut segments = Vec::new();
    let mut pos = 0usize;
    // The kernel's `this_header`: the alignment reference.
    let mut this_header = 0usize;
    let shift = |e: CpioError, base: usize| match e {
        CpioError::Malformed { offset, reason } => CpioError::Malformed {
            offset: base + offset,
            reason,
        },
        other => other,
    };
    while pos < initrd.len() {
        let rest = &initrd[pos..];
        if rest[0] == b'0' && this_header.is_multiple_of(4) {
            let (entries, used) = cpio::parse_prefix(rest).map_err(|e| shift(e, pos))?;
            segments.push(Segment {
                offset: pos,
                len: used,
                gzip: false,
                entries,
            });
            pos += used;
            this_header += used;
            continue;
        }
        if rest[0] == 0 {
            pos += 1;
            this_header += 1;
            continue;
        }
        if !rest.starts_with(&[0x1f, 0x8b]) {
            return Err(CpioError::Malformed {
                offset: pos,
                reason: "neither an aligned newc archive nor gzip (the kernel would stop: \
                         invalid magic at start of compressed archive)"
                    .to_string(),
            });
        }
        let mut input = rest;
        let mut data = Vec::new();
        flate2::bufread::GzDecoder::new(&mut input)
            .read_to_end(&mut data)
            .map_err(|e| CpioError::Malformed {
                offset: pos,
                reason: format!("gzip: {e}"),
            })?;
        let used = rest.len() - input.len();
        let entries = cpio::parse(&data).map_err(|e| match e {
            CpioError::Malformed { offset, reason } => CpioError::Malformed {
                offset: pos,
                reason: format!("in the archive compressed here, at {offset}: {reason}"),
            },
            other => other,
        })?;
        segments.push(Segment {
            offset: pos,
            len: used,
            gzip: true,
            entries,
        });
        this_header += used;
        pos += used;
    }
    Ok(segments)
}
