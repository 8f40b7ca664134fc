//! `manifest.json`: what went into the image and what came out, with hashes, so that anyone can
//! rebuild it and compare, and so that the launch digests can be traced to their inputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest's format version; bumped whenever the image layout changes, so an old build is
/// never taken for up to date (2: /etc/cdvm-release; 3: the models archive and /models; 4: the
/// UKI and the UEFI disk).
pub const FORMAT: u32 = 4;

/// The whole manifest. Field order is fixed and maps are sorted, so the same build writes the
/// same JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// `cdvm-image <version>`.
    pub builder: String,
    /// The inputs.
    pub inputs: Inputs,
    /// The kernel release (`uname -r` in the guest), e.g. `6.12.95+deb12-amd64`.
    pub kernel_release: String,
    /// The kernel command line, exactly as passed to QEMU's `-append` and measured.
    pub cmdline: String,
    /// The modules in the initramfs.
    pub modules: Modules,
    /// How the initramfs is made.
    pub initrd: InitrdInfo,
    /// Every file written to the output folder (except this manifest), by name.
    pub outputs: BTreeMap<String, FileRecord>,
    /// The expected SEV-SNP launch digests.
    pub snp: SnpInfo,
    /// How `uki.efi` and `disk.raw` are laid out (absent before format 4).
    #[serde(default)]
    pub uefi: Option<UefiInfo>,
}

/// The UKI and the UEFI disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UefiInfo {
    /// The stub's path inside its package.
    pub stub: String,
    /// Hex SHA-256 of the stub.
    pub stub_sha256: String,
    /// The `.osrel` text.
    pub os_release: String,
    /// The sections appended to the stub, in file order.
    pub uki_sections: Vec<UkiSectionRecord>,
    /// The disk.
    pub disk: DiskInfo,
    /// What a UEFI boot of the UKI leaves in PCRs and RTMR events (docs/image.md).
    pub expected: crate::expected::UefiExpected,
}

/// One section appended to the stub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UkiSectionRecord {
    /// `.linux`, `.initrd`…
    pub name: String,
    /// Its RVA.
    pub virtual_address: u32,
    /// Its exact size.
    pub virtual_size: u32,
    /// Its offset in `uki.efi`.
    pub file_offset: u32,
    /// Its size in the file (rounded up to the stub's `FileAlignment`).
    pub size_of_raw_data: u32,
}

/// The disk's layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskInfo {
    /// Partitioning.
    pub table: String,
    /// The disk's GUID.
    pub disk_guid: String,
    /// The ESP's partition GUID.
    pub esp_guid: String,
    /// The ESP's first sector (512-byte sectors).
    pub esp_first_lba: u64,
    /// The ESP's size in sectors.
    pub esp_sectors: u64,
    /// The FAT32 volume id, hex.
    pub esp_volume_id: String,
    /// The FAT32 cluster size in bytes.
    pub esp_cluster_bytes: u64,
    /// The UKI's offset on the disk (`EFI/BOOT/BOOTX64.EFI`'s first cluster).
    pub uki_offset: u64,
}

/// The build's inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// The Debian kernel package.
    pub kernel_deb: PackageInput,
    /// The Debian AMD-SEV OVMF package.
    pub ovmf_deb: PackageInput,
    /// The static guest agent.
    pub agent: AgentInput,
    /// The policy the generated one copies its rules from, if one was generated.
    pub base_policy: Option<FileInput>,
    /// The model directory whose `models.json` and files are in `/models/`, if any.
    #[serde(default)]
    pub models: Option<ModelsInput>,
    /// The `systemd-boot-efi` package whose EFI stub the UKI is built on (absent before
    /// format 4).
    #[serde(default)]
    pub stub_deb: Option<PackageInput>,
    /// `images/inputs.lock`, which every input above was checked against (absent in manifests
    /// built before the lock).
    #[serde(default)]
    pub lock: Option<FileInput>,
}

/// The model directory (`--models`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsInput {
    /// Where the build read it.
    pub path: String,
    /// Hex SHA-256 of its `models.json` (in the image as `/models/models.json`).
    pub manifest_sha256: String,
    /// The files it lists, in its order, as checked and put in `/models/`.
    pub models: Vec<ModelRecord>,
}

impl ModelsInput {
    /// Same models in the image: the manifest's hash and every file's name, file, hash and size
    /// (not where they were read from).
    pub fn same_content(&self, other: &ModelsInput) -> bool {
        self.manifest_sha256 == other.manifest_sha256 && self.models == other.models
    }
}

/// One model file in `/models/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRecord {
    /// The model's name in `models.json` (the attestation event's `model` tag names it).
    pub name: String,
    /// Its file name in `/models/`.
    pub file: String,
    /// Hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A `.deb` input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageInput {
    /// `Package:` from its control file.
    pub package: String,
    /// `Version:` from its control file.
    pub version: String,
    /// Where the build read it (relative to the repository root when built by
    /// `scripts/build-image`).
    pub path: String,
    /// Hex SHA-256 of the `.deb`.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The agent binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    /// Where the build read it.
    pub path: String,
    /// The `cdvm-agent` crate version.
    pub version: String,
    /// How it was built.
    pub build: String,
    /// Hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Another file input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileInput {
    /// Where the build read it.
    pub path: String,
    /// Hex SHA-256.
    pub sha256: String,
}

/// The modules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modules {
    /// Where the dependency information came from.
    pub dep_source: String,
    /// The modules asked for ([`crate::modules::WANTED`]).
    pub wanted: Vec<String>,
    /// Wanted modules that are built into the kernel (not in the image).
    pub builtin: Vec<String>,
    /// The modules in `/lib/modules/cdvm/`, in load order.
    pub load_order: Vec<ModuleRecord>,
}

/// One module in the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleRecord {
    /// Module name (`sev_guest`).
    pub name: String,
    /// File name in the image (`sev-guest.ko`).
    pub file: String,
    /// Path in the package, relative to `/lib/modules/<release>/`.
    pub source: String,
    /// Its direct dependencies' module names.
    pub depends: Vec<String>,
    /// Hex SHA-256 of the (uncompressed) file in the image.
    pub sha256: String,
}

/// How `initrd.img` is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitrdInfo {
    /// Archive format and compression.
    pub format: String,
    /// Hex SHA-256 of the main archive (`/init`, modules…), uncompressed; `initrd.img` holds it
    /// gzip-compressed.
    pub cpio_sha256: String,
    /// Size of the main archive, uncompressed.
    pub cpio_size: u64,
    /// The uncompressed models archive that comes first in `initrd.img`, when there are models:
    /// `initrd.img` is this archive followed by the gzip of the cpio archive above.
    #[serde(default)]
    pub models_cpio: Option<FileRecord>,
}

/// An output file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The SEV-SNP launch digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpInfo {
    /// How they were computed.
    pub method: String,
    /// The VMM whose launch sequence is modelled.
    pub vmm: String,
    /// SEV features in the VMSA, hex ([`crate::measure::GUEST_FEATURES`]).
    pub guest_features: String,
    /// The OVMF pages' own digest (the seed of every launch digest), hex.
    pub ovmf_hash: String,
    /// One digest per vCPU model and count.
    pub digests: Vec<DigestRecord>,
}

/// One expected launch digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestRecord {
    /// QEMU `-cpu` model.
    pub cpu: String,
    /// The `sev` crate's `CpuType` variant used.
    pub sev_cpu_type: String,
    /// `-smp`.
    pub vcpus: u32,
    /// The 48-byte MEASUREMENT, hex.
    pub measurement: String,
}

impl Manifest {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// Parses a manifest.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}
