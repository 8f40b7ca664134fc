//! The orchestrator's YAML configuration. Unknown fields are errors: a typo must not silently
//! fall back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The DVM's Nostr identity.
    pub identity: Identity,
    /// Tag put on every VM so the reconciler can find this orchestrator's VMs.
    pub owner_tag: String,
    /// Relays to read requests from and publish feedback to.
    pub relays: Vec<String>,
    /// Folder for the job store and provider state. Relative paths are from the working directory.
    pub state_dir: PathBuf,
    /// The VM backend, written as a one-key map: `provider: { process: { … } }`.
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub provider: ProviderConfig,
    /// What jobs are served.
    pub jobs: JobsConfig,
    /// Admission limits.
    #[serde(default)]
    pub limits: Limits,
    /// Stage deadlines.
    #[serde(default)]
    pub deadlines: Deadlines,
    /// The attestation policy the orchestrator applies to decide which guest key it follows for a
    /// job (anyone can publish an event tagged to a job). Availability only: users verify for
    /// themselves. Default: the provider's own (the process provider's development policy).
    #[serde(default)]
    pub guest_policy: Option<PathBuf>,
    /// Seconds between reconciler passes.
    #[serde(default = "default_reconcile")]
    pub reconcile_interval_secs: u64,
    /// NIP-89 announcement text.
    pub announce: Announce,
}

/// Where the DVM's secret key lives.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// File holding the hex or nsec secret key; created (mode 0600) if missing.
    pub secret_key_file: PathBuf,
}

/// The VM backend and its settings. One variant per provider feature.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ProviderConfig {
    /// Local agent processes with a simulated secure processor (development only).
    Process {
        /// The agent executable. Default: `cdvm-agent` next to the orchestrator executable.
        #[serde(default)]
        agent_binary: Option<PathBuf>,
        /// The platform the simulated SEV-SNP guests play: `bare` (configfs-tsm) or
        /// `azure-vtpm` (swtpm behind an emulated paravisor). Default: `bare`.
        #[serde(default)]
        platform: ProcessPlatform,
        /// The RAG job's model directory (`scripts/fetch-models` makes `target/models`); without
        /// it the agents refuse job kind 5050. Part of the simulated measurement.
        #[serde(default)]
        models_dir: Option<PathBuf>,
        /// Inference threads per agent (default: every CPU).
        #[serde(default)]
        inference_threads: Option<usize>,
    },
    /// One QEMU process per job booting the guest image (`scripts/build-image`).
    Qemu(QemuProviderConfig),
    /// The same QEMU VMs on a remote bare-metal host reached over SSH.
    Ssh(SshProviderConfig),
    /// EC2 SEV-SNP instances (feature `provider-aws`); keys = terraform/aws outputs.
    Aws(AwsSection),
    /// Compute Engine confidential VMs (feature `provider-gcp`); keys = terraform/gcp outputs.
    Gcp(GcpSection),
    /// Azure confidential VMs (feature `provider-azure`); keys = terraform/azure outputs.
    Azure(AzureSection),
}

/// The platform a process-provider guest plays (development only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessPlatform {
    /// Bare metal / KVM: configfs-tsm.
    #[default]
    Bare,
    /// An Azure confidential VM: vTPM and IMDS.
    AzureVtpm,
}

/// The `aws` section: the backend's own config type when the feature is built in.
#[cfg(feature = "provider-aws")]
pub type AwsSection = cdvm_provider_aws::AwsProviderConfig;
/// The `aws` section in a build without the feature: read, then refused when the provider is built.
#[cfg(not(feature = "provider-aws"))]
pub type AwsSection = serde::de::IgnoredAny;
/// The `gcp` section: the backend's own config type when the feature is built in.
#[cfg(feature = "provider-gcp")]
pub type GcpSection = cdvm_provider_gcp::GcpProviderConfig;
/// The `gcp` section in a build without the feature.
#[cfg(not(feature = "provider-gcp"))]
pub type GcpSection = serde::de::IgnoredAny;
/// The `azure` section: the backend's own config type when the feature is built in.
#[cfg(feature = "provider-azure")]
pub type AzureSection = cdvm_provider_azure::AzureProviderConfig;
/// The `azure` section in a build without the feature.
#[cfg(not(feature = "provider-azure"))]
pub type AzureSection = serde::de::IgnoredAny;

impl ProviderConfig {
    /// Whether the VMs run in a public cloud (no policy of the provider's own).
    pub fn is_cloud(&self) -> bool {
        matches!(self, Self::Aws(_) | Self::Gcp(_) | Self::Azure(_))
    }
}

/// Settings of the SSH provider (feature `provider-ssh`): where the host is, how to log in, and
/// the QEMU settings it runs VMs with (`docs/ssh-provider.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshProviderConfig {
    /// Host name or address.
    pub host: String,
    /// SSH port.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Local private key file (unencrypted OpenSSH or PEM).
    pub private_key: PathBuf,
    /// The host's public key line or its `SHA256:` fingerprint; any other key is refused.
    pub known_host_key: String,
    /// The provider's folder on the host (absolute).
    pub remote_dir: PathBuf,
    /// The guest image folder on this machine (uploaded once per content hash).
    pub image_dir: PathBuf,
    /// The QEMU executable on the host.
    #[serde(default = "default_qemu")]
    pub qemu: PathBuf,
    /// `tcg` or `kvm`.
    pub accel: QemuAccel,
    /// `sim` (only mode accepted until the image has a hardware attester).
    pub tee: QemuTee,
    /// CPU model the launch digest is computed for.
    #[serde(default = "default_cpu")]
    pub cpu: QemuCpu,
    /// A VM is killed after this many seconds on the host (`timeout -s KILL`).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u64,
}

fn default_ssh_port() -> u16 {
    22
}

/// Settings of the QEMU provider (feature `provider-qemu`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuProviderConfig {
    /// The built guest image folder.
    pub image_dir: PathBuf,
    /// The QEMU executable.
    #[serde(default = "default_qemu")]
    pub qemu: PathBuf,
    /// `tcg` (software, works anywhere) or `kvm`.
    pub accel: QemuAccel,
    /// `sim` (plain VM + host-side simulated secure processor), `sev-snp` or `tdx`.
    pub tee: QemuTee,
    /// CPU model the launch digest is computed for: `milan` or `genoa`.
    #[serde(default = "default_cpu")]
    pub cpu: QemuCpu,
    /// A VM is killed after this many seconds, whatever else happens.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u64,
    /// `direct` (default: QEMU loads the kernel, initrd and command line) or `disk` (UEFI
    /// firmware boots the image's `disk.raw`, as a cloud does; `tee: sim` only).
    #[serde(default)]
    pub boot: QemuBoot,
    /// With `boot: disk`: the folder holding `OVMF_CODE_4M.fd` and `OVMF_VARS_4M.fd`.
    #[serde(default = "default_uefi_firmware_dir")]
    pub uefi_firmware_dir: PathBuf,
}

/// How QEMU boots the guest image.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum QemuBoot {
    /// `-kernel`/`-initrd`/`-append`.
    #[default]
    Direct,
    /// UEFI from pflash, then `disk.raw`.
    Disk,
}

/// Where Debian's `ovmf` package installs the firmware.
fn default_uefi_firmware_dir() -> PathBuf {
    PathBuf::from("/usr/share/OVMF")
}

/// QEMU acceleration.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum QemuAccel {
    /// Software emulation.
    Tcg,
    /// /dev/kvm.
    Kvm,
}

/// Secure processor of QEMU guests.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum QemuTee {
    /// Host-side simulated secure processor (development only).
    Sim,
    /// AMD SEV-SNP hardware.
    SevSnp,
    /// Intel TDX hardware.
    Tdx,
}

/// CPU model for the launch digest.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum QemuCpu {
    /// AMD EPYC Milan.
    Milan,
    /// AMD EPYC Genoa.
    Genoa,
}

fn default_qemu() -> PathBuf {
    PathBuf::from("qemu-system-x86_64")
}

fn default_cpu() -> QemuCpu {
    QemuCpu::Milan
}

fn default_max_lifetime() -> u64 {
    900
}

/// Served job kinds and TEEs, and the VM size.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// NIP-90 request kinds served (each must have an executor in the guest image).
    pub kinds: Vec<u16>,
    /// TEE types offered (`sev-snp`).
    pub tees: Vec<String>,
    /// VM size for every job.
    pub vm_class: VmClassConfig,
    /// At most this many jobs at once; more are refused with a feedback.
    #[serde(default = "default_concurrent")]
    pub max_concurrent: usize,
    /// Largest input per job kind, plaintext bytes (docs/protocol.md §5.8): announced, given to
    /// the guest in its bootstrap, checked by client and guest. A kind not listed gets 1 GiB.
    #[serde(default)]
    pub max_input_bytes: std::collections::BTreeMap<u16, u64>,
}

impl JobsConfig {
    /// The input cap for `kind`.
    pub fn max_input_for(&self, kind: u16) -> u64 {
        self.max_input_bytes
            .get(&kind)
            .copied()
            .unwrap_or(cdvm_protocol::DEFAULT_MAX_INPUT_BYTES)
    }
}

/// VM size.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmClassConfig {
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
}

/// Admission limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted request event (serialized JSON bytes).
    #[serde(default = "default_max_request")]
    pub max_request_bytes: usize,
    /// Requests per user per minute; the first excess gets an error feedback, the rest are dropped.
    #[serde(default = "default_per_user")]
    pub per_user_per_minute: u32,
    /// Requests older than this (seconds) are ignored: the user has long given up.
    #[serde(default = "default_max_age")]
    pub max_request_age_secs: u64,
    /// Refusals (error feedback to refused requests) published per second at most, a one-second
    /// burst allowed; beyond it they are dropped unanswered and counted, so a flood of refused
    /// requests cannot slow real jobs (0: refusals are never published).
    #[serde(default = "default_refusals_per_second")]
    pub refusals_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: default_max_request(),
            per_user_per_minute: default_per_user(),
            max_request_age_secs: default_max_age(),
            refusals_per_second: default_refusals_per_second(),
        }
    }
}

fn default_refusals_per_second() -> u32 {
    20
}

/// Deadlines per stage, in seconds (docs/protocol.md §6.1). A VM never outlives their sum plus
/// the backstop grace.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadlines {
    /// From launch to the guest's attestation event. Owned and enforced by the orchestrator.
    #[serde(default = "default_attest")]
    pub attest_secs: u64,
    /// From attestation to the input: given to the guest in the bootstrap; the guest owns it,
    /// announces it and reports its passing (the orchestrator's backstop is 30 s later).
    #[serde(default = "default_input")]
    pub input_secs: u64,
    /// From input to the result: the executor's time limit, owned by the guest like `input_secs`.
    #[serde(default = "default_run")]
    pub run_secs: u64,
    /// The slowest blob download the operator plans for, in bytes per second. The guest's run
    /// deadline grows by `max_input_bytes / transfer_bytes_per_sec` for its kind: it scales with
    /// the cap, because the orchestrator never learns an input's actual size (§6.1).
    #[serde(default = "default_transfer_rate")]
    pub transfer_bytes_per_sec: u64,
}

impl Deadlines {
    /// The guest's run deadline for a job whose input may be up to `max_input_bytes`: `run_secs`
    /// plus the download allowance, rounded up, saturating.
    pub fn run_secs_for(&self, max_input_bytes: u64) -> u64 {
        let rate = self.transfer_bytes_per_sec.max(1);
        self.run_secs.saturating_add(max_input_bytes.div_ceil(rate))
    }
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            attest_secs: default_attest(),
            input_secs: default_input(),
            run_secs: default_run(),
            transfer_bytes_per_sec: default_transfer_rate(),
        }
    }
}

/// NIP-89 announcement text.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// Display name.
    pub name: String,
    /// Description.
    pub about: String,
    /// Blossom servers suggested to users for large inputs (https URLs).
    #[serde(default)]
    pub blossom: Vec<String>,
    /// The guest image's model manifest (`models.json`, docs/rag.md): its models are listed in
    /// the announcement. Default: the process provider's `models_dir`/models.json, if any.
    #[serde(default)]
    pub models: Option<PathBuf>,
}

fn default_transfer_rate() -> u64 {
    // 8 MiB/s: a slow cloud link; 1 GiB adds 128 s to the run deadline.
    8 << 20
}
fn default_reconcile() -> u64 {
    30
}
fn default_concurrent() -> usize {
    4
}
fn default_max_request() -> usize {
    16 * 1024
}
fn default_per_user() -> u32 {
    6
}
fn default_max_age() -> u64 {
    600
}
fn default_attest() -> u64 {
    60
}
fn default_input() -> u64 {
    120
}
fn default_run() -> u64 {
    120
}

/// A configuration error, with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read config {path}")]
    Io {
        /// The path.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Not valid YAML for this schema.
    #[error("invalid config {path}: {source}")]
    Parse {
        /// The path.
        path: String,
        /// The failure.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A value is out of range.
    #[error("invalid config {path}: {reason}")]
    Invalid {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates config text; `path` is only for messages.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let cfg: Config = serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })?;
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.into(),
            reason,
        };
        if cfg.relays.is_empty() {
            return Err(invalid("relays: at least one relay is required".into()));
        }
        if cfg.owner_tag.is_empty()
            || !cfg
                .owner_tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(
                "owner_tag: use letters, digits and '-' only".into(),
            ));
        }
        for k in &cfg.jobs.kinds {
            if !(cdvm_protocol::kinds::JOB_REQUEST_MIN..=cdvm_protocol::kinds::JOB_REQUEST_MAX)
                .contains(k)
            {
                return Err(invalid(format!(
                    "jobs.kinds: {k} is not a NIP-90 request kind (5000-5999)"
                )));
            }
        }
        for t in &cfg.jobs.tees {
            if cdvm_protocol::TeeKind::parse(t).is_none() {
                return Err(invalid(format!(
                    "jobs.tees: unknown TEE {t:?} (known: sev-snp)"
                )));
            }
        }
        if cfg.provider.is_cloud() && cfg.guest_policy.is_none() {
            return Err(invalid(
                "guest_policy: a cloud provider needs a policy for its guests (policies/ has them)"
                    .into(),
            ));
        }
        if cfg.limits.per_user_per_minute == 0 || cfg.jobs.max_concurrent == 0 {
            return Err(invalid("limits must be at least 1".into()));
        }
        if cfg.deadlines.attest_secs == 0 {
            return Err(invalid("deadlines.attest_secs must be at least 1".into()));
        }
        // Relays and the guest's deadlines go into every bootstrap: refuse here what the guest
        // would refuse there (docs/protocol.md §5.7).
        for url in &cfg.announce.blossom {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
                return Err(invalid(format!(
                    "announce.blossom: `{url}` is not an http(s) URL"
                )));
            }
        }
        if cfg.deadlines.transfer_bytes_per_sec == 0 {
            return Err(invalid(
                "deadlines.transfer_bytes_per_sec must be at least 1".into(),
            ));
        }
        for &kind in &cfg.jobs.kinds {
            let max_input_bytes = cfg.jobs.max_input_for(kind);
            let sample = cdvm_protocol::Bootstrap {
                request_id: "0".repeat(64),
                relays: cfg.relays.clone(),
                input_timeout_secs: cfg.deadlines.input_secs,
                run_timeout_secs: cfg.deadlines.run_secs_for(max_input_bytes),
                max_input_bytes,
            };
            sample.check().map_err(|e| {
                invalid(format!(
                    "relays / deadlines / jobs.max_input_bytes (kind {kind}): a guest would refuse this bootstrap: {e}"
                ))
            })?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orchestrator.yaml");
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.jobs.kinds, vec![5970, 5971, 5050]);
        assert!(matches!(
            &cfg.provider,
            ProviderConfig::Process { models_dir: Some(d), .. } if d.ends_with("target/models")
        ));
        assert_eq!(cfg.jobs.max_input_for(5970), 1 << 30);
        assert_eq!(cfg.jobs.max_input_for(5971), 256 << 20);
        // The run deadline covers a 1 GiB download at 8 MiB/s.
        assert_eq!(cfg.deadlines.run_secs_for(1 << 30), 120 + 128);
    }

    #[test]
    fn blossom_suggestions_must_be_urls_and_caps_positive() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orchestrator.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (from, to, field) in [
            (
                "  # blossom: [https://blossom.example.com]",
                "  blossom: [blossom.example.com]",
                "announce.blossom",
            ),
            ("5971: 268435456", "5971: 0", "max_input_bytes"),
            (
                "transfer_bytes_per_sec: 8388608",
                "transfer_bytes_per_sec: 0",
                "transfer_bytes_per_sec",
            ),
        ] {
            assert!(text.contains(from), "{from}");
            let p = dir.path().join("c.yaml");
            std::fs::write(&p, text.replace(from, to)).unwrap();
            let err = Config::load(&p).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn every_example_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let qemu = Config::load(&dir.join("orchestrator-qemu.yaml")).unwrap();
        assert!(
            matches!(&qemu.provider, ProviderConfig::Qemu(q) if q.accel == QemuAccel::Tcg && q.tee == QemuTee::Sim && q.boot == QemuBoot::Direct && q.uefi_firmware_dir == Path::new("/usr/share/OVMF"))
        );
        // The other boot mode parses too; an unknown one does not.
        let text = std::fs::read_to_string(dir.join("orchestrator-qemu.yaml")).unwrap();
        assert!(text.contains("boot: direct"));
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c.yaml");
        std::fs::write(&p, text.replace("boot: direct", "boot: disk")).unwrap();
        let disk = Config::load(&p).unwrap();
        assert!(matches!(&disk.provider, ProviderConfig::Qemu(q) if q.boot == QemuBoot::Disk));
        std::fs::write(&p, text.replace("boot: direct", "boot: floppy")).unwrap();
        assert!(Config::load(&p).is_err());
        let ssh = Config::load(&dir.join("orchestrator-ssh.yaml")).unwrap();
        assert!(
            matches!(&ssh.provider, ProviderConfig::Ssh(s) if s.port == 22 && s.accel == QemuAccel::Kvm)
        );
        // Every orchestrator config (examples/ also holds the RAG corpus).
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("orchestrator"))
            .collect();
        names.sort();
        #[cfg(feature = "provider-aws")]
        {
            let aws = Config::load(&dir.join("orchestrator-aws.yaml")).unwrap();
            assert!(
                matches!(&aws.provider, ProviderConfig::Aws(a) if a.allowed_instance_types == ["m6a.large", "c6a.xlarge"])
            );
        }
        #[cfg(feature = "provider-gcp")]
        {
            let gcp = Config::load(&dir.join("orchestrator-gcp.yaml")).unwrap();
            assert!(matches!(&gcp.provider, ProviderConfig::Gcp(g) if g.zone == "europe-west4-a"));
        }
        #[cfg(feature = "provider-azure")]
        {
            let azure = Config::load(&dir.join("orchestrator-azure.yaml")).unwrap();
            assert!(
                matches!(&azure.provider, ProviderConfig::Azure(a) if a.location == "westeurope")
            );
        }
        assert_eq!(
            names,
            [
                "orchestrator-aws.yaml",
                "orchestrator-azure.yaml",
                "orchestrator-gcp.yaml",
                "orchestrator-qemu.yaml",
                "orchestrator-ssh.yaml",
                "orchestrator.yaml"
            ],
            "a new example needs a parse test"
        );
    }

    /// The Terraform modules' outputs (terraform/config-keys.yaml) fill each cloud section one to
    /// one: every output is a field (unknown keys are refused), and no other field is required.
    #[test]
    fn terraform_outputs_fill_the_cloud_sections() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/config-keys.yaml");
        let keys: std::collections::BTreeMap<String, Vec<String>> =
            serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let section = |cloud: &str| {
            let mut map = serde_yaml_ng::Mapping::new();
            for k in &keys[cloud] {
                let value = if k.starts_with("allowed_") {
                    serde_yaml_ng::Value::Sequence(vec!["m6a.large".into()])
                } else {
                    serde_yaml_ng::Value::String(format!("{k}-value"))
                };
                map.insert(k.as_str().into(), value);
            }
            serde_yaml_ng::Value::Mapping(map)
        };
        #[cfg(feature = "provider-aws")]
        {
            let aws: AwsSection = serde_yaml_ng::from_value(section("aws")).unwrap();
            assert_eq!(aws.subnet_id, "subnet_id-value");
            assert_eq!(aws.allowed_instance_types, ["m6a.large"]);
            let mut extra = section("aws");
            if let serde_yaml_ng::Value::Mapping(m) = &mut extra {
                m.insert("not_an_output".into(), "x".into());
            }
            assert!(serde_yaml_ng::from_value::<AwsSection>(extra).is_err());
        }
        #[cfg(feature = "provider-gcp")]
        {
            let mut gcp = section("gcp");
            if let serde_yaml_ng::Value::Mapping(m) = &mut gcp {
                m.insert(
                    "allowed_machine_types".into(),
                    vec!["n2d-standard-2"].into(),
                );
            }
            let gcp: GcpSection = serde_yaml_ng::from_value(gcp).unwrap();
            assert_eq!(gcp.zone, "zone-value");
        }
        #[cfg(feature = "provider-azure")]
        {
            let azure: AzureSection = serde_yaml_ng::from_value(section("azure")).unwrap();
            assert_eq!(azure.resource_group, "resource_group-value");
        }
        assert_eq!(keys.len(), 3, "aws, gcp and azure");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orchestrator.yaml");
        let text = std::fs::read_to_string(path).unwrap() + "\nsurprise: 1\n";
        let err = Config::parse(&text, "x").unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn non_request_kind_is_rejected() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orchestrator.yaml");
        let text = std::fs::read_to_string(path).unwrap().replace("5971", "1");
        let err = Config::parse(&text, "x").unwrap_err();
        assert!(
            err.to_string().contains("not a NIP-90 request kind"),
            "{err}"
        );
    }

    #[test]
    fn relays_and_deadlines_a_guest_would_refuse_are_rejected() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orchestrator.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        for (from, to, says) in [
            ("ws://127.0.0.1:7777", "http://127.0.0.1:7777", "relay URL"),
            ("input_secs: 120", "input_secs: 0", "input_timeout_secs"),
            ("run_secs: 120", "run_secs: 100000", "run_timeout_secs"),
            ("attest_secs: 60", "attest_secs: 0", "attest_secs"),
        ] {
            assert!(text.contains(from), "{from}");
            let err = Config::parse(&text.replace(from, to), "x").unwrap_err();
            assert!(err.to_string().contains(says), "{to}: {err}");
        }
    }
}
