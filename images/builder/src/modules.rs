//! Kernel modules: which ones the guest needs, in which order to load them, and how to read a
//! module's dependencies.
//!
//! The order comes from `modules.dep` (depmod's format: `kernel/a.ko: kernel/b.ko kernel/c.ko`).
//! Debian's kernel packages do not ship `modules.dep` (their postinst runs depmod at install time),
//! so for them the builder writes one from each module's own `.modinfo` `depends=` list, which
//! modpost computed from the same symbol references depmod would use ([`modinfo_depends`],
//! [`synthesize_modules_dep`]); both go through the same parser and resolver.

use std::collections::{BTreeMap, BTreeSet};

/// The modules the guest agent needs, in the order they are asked for: the virtio PCI transport,
/// the network device (for the relays), the serial ports (host-side services), fw_cfg (the
/// bootstrap), configfs-tsm (`configfs` and `tsm`, the report interface of Linux ≥ 6.7) and its
/// providers, the SEV-SNP and TDX guest drivers (`sev-guest` also gives `/dev/sev-guest`); then
/// each cloud's NIC and disk drivers ([`CLOUD_NICS`], [`CLOUD_DISKS`]). Those built into the kernel
/// (Debian's 6.12 builds in virtio, virtio_pci and virtio_console) are recorded as built in and not
/// carried; dependencies not listed here are added by [`resolve`] from `modules.dep`.
pub const WANTED: &[&str] = &[
    "virtio",
    "virtio_ring",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_console",
    "qemu_fw_cfg",
    "configfs",
    "tsm",
    "sev-guest",
    "tdx-guest",
    // CLOUD_NICS
    "ena",
    "gve",
    "hv_vmbus",
    "hv_netvsc",
    // CLOUD_DISKS
    "virtio_blk",
    "nvme",
    "hv_storvsc",
    "sd_mod",
];

/// The NIC drivers of the clouds (the agent takes the first Ethernet interface that appears):
/// AWS's Elastic Network Adapter, GCP's gVNIC (required on confidential C3/TDX machines), Azure's
/// synthetic NIC on the VMBus. QEMU's `virtio_net` is in the list above. A driver without its
/// hardware registers and binds nothing, except `hv_vmbus`, which fails with ENODEV outside
/// Hyper-V; the agent then skips the modules that depend on it.
pub const CLOUD_NICS: &[&str] = &["ena", "gve", "hv_vmbus", "hv_netvsc"];

/// The disk drivers of the clouds: NVMe (AWS Nitro, GCP C3), Azure's VMBus SCSI with the SCSI disk
/// driver, virtio-blk (QEMU, some GCP/KVM hosts). The agent mounts no disk today (the image boots
/// from the UKI's initramfs and keeps everything in memory); they let a job see its VM's disks.
pub const CLOUD_DISKS: &[&str] = &["virtio_blk", "nvme", "hv_storvsc", "sd_mod"];

/// Errors while reading module metadata or resolving the order.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// A `modules.dep` line that is not `path: [dep…]`.
    #[error("modules.dep line {line}: {reason}")]
    BadDepLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A module asked for (or depended on) that is neither in `modules.dep` nor built in.
    #[error("module {0:?} is neither in modules.dep nor in modules.builtin")]
    Unknown(String),
    /// A dependency path that has no line of its own in `modules.dep`.
    #[error("module {module:?} depends on {dep:?}, which modules.dep does not list")]
    DanglingDep {
        /// The module.
        module: String,
        /// Its unknown dependency.
        dep: String,
    },
    /// Two files with the same module name.
    #[error("module name {name:?} is given by both {first:?} and {second:?}")]
    DuplicateName {
        /// The module name.
        name: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// A dependency cycle (depmod refuses these too).
    #[error("dependency cycle through module {0:?}")]
    Cycle(String),
    /// A module file that is not a 64-bit little-endian ELF with a `.modinfo` section.
    #[error("{path}: not a loadable kernel module: {reason}")]
    BadModule {
        /// The module file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A module's name as the kernel knows it: the file name without `.ko[.xz|.zst|.gz]`, with `-`
/// replaced by `_` (`sev-guest.ko` is module `sev_guest`).
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = strip_ko(file).unwrap_or(file);
    stem.replace('-', "_")
}

/// The module's file name in the image: the base name, uncompressed (`kernel/x/ena.ko.xz` is
/// `ena.ko`).
pub fn image_file_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    format!("{}.ko", strip_ko(file).unwrap_or(file))
}

/// The file name without its `.ko` / `.ko.xz` / `.ko.zst` / `.ko.gz` suffix, if it has one.
pub fn strip_ko(file: &str) -> Option<&str> {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
}

/// A parsed `modules.dep`: each module file (path relative to `/lib/modules/<release>/`) with the
/// files it depends on, as listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModulesDep {
    deps: BTreeMap<String, Vec<String>>,
    by_name: BTreeMap<String, String>,
}

impl ModulesDep {
    /// Parses depmod's `modules.dep` text. Blank lines and `#` comments are ignored.
    pub fn parse(text: &str) -> Result<Self, ModuleError> {
        let mut out = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| ModuleError::BadDepLine {
                line: i + 1,
                reason: reason.to_string(),
            };
            let (module, deps) = line
                .split_once(':')
                .ok_or_else(|| bad("no ':' after the module path"))?;
            let module = module.trim();
            if module.is_empty() || module.contains(char::is_whitespace) {
                return Err(bad("bad module path"));
            }
            if strip_ko(module.rsplit('/').next().unwrap_or(module)).is_none() {
                return Err(bad("module path does not end in .ko[.xz|.zst|.gz]"));
            }
            if out.deps.contains_key(module) {
                return Err(bad("module listed twice"));
            }
            let deps: Vec<String> = deps.split_whitespace().map(str::to_string).collect();
            let name = module_name(module);
            if let Some(first) = out.by_name.get(&name) {
                return Err(ModuleError::DuplicateName {
                    name,
                    first: first.clone(),
                    second: module.to_string(),
                });
            }
            out.by_name.insert(name, module.to_string());
            out.deps.insert(module.to_string(), deps);
        }
        Ok(out)
    }

    /// The file of a module, by module name (`-` and `_` are the same).
    pub fn path_of(&self, name: &str) -> Option<&str> {
        self.by_name
            .get(&name.replace('-', "_"))
            .map(String::as_str)
    }

    /// The listed dependencies of a module file.
    pub fn deps_of(&self, path: &str) -> Option<&[String]> {
        self.deps.get(path).map(Vec::as_slice)
    }

    /// Number of modules listed.
    pub fn len(&self) -> usize {
        self.deps.len()
    }

    /// True if no module is listed.
    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }
}

/// Module names listed in `modules.builtin` (one path per line, e.g. `kernel/fs/ext4/ext4.ko`).
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(module_name)
        .collect()
}

/// The result of [`resolve`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Module files (relative paths from `modules.dep`) in load order: every module after all of
    /// its dependencies.
    pub load_order: Vec<String>,
    /// Wanted modules that are built into the kernel, so not loaded (sorted).
    pub builtin: Vec<String>,
}

/// Orders the wanted modules and everything they depend on, per `modules.dep`.
///
/// A depth-first walk over `wanted` in the order given: a module is emitted after its
/// dependencies, which are visited from the last listed to the first (the order in which modprobe
/// loads depmod's lists); each module is emitted once. Wanted modules found in `builtin` are
/// skipped and reported. The result depends only on the inputs, never on hash order.
pub fn resolve(
    wanted: &[&str],
    dep: &ModulesDep,
    builtin: &BTreeSet<String>,
) -> Result<Resolved, ModuleError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        InProgress,
        Done,
    }
    fn visit(
        path: &str,
        dep: &ModulesDep,
        marks: &mut BTreeMap<String, Mark>,
        order: &mut Vec<String>,
    ) -> Result<(), ModuleError> {
        match marks.get(path) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::InProgress) => return Err(ModuleError::Cycle(module_name(path))),
            None => {}
        }
        marks.insert(path.to_string(), Mark::InProgress);
        let deps = dep
            .deps_of(path)
            .ok_or_else(|| ModuleError::Unknown(module_name(path)))?;
        for d in deps.iter().rev() {
            if dep.deps_of(d).is_none() {
                return Err(ModuleError::DanglingDep {
                    module: module_name(path),
                    dep: d.clone(),
                });
            }
            visit(d, dep, marks, order)?;
        }
        marks.insert(path.to_string(), Mark::Done);
        order.push(path.to_string());
        Ok(())
    }

    let mut marks = BTreeMap::new();
    let mut out = Resolved::default();
    for name in wanted {
        let canonical = name.replace('-', "_");
        if builtin.contains(&canonical) {
            if !out.builtin.contains(&canonical) {
                out.builtin.push(canonical);
            }
            continue;
        }
        let path = dep
            .path_of(name)
            .ok_or_else(|| ModuleError::Unknown(name.to_string()))?;
        visit(path, dep, &mut marks, &mut out.load_order)?;
    }
    out.builtin.sort();
    Ok(out)
}

/// The `.modinfo` strings (`key=value`) of a module file (an ELF64 little-endian relocatable).
pub fn modinfo(path: &str, elf: &[u8]) -> Result<Vec<String>, ModuleError> {
    let bad = |reason: &str| ModuleError::BadModule {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let u16_at = |off: usize| -> Result<u16, ModuleError> {
        elf.get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| bad("truncated ELF"))
    };
    let u32_at = |off: usize| -> Result<u32, ModuleError> {
        elf.get(off..off + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| bad("truncated ELF"))
    };
    let u64_at = |off: usize| -> Result<usize, ModuleError> {
        elf.get(off..off + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| bad("truncated ELF"))
    };
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err(bad("no ELF magic (compressed?)"));
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(bad("not a 64-bit little-endian ELF"));
    }
    let shoff = u64_at(0x28)?;
    let shentsize = usize::from(u16_at(0x3A)?);
    let shnum = usize::from(u16_at(0x3C)?);
    let shstrndx = usize::from(u16_at(0x3E)?);
    if shentsize < 64 || shstrndx >= shnum {
        return Err(bad("bad section header table"));
    }
    let section = |i: usize| -> Result<(u32, usize, usize), ModuleError> {
        let base = shoff + i * shentsize;
        Ok((u32_at(base)?, u64_at(base + 24)?, u64_at(base + 32)?))
    };
    let (_, strtab_off, strtab_size) = section(shstrndx)?;
    let strtab = elf
        .get(strtab_off..strtab_off + strtab_size)
        .ok_or_else(|| bad("section names out of bounds"))?;
    for i in 0..shnum {
        let (name_off, off, size) = section(i)?;
        let name = strtab
            .get(name_off as usize..)
            .and_then(|s| s.split(|&b| b == 0).next())
            .unwrap_or_default();
        if name == b".modinfo" {
            let data = elf
                .get(off..off + size)
                .ok_or_else(|| bad(".modinfo out of bounds"))?;
            return Ok(data
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect());
        }
    }
    Err(bad("no .modinfo section"))
}

/// The module names a module file depends on (its `.modinfo` `depends=` list).
pub fn modinfo_depends(path: &str, elf: &[u8]) -> Result<Vec<String>, ModuleError> {
    let info = modinfo(path, elf)?;
    let deps = info
        .iter()
        .find_map(|kv| kv.strip_prefix("depends="))
        .ok_or_else(|| ModuleError::BadModule {
            path: path.to_string(),
            reason: "no depends= in .modinfo".into(),
        })?;
    Ok(deps
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect())
}

/// Writes `modules.dep` text for the modules reachable from `wanted`, asking `depends_of` for each
/// module's `depends=` names, and `index` (module name → file path) where each module is. Lines are
/// sorted by path; each lists the direct dependencies' paths in `depends=` order. Built-in modules
/// (in `builtin`) are left out, as depmod leaves them out.
pub fn synthesize_modules_dep(
    wanted: &[&str],
    index: &BTreeMap<String, String>,
    builtin: &BTreeSet<String>,
    mut depends_of: impl FnMut(&str) -> Result<Vec<String>, ModuleError>,
) -> Result<String, ModuleError> {
    let mut lines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut todo: Vec<String> = wanted.iter().map(|w| w.replace('-', "_")).collect();
    todo.reverse();
    while let Some(name) = todo.pop() {
        if builtin.contains(&name) {
            continue;
        }
        let path = index
            .get(&name)
            .ok_or_else(|| ModuleError::Unknown(name.clone()))?;
        if lines.contains_key(path) {
            continue;
        }
        let mut dep_paths = Vec::new();
        for d in depends_of(path)? {
            let d = d.replace('-', "_");
            if builtin.contains(&d) {
                continue;
            }
            let dp = index.get(&d).ok_or_else(|| ModuleError::DanglingDep {
                module: name.clone(),
                dep: d.clone(),
            })?;
            dep_paths.push(dp.clone());
            todo.push(d);
        }
        lines.insert(path.clone(), dep_paths);
    }
    let mut text = String::new();
    for (path, deps) in &lines {
        text.push_str(path);
        text.push(':');
        for d in deps {
            text.push(' ');
            text.push_str(d);
        }
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            module_name("kernel/drivers/virt/coco/sev-guest/sev-guest.ko"),
            "sev_guest"
        );
        assert_eq!(module_name("kernel/drivers/virtio/virtio.ko.xz"), "virtio");
        assert_eq!(module_name("virtio_ring.ko.zst"), "virtio_ring");
        assert_eq!(strip_ko("a.txt"), None);
        assert_eq!(
            image_file_name("kernel/drivers/net/ena/ena.ko.xz"),
            "ena.ko"
        );
        assert_eq!(image_file_name("sev-guest.ko"), "sev-guest.ko");
    }

    #[test]
    fn cloud_drivers_are_wanted() {
        for m in CLOUD_NICS.iter().chain(CLOUD_DISKS) {
            assert!(WANTED.contains(m), "{m}");
        }
    }

    #[test]
    fn builtin_list() {
        let b = parse_builtin("kernel/fs/ext4/ext4.ko\n\nkernel/drivers/char/foo-bar.ko\n");
        assert!(b.contains("ext4") && b.contains("foo_bar"));
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn bad_dep_lines() {
        assert!(matches!(
            ModulesDep::parse("kernel/a.ko kernel/b.ko\n"),
            Err(ModuleError::BadDepLine { line: 1, .. })
        ));
        assert!(matches!(
            ModulesDep::parse("kernel/a.ko:\nkernel/a.ko:\n"),
            Err(ModuleError::BadDepLine { line: 2, .. })
        ));
        assert!(matches!(
            ModulesDep::parse("kernel/a.txt:\n"),
            Err(ModuleError::BadDepLine { .. })
        ));
        assert!(matches!(
            ModulesDep::parse("kernel/x/a-b.ko:\nkernel/y/a_b.ko:\n"),
            Err(ModuleError::DuplicateName { .. })
        ));
    }

    #[test]
    fn not_elf() {
        assert!(modinfo("x.ko", b"\xfd7zXZ\0...").is_err());
        assert!(modinfo("x.ko", b"").is_err());
    }
}
