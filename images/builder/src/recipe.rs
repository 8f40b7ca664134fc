//! The image recipe: from the kernel package, the OVMF package, the agent binary and the model
//! directory to `vmlinuz`, `initrd.img`, `cmdline`, `OVMF.amdsev.fd`, `manifest.json` and the
//! image policy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::deb::{self, io_err, DebError, PackageId};
use crate::disk::{self, DiskError, DiskWritten};
use crate::initramfs::{self, InitramfsError, ModuleFile, GZIP_LEVEL, LOAD_ORDER, MODULE_DIR};
use crate::inputs;
use crate::lock::{InputId, Lock, LockError};
use crate::manifest::{
    AgentInput, DigestRecord, DiskInfo, FileInput, FileRecord, InitrdInfo, Inputs, Manifest,
    ModelsInput, ModuleRecord, Modules, PackageInput, SnpInfo, UefiInfo, UkiSectionRecord, FORMAT,
};
use crate::measure::{CpuModel, Firmware, MeasureError, GUEST_FEATURES};
use crate::models::{self as model_files, ModelSet, ModelsError};
use crate::modules::{self, ModuleError, ModulesDep};
use crate::policy::{self, Pinned, PolicyGenError};
use crate::uki::{self, UkiError, UkiInputs, UkiWritten};

/// The kernel command line. The per-job bootstrap is not here: it comes through fw_cfg, so one
/// image (and one launch digest) serves every job.
pub const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";
/// The firmware's path inside the package (`dpkg-deb -c`).
pub const OVMF_IN_DEB: &str = "usr/share/ovmf/OVMF.amdsev.fd";
/// vCPU counts the manifest and policy pin digests for.
pub const DIGEST_VCPUS: [u32; 3] = [1, 2, 4];
/// Output file names.
pub const VMLINUZ: &str = "vmlinuz";
/// The compressed initramfs.
pub const INITRD: &str = "initrd.img";
/// The command line, without a trailing newline (pass it to `-append` verbatim).
pub const CMDLINE_FILE: &str = "cmdline";
/// The firmware, extracted from the pinned package.
pub const OVMF_FILE: &str = "OVMF.amdsev.fd";
/// The Unified Kernel Image (systemd-stub + kernel + initrd + command line + os-release).
pub const UKI_FILE: &str = "uki.efi";
/// The raw GPT disk whose EFI System Partition holds the UKI as `EFI/BOOT/BOOTX64.EFI`.
pub const DISK_FILE: &str = "disk.raw";
/// The manifest.
pub const MANIFEST: &str = "manifest.json";
/// How the agent is expected to have been built (recorded in the manifest).
pub const AGENT_BUILD: &str = "RUSTFLAGS=\"-C target-feature=+crt-static --remap-path-prefix=$PWD=/cdvm --remap-path-prefix=$CARGO_HOME=/cargo\" CARGO_PROFILE_DEV_DEBUG=false CARGO_PROFILE_DEV_STRIP=true OPENSSL_STATIC=1 cargo build -p cdvm-agent --target x86_64-unknown-linux-gnu (debug profile without debug info or symbols; static glibc, no musl target available)";
/// The initrd format, as recorded.
pub const INITRD_FORMAT: &str = "newc cpio (sorted, mtime 0, uid/gid 0, inodes 1..n), gzip level 6 via flate2/miniz_oxide (header: mtime 0, no name, OS 3)";
/// The models archive's format, as recorded (it precedes the gzip archive in `initrd.img`).
pub const MODELS_FORMAT: &str = "uncompressed newc cpio (sorted, mtime 0, uid/gid 0, inodes 1..n) of /models (0755) with models.json and the files it lists (0444)";

/// Errors of the recipe.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Reading a package or a file failed.
    #[error(transparent)]
    Deb(#[from] DebError),
    /// Module metadata or ordering failed.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The initramfs could not be assembled.
    #[error(transparent)]
    Initramfs(#[from] InitramfsError),
    /// A launch digest could not be computed.
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// The policy could not be generated.
    #[error(transparent)]
    Policy(#[from] PolicyGenError),
    /// The kernel package does not look like a Debian kernel image package.
    #[error("kernel package {deb}: {reason}")]
    KernelPackage {
        /// The package file.
        deb: String,
        /// What is missing.
        reason: String,
    },
    /// A module built for another kernel.
    #[error("module {module} has vermagic {vermagic:?}, not for kernel {release}")]
    Vermagic {
        /// The module.
        module: String,
        /// Its vermagic.
        vermagic: String,
        /// The kernel release.
        release: String,
    },
    /// The manifest could not be written or read.
    #[error("manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    /// The model directory was refused.
    #[error(transparent)]
    Models(#[from] ModelsError),
    /// An input is not the one `images/inputs.lock` pins (or the lock is unreadable).
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The UKI could not be built.
    #[error(transparent)]
    Uki(#[from] UkiError),
    /// The UKI's expected values could not be computed.
    #[error(transparent)]
    Expected(#[from] crate::expected::ExpectedError),
    /// The disk could not be built.
    #[error(transparent)]
    Disk(#[from] DiskError),
}

/// What [`build_uefi`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UefiBuilt {
    /// `uki.efi`.
    pub uki: UkiWritten,
    /// `disk.raw`.
    pub disk: DiskWritten,
}

/// The manifest's record of a UEFI build.
pub fn uefi_info(
    stub: &[u8],
    version: &str,
    built: &UefiBuilt,
    expected: crate::expected::UefiExpected,
) -> UefiInfo {
    let d = &built.disk.layout;
    let esp = &d.gpt.partitions[0];
    UefiInfo {
        stub: uki::STUB_IN_DEB.to_string(),
        stub_sha256: deb::sha256_hex(stub),
        os_release: uki::os_release(version),
        uki_sections: built
            .uki
            .layout
            .sections
            .iter()
            .map(|s| UkiSectionRecord {
                name: s.name.clone(),
                virtual_address: s.virtual_address,
                virtual_size: s.virtual_size,
                file_offset: s.file_offset,
                size_of_raw_data: s.size_of_raw_data,
            })
            .collect(),
        disk: DiskInfo {
            table: format!(
                "GPT, 512-byte sectors, one EFI System Partition ({}), FAT32 with the UKI as \
                 EFI/BOOT/BOOTX64.EFI",
                crate::gpt::ESP_TYPE
            ),
            disk_guid: d.gpt.disk_guid.to_string(),
            esp_guid: esp.unique_guid.to_string(),
            esp_first_lba: esp.first_lba,
            esp_sectors: esp.last_lba - esp.first_lba + 1,
            esp_volume_id: format!("{:08x}", d.volume_id),
            esp_cluster_bytes: d.esp.cluster_bytes(),
            uki_offset: d.uki_offset(),
        },
        expected,
    }
}

/// The expected values of a written UKI (reads it back: the digests are of the file's bytes).
pub fn uefi_expected(
    out_dir: &Path,
    built: &UefiBuilt,
) -> Result<crate::expected::UefiExpected, BuildError> {
    let path = out_dir.join(UKI_FILE);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let sections: Vec<(&str, u32, u32)> = built
        .uki
        .layout
        .sections
        .iter()
        .map(|s| (s.name.as_str(), s.file_offset, s.virtual_size))
        .collect();
    Ok(crate::expected::compute(&bytes, &sections)?)
}

/// Writes `uki.efi` and `disk.raw` into `out_dir` from the stub, the kernel, the initrd and the
/// command line the direct boot uses; `version` goes into the UKI's os-release. Pure in its
/// inputs: the same bytes in give the same bytes out, wherever `out_dir` is.
pub fn build_uefi(
    stub: &[u8],
    version: &str,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    out_dir: &Path,
) -> Result<UefiBuilt, BuildError> {
    let os_release = uki::os_release(version);
    let uki_path = out_dir.join(UKI_FILE);
    let uki = uki::write_file(
        &UkiInputs {
            stub,
            os_release: &os_release,
            cmdline,
            kernel,
            initrd,
        },
        &uki_path,
    )?;
    let disk = disk::write_file(&uki_path, &out_dir.join(DISK_FILE))?;
    Ok(UefiBuilt { uki, disk })
}

/// What the kernel package and the agent give, ready to be written.
#[derive(Debug)]
pub struct Prepared {
    /// The kernel package's identity.
    pub kernel_pkg: PackageId,
    /// The kernel release.
    pub release: String,
    /// The kernel image.
    pub vmlinuz: Vec<u8>,
    /// Where the module dependencies came from.
    pub dep_source: String,
    /// Wanted modules built into the kernel.
    pub builtin: Vec<String>,
    /// The modules, in load order.
    pub modules: Vec<ModuleRecord>,
    /// The main cpio archive, uncompressed.
    pub cpio: Vec<u8>,
    /// The main archive gzip-compressed: `initrd.img` without models, its tail with models
    /// ([`initramfs::write_initrd`]).
    pub cpio_gz: Vec<u8>,
}

/// Extracts the kernel and modules from `kernel_deb`, resolves the module order, and assembles
/// the initramfs around `agent` (the bytes of `/init`). `work` is an empty scratch folder for the
/// extracted package (about 115 MiB for Debian's 6.12 kernel, whose modules are xz-compressed).
/// Pure in its inputs: the same package and agent give the same bytes.
pub fn prepare(
    kernel_deb: &Path,
    agent: &[u8],
    work: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Prepared, BuildError> {
    let kernel_pkg = deb::package_id(kernel_deb)?;
    let pkg_err = |reason: String| BuildError::KernelPackage {
        deb: kernel_deb.display().to_string(),
        reason,
    };
    progress(&format!(
        "extracting {} {} ({})",
        kernel_pkg.name,
        kernel_pkg.version,
        kernel_deb.display()
    ));
    let root = work.join("kernel");
    deb::extract(kernel_deb, &root)?;

    let boot = root.join("boot");
    let mut kernels: Vec<String> = std::fs::read_dir(&boot)
        .map_err(io_err(&boot))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|n| n.strip_prefix("vmlinuz-").map(str::to_string))
        .collect();
    kernels.sort();
    let release = match kernels.as_slice() {
        [one] => one.clone(),
        other => {
            return Err(pkg_err(format!(
                "expected one boot/vmlinuz-*, found {other:?}"
            )))
        }
    };
    let vmlinuz_path = boot.join(format!("vmlinuz-{release}"));
    let vmlinuz = std::fs::read(&vmlinuz_path).map_err(io_err(&vmlinuz_path))?;

    let moddir = [
        root.join("lib/modules").join(&release),
        root.join("usr/lib/modules").join(&release),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .ok_or_else(|| pkg_err(format!("no lib/modules/{release}")))?;

    // Module name → path relative to the modules folder.
    let mut index: BTreeMap<String, String> = BTreeMap::new();
    for rel in deb::find_files(&moddir, &[".ko", ".ko.xz", ".ko.zst", ".ko.gz"])? {
        let rel = rel.to_string_lossy().replace('\\', "/");
        let name = modules::module_name(&rel);
        if let Some(first) = index.insert(name.clone(), rel.clone()) {
            return Err(ModuleError::DuplicateName {
                name,
                first,
                second: rel,
            }
            .into());
        }
    }
    let builtin_path = moddir.join("modules.builtin");
    let builtin: BTreeSet<String> = if builtin_path.exists() {
        modules::parse_builtin(
            &std::fs::read_to_string(&builtin_path).map_err(io_err(&builtin_path))?,
        )
    } else {
        BTreeSet::new()
    };

    let dep_path = moddir.join("modules.dep");
    let (dep_text, dep_source) = if dep_path.exists() {
        (
            std::fs::read_to_string(&dep_path).map_err(io_err(&dep_path))?,
            "modules.dep shipped in the kernel package".to_string(),
        )
    } else {
        let text = modules::synthesize_modules_dep(modules::WANTED, &index, &builtin, |rel| {
            let path = moddir.join(rel);
            let elf = deb::read_decompressed(&path).map_err(|e| ModuleError::BadModule {
                path: rel.to_string(),
                reason: e.to_string(),
            })?;
            modules::modinfo_depends(rel, &elf)
        })?;
        (
            text,
            format!(
                "modules.dep synthesized from each module's .modinfo depends= ({} ships no \
                 modules.dep: depmod runs at install time)",
                kernel_pkg.name
            ),
        )
    };
    let dep = ModulesDep::parse(&dep_text)?;
    let resolved = modules::resolve(modules::WANTED, &dep, &builtin)?;
    progress(&format!(
        "modules in load order: {}",
        resolved
            .load_order
            .iter()
            .map(|p| modules::module_name(p))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let mut files = Vec::new();
    let mut records = Vec::new();
    for rel in &resolved.load_order {
        let path = moddir.join(rel);
        let data = deb::read_decompressed(&path)?;
        let info = modules::modinfo(rel, &data)?;
        let vermagic = info
            .iter()
            .find_map(|kv| kv.strip_prefix("vermagic="))
            .unwrap_or_default();
        if vermagic.split_whitespace().next() != Some(release.as_str()) {
            return Err(BuildError::Vermagic {
                module: rel.clone(),
                vermagic: vermagic.to_string(),
                release,
            });
        }
        let file_name = modules::image_file_name(rel);
        let depends = dep
            .deps_of(rel)
            .unwrap_or_default()
            .iter()
            .map(|d| modules::module_name(d))
            .collect();
        records.push(ModuleRecord {
            name: modules::module_name(rel),
            file: file_name.clone(),
            source: rel.clone(),
            depends,
            sha256: deb::sha256_hex(&data),
        });
        let dep_files = dep
            .deps_of(rel)
            .unwrap_or_default()
            .iter()
            .map(|d| modules::image_file_name(d))
            .collect();
        files.push(ModuleFile {
            file_name,
            depends: dep_files,
            data,
        });
    }

    progress(&format!(
        "writing the initramfs (agent {} bytes, {} modules, gzip level {GZIP_LEVEL})",
        agent.len(),
        files.len()
    ));
    let cpio = initramfs::archive(agent, &files)?
        .to_bytes()
        .map_err(InitramfsError::from)?;
    let cpio_gz = initramfs::gzip(&cpio)?;
    Ok(Prepared {
        kernel_pkg,
        release,
        vmlinuz,
        dep_source,
        builtin: resolved.builtin,
        modules: records,
        cpio,
        cpio_gz,
    })
}

/// Checks the OVMF package against its pinned SHA-256 (the `ovmf-amdsev` entry of
/// `images/inputs.lock`) and returns its identity and the firmware bytes.
pub fn extract_ovmf(
    ovmf_deb: &Path,
    sha256: &str,
    work: &Path,
) -> Result<(PackageId, Vec<u8>), BuildError> {
    deb::verify_sha256(ovmf_deb, sha256)?;
    let pkg = deb::package_id(ovmf_deb)?;
    let dest = work.join("ovmf");
    deb::extract(ovmf_deb, &dest)?;
    let fd = dest.join(OVMF_IN_DEB);
    let bytes = std::fs::read(&fd).map_err(io_err(&fd))?;
    Ok((pkg, bytes))
}

/// What `cdvm-image build` is given.
#[derive(Clone, Debug)]
pub struct BuildConfig {
    /// The kernel `.deb`.
    pub kernel_deb: PathBuf,
    /// The AMD-SEV OVMF `.deb` (checked against the lock's `ovmf-amdsev`).
    pub ovmf_deb: PathBuf,
    /// The `systemd-boot-efi` `.deb` with the UKI's EFI stub (checked against the lock's
    /// `efi-stub`).
    pub stub_deb: PathBuf,
    /// `images/inputs.lock`: every input above (and the models' `models.json`) must be the file
    /// it pins, or the build stops naming the input.
    pub lock: PathBuf,
    /// The static agent binary.
    pub agent: PathBuf,
    /// The agent crate's version, for the manifest.
    pub agent_version: String,
    /// Output folder (created).
    pub out_dir: PathBuf,
    /// Base policy to copy rules from; with `policy_out`, the image policy is written.
    pub base_policy: Option<PathBuf>,
    /// Where to write the image policy.
    pub policy_out: Option<PathBuf>,
    /// The model directory (`models.json` and the files it lists) to put in `/models/`.
    pub models: Option<PathBuf>,
    /// Rebuild even if the manifest says the outputs are up to date.
    pub force: bool,
}

/// What [`build`] did.
#[derive(Debug)]
pub enum BuildOutcome {
    /// The image was (re)built.
    Built(Manifest),
    /// The recorded inputs and outputs matched; nothing was rebuilt (the policy was rewritten).
    UpToDate(Manifest),
}

impl BuildOutcome {
    /// The manifest either way.
    pub fn manifest(&self) -> &Manifest {
        match self {
            BuildOutcome::Built(m) | BuildOutcome::UpToDate(m) => m,
        }
    }
}

fn record_bytes(data: &[u8]) -> FileRecord {
    FileRecord {
        sha256: deb::sha256_hex(data),
        size: data.len() as u64,
    }
}

fn file_size(path: &Path) -> Result<u64, BuildError> {
    Ok(std::fs::metadata(path).map_err(io_err(path))?.len())
}

/// Writes `data` to `path` through a temporary file in the same folder and a rename.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    std::io::Write::write_all(&mut tmp, data).map_err(io_err(path))?;
    // NamedTempFile creates 0600; outputs are ordinary readable files.
    Ok(deb::persist(tmp, path)?)
}

/// Writes `initrd.img` at `path` (through a temporary file and a rename), streaming the model
/// files into it; returns what was written.
pub fn write_initrd_file(
    path: &Path,
    models: Option<&ModelSet>,
    cpio_gz: &[u8],
) -> Result<initramfs::InitrdWritten, BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    let out = std::io::BufWriter::with_capacity(1 << 20, tmp);
    let (out, written) = initramfs::write_initrd(out, models, cpio_gz)?;
    let tmp = out.into_inner().map_err(|e| io_err(path)(e.into_error()))?;
    deb::persist(tmp, path)?;
    Ok(written)
}

/// The inputs an up-to-date check compares with a previous manifest.
#[derive(Clone, Debug)]
pub struct InputKey {
    /// `cdvm-image <version>`.
    pub builder: String,
    /// Hex SHA-256 of the kernel package.
    pub kernel_sha256: String,
    /// Hex SHA-256 of the AMD-SEV OVMF package.
    pub ovmf_sha256: String,
    /// Hex SHA-256 of the EFI stub package.
    pub stub_sha256: String,
    /// The input lock the inputs were checked against, if any.
    pub lock: Option<FileInput>,
    /// Hex SHA-256 of the agent binary.
    pub agent_sha256: String,
    /// The agent's crate version.
    pub agent_version: String,
    /// The base policy, if any.
    pub base_policy: Option<FileInput>,
    /// The models, if any.
    pub models: Option<ModelsInput>,
}

impl InputKey {
    /// Whether `old` was built from these inputs (and the current format, input lock and
    /// command line). Models compare by content (manifest hash and every file's name, file,
    /// hash and size), not by where they were read from.
    pub fn matches(&self, old: &Manifest) -> bool {
        let same_models = match (&old.inputs.models, &self.models) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_content(b),
            _ => false,
        };
        old.builder == self.builder
            && old.format == FORMAT
            && old.inputs.kernel_deb.sha256 == self.kernel_sha256
            && old.inputs.ovmf_deb.sha256 == self.ovmf_sha256
            && old
                .inputs
                .stub_deb
                .as_ref()
                .is_some_and(|s| s.sha256 == self.stub_sha256)
            // The manifest names the lock it was checked against: a new lock rebuilds (by
            // content, like the models: the same lock elsewhere is the same build).
            && old.inputs.lock.as_ref().map(|l| &l.sha256) == self.lock.as_ref().map(|l| &l.sha256)
            // The UKI's os-release is made here from the agent's version: a new text rebuilds.
            && old
                .uefi
                .as_ref()
                .is_some_and(|u| u.os_release == uki::os_release(&self.agent_version))
            && old.inputs.agent.sha256 == self.agent_sha256
            && old.inputs.agent.version == self.agent_version
            && old.inputs.base_policy == self.base_policy
            && old.cmdline == CMDLINE
            && same_models
    }
}

fn outputs_match(out_dir: &Path, manifest: &Manifest) -> bool {
    manifest
        .outputs
        .iter()
        .all(|(name, rec)| deb::sha256_file(&out_dir.join(name)).is_ok_and(|h| h == rec.sha256))
}

/// The image policy's text for a manifest.
pub fn policy_text(base: &str, manifest: &Manifest) -> Result<String, BuildError> {
    let k = &manifest.inputs.kernel_deb;
    let o = &manifest.inputs.ovmf_deb;
    let initrd = manifest
        .outputs
        .get(INITRD)
        .map(|r| r.sha256.as_str())
        .unwrap_or("?");
    let pinned: Vec<Pinned> = manifest
        .snp
        .digests
        .iter()
        .map(|d| Pinned {
            measurement: d.measurement.clone(),
            source: format!(
                "{}: {} {}, initrd.img sha256 {}, {} {}, cmdline {:?}, {} vCPU {}, guest features {}",
                manifest.builder,
                k.package,
                k.version,
                initrd,
                o.package,
                o.version,
                manifest.cmdline,
                d.vcpus,
                d.cpu,
                manifest.snp.guest_features
            ),
        })
        .collect();
    let header = "GENERATED by `cdvm-image build` (scripts/build-image) from policies/default-snp.yaml;\n\
                  do not edit: change default-snp.yaml or the image recipe and rebuild.\n\
                  \n\
                  SEV-SNP policy for the ConfidentialDVM guest image: the same roots, TCB floors and\n\
                  guest-policy rules as default-snp.yaml, and the image's expected launch digests\n\
                  (QEMU direct boot of target/image/ with the AMD-SEV OVMF; see docs/image.md).\n\
                  BINDING: image_binding: hardware. Full hardware binding: the launch digest covers\n\
                  the firmware, kernel, initrd and command line.";
    Ok(policy::image_policy(
        base,
        "image-sev-snp",
        header,
        &pinned,
    )?)
}

/// Builds the image into `cfg.out_dir` (see the crate docs), or finds it up to date.
pub fn build(
    cfg: &BuildConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildOutcome, BuildError> {
    let builder = format!("cdvm-image {}", env!("CARGO_PKG_VERSION"));
    std::fs::create_dir_all(&cfg.out_dir).map_err(io_err(&cfg.out_dir))?;

    progress(&format!(
        "checking the inputs against {}",
        cfg.lock.display()
    ));
    let (lock, lock_sha256) = Lock::load(&cfg.lock)?;
    let lock_input = FileInput {
        path: cfg.lock.display().to_string(),
        sha256: lock_sha256,
    };
    let kernel_sha = inputs::verify_deb(&lock, InputId::Kernel, &cfg.kernel_deb)?;
    let ovmf_sha = inputs::verify_deb(&lock, InputId::OvmfAmdsev, &cfg.ovmf_deb)?;
    let stub_sha = inputs::verify_deb(&lock, InputId::EfiStub, &cfg.stub_deb)?;
    if let Some(dir) = &cfg.models {
        inputs::verify_models(&lock, dir)?;
    }
    let agent_bytes = std::fs::read(&cfg.agent).map_err(io_err(&cfg.agent))?;
    let base_policy = match &cfg.base_policy {
        Some(p) => Some((p.clone(), std::fs::read_to_string(p).map_err(io_err(p))?)),
        None => None,
    };
    let base_input = base_policy.as_ref().map(|(p, text)| FileInput {
        path: p.display().to_string(),
        sha256: deb::sha256_hex(text.as_bytes()),
    });
    let models = match &cfg.models {
        Some(dir) => {
            progress(&format!(
                "checking the models in {} against its {}",
                dir.display(),
                model_files::MANIFEST
            ));
            let set = ModelSet::load(dir)?;
            progress(&format!(
                "models: {} ({} bytes)",
                set.models()
                    .iter()
                    .map(|m| format!("{} ({})", m.name, m.file))
                    .collect::<Vec<_>>()
                    .join(", "),
                set.total_size()
            ));
            Some(set)
        }
        None => None,
    };
    let key = InputKey {
        builder: builder.clone(),
        kernel_sha256: kernel_sha.clone(),
        ovmf_sha256: ovmf_sha.clone(),
        stub_sha256: stub_sha.clone(),
        lock: Some(lock_input),
        agent_sha256: deb::sha256_hex(&agent_bytes),
        agent_version: cfg.agent_version.clone(),
        base_policy: base_input.clone(),
        models: models.as_ref().map(ModelSet::input),
    };

    let manifest_path = cfg.out_dir.join(MANIFEST);
    let write_policy = |manifest: &Manifest| -> Result<(), BuildError> {
        if let (Some((_, base)), Some(out)) = (&base_policy, &cfg.policy_out) {
            let text = policy_text(base, manifest)?;
            if std::fs::read_to_string(out).ok().as_deref() != Some(text.as_str()) {
                write_atomic(out, text.as_bytes())?;
            }
        }
        Ok(())
    };

    if !cfg.force {
        if let Some(old) = std::fs::read_to_string(&manifest_path)
            .ok()
            .and_then(|t| Manifest::from_json(&t).ok())
        {
            if key.matches(&old) && outputs_match(&cfg.out_dir, &old) {
                progress("inputs and outputs unchanged since the last build: nothing to do");
                write_policy(&old)?;
                return Ok(BuildOutcome::UpToDate(old));
            }
        }
    }
    // A manifest only ever describes a finished build.
    if manifest_path.exists() {
        std::fs::remove_file(&manifest_path).map_err(io_err(&manifest_path))?;
    }

    let work = tempfile::Builder::new()
        .prefix("cdvm-image-")
        .tempdir()
        .map_err(io_err(Path::new("temporary folder")))?;
    let (ovmf_pkg, ovmf) = extract_ovmf(&cfg.ovmf_deb, &ovmf_sha, work.path())?;
    let prepared = prepare(&cfg.kernel_deb, &agent_bytes, work.path(), progress)?;
    let stub_pkg = deb::package_id(&cfg.stub_deb)?;
    let stub = uki::extract_stub(&cfg.stub_deb, &stub_sha, work.path())?;

    progress(&format!("writing {}", cfg.out_dir.display()));
    let files: [(&str, &[u8]); 3] = [
        (VMLINUZ, &prepared.vmlinuz),
        (CMDLINE_FILE, CMDLINE.as_bytes()),
        (OVMF_FILE, &ovmf),
    ];
    let mut outputs = BTreeMap::new();
    for (name, data) in files {
        write_atomic(&cfg.out_dir.join(name), data)?;
        outputs.insert(name.to_string(), record_bytes(data));
    }
    if let Some(set) = &models {
        progress(&format!(
            "writing {INITRD}: the models archive ({} files, uncompressed), then the gzip archive",
            set.models().len() + 1
        ));
    }
    let written = write_initrd_file(
        &cfg.out_dir.join(INITRD),
        models.as_ref(),
        &prepared.cpio_gz,
    )?;
    outputs.insert(INITRD.to_string(), written.initrd.clone());
    drop(work);

    progress(&format!(
        "writing {UKI_FILE} ({} {} + kernel + initrd + cmdline + os-release) and {DISK_FILE}",
        stub_pkg.name, stub_pkg.version
    ));
    let uefi = build_uefi(
        &stub,
        &cfg.agent_version,
        &cfg.out_dir.join(VMLINUZ),
        &cfg.out_dir.join(INITRD),
        CMDLINE,
        &cfg.out_dir,
    )?;
    for (name, sha256, size) in [
        (UKI_FILE, &uefi.uki.sha256, uefi.uki.size),
        (DISK_FILE, &uefi.disk.sha256, uefi.disk.size),
    ] {
        outputs.insert(
            name.to_string(),
            FileRecord {
                sha256: sha256.clone(),
                size,
            },
        );
    }

    progress("computing SEV-SNP launch digests");
    let fw = Firmware::load(&cfg.out_dir.join(OVMF_FILE))?;
    let mut digests = Vec::new();
    for cpu in CpuModel::ALL {
        for vcpus in DIGEST_VCPUS {
            let d = fw.launch_digest(
                &cfg.out_dir.join(VMLINUZ),
                &cfg.out_dir.join(INITRD),
                CMDLINE,
                vcpus,
                cpu,
            )?;
            digests.push(DigestRecord {
                cpu: cpu.qemu_name().to_string(),
                sev_cpu_type: match cpu {
                    CpuModel::Milan => "EpycMilan",
                    CpuModel::Genoa => "EpycGenoa",
                }
                .to_string(),
                vcpus,
                measurement: hex::encode(d),
            });
        }
    }

    let manifest = Manifest {
        format: FORMAT,
        builder,
        inputs: Inputs {
            kernel_deb: PackageInput {
                package: prepared.kernel_pkg.name.clone(),
                version: prepared.kernel_pkg.version.clone(),
                path: cfg.kernel_deb.display().to_string(),
                sha256: kernel_sha,
                size: file_size(&cfg.kernel_deb)?,
            },
            ovmf_deb: PackageInput {
                package: ovmf_pkg.name,
                version: ovmf_pkg.version,
                path: cfg.ovmf_deb.display().to_string(),
                sha256: ovmf_sha,
                size: file_size(&cfg.ovmf_deb)?,
            },
            agent: AgentInput {
                path: cfg.agent.display().to_string(),
                version: cfg.agent_version.clone(),
                build: AGENT_BUILD.to_string(),
                sha256: deb::sha256_hex(&agent_bytes),
                size: agent_bytes.len() as u64,
            },
            base_policy: base_input,
            models: key.models.clone(),
            stub_deb: Some(PackageInput {
                package: stub_pkg.name,
                version: stub_pkg.version,
                path: cfg.stub_deb.display().to_string(),
                sha256: stub_sha,
                size: file_size(&cfg.stub_deb)?,
            }),
            lock: key.lock.clone(),
        },
        kernel_release: prepared.release.clone(),
        cmdline: CMDLINE.to_string(),
        modules: Modules {
            dep_source: prepared.dep_source.clone(),
            wanted: modules::WANTED.iter().map(|s| s.to_string()).collect(),
            builtin: prepared.builtin.clone(),
            load_order: prepared.modules.clone(),
        },
        initrd: InitrdInfo {
            format: match &written.models_cpio {
                None => format!(
                    "{INITRD_FORMAT}; modules in /{MODULE_DIR}/, order in /{MODULE_DIR}/{LOAD_ORDER}"
                ),
                Some(_) => format!(
                    "{MODELS_FORMAT}, then {INITRD_FORMAT}; modules in /{MODULE_DIR}/, order in \
                     /{MODULE_DIR}/{LOAD_ORDER}"
                ),
            },
            cpio_sha256: deb::sha256_hex(&prepared.cpio),
            cpio_size: prepared.cpio.len() as u64,
            models_cpio: written.models_cpio.clone(),
        },
        outputs,
        snp: SnpInfo {
            method: "sev crate 8.x measurement::snp (SNP_LAUNCH_UPDATE page digests: OVMF pages, \
                     OVMF SEV metadata sections incl. QEMU's kernel-hashes table, one VMSA per vCPU)"
                .to_string(),
            vmm: "QEMU".to_string(),
            guest_features: format!("{GUEST_FEATURES:#x}"),
            ovmf_hash: fw.ovmf_hash_hex().to_string(),
            digests,
        },
        uefi: Some(uefi_info(
            &stub,
            &cfg.agent_version,
            &uefi,
            uefi_expected(&cfg.out_dir, &uefi)?,
        )),
    };
    write_atomic(&manifest_path, manifest.to_json()?.as_bytes())?;
    write_policy(&manifest)?;
    Ok(BuildOutcome::Built(manifest))
}
