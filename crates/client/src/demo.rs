//! `cdvm demo`: the whole system on one machine. A real relay in this process, the orchestrator as
//! a supervised child process with the process provider (or the QEMU provider booting the guest
//! image under TCG), and this process playing the user.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cdvm_attestation::Policy;
use cdvm_protocol::nostr::Keys;

use crate::relay::TestRelay;
use crate::ClientError;

/// A running local deployment: relay + orchestrator. Everything stops when it is dropped.
#[derive(Debug)]
pub struct LocalDeployment {
    /// The relay.
    pub relay: TestRelay,
    /// The DVM's public key.
    pub dvm: Keys,
    /// The development policy the provider wrote (trusts its simulated root only).
    pub dev_policy: Policy,
    /// Path of that policy.
    pub dev_policy_path: PathBuf,
    /// The orchestrator's state folder.
    pub state_dir: PathBuf,
    orchestrator: Child,
    opts: DeploymentOptions,
}

/// Where the process provider keeps its VMs.
pub fn vms_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("process-provider").join("vms")
}

/// Where the QEMU provider keeps its VMs.
pub fn qemu_vms_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("qemu-provider").join("vms")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The executable `name` next to this one (how `cargo build` and installs lay them out).
pub fn sibling_binary(name: &str) -> Result<PathBuf, ClientError> {
    let exe = std::env::current_exe().map_err(io_err(Path::new("current executable")))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test executables live one level deeper, in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.exists() {
        return Err(ClientError::Usage(format!(
            "{} not found; build it with `cargo build --bins`",
            path.display()
        )));
    }
    Ok(path)
}

/// Knobs of a local deployment (the demo uses the defaults; tests tighten them).
#[derive(Clone, Debug)]
pub struct DeploymentOptions {
    /// Seconds for attestation, input and run.
    pub deadlines: (u64, u64, u64),
    /// Requests per user per minute.
    pub per_user_per_minute: u32,
    /// The agent each VM runs; default: `cdvm-agent` next to this executable.
    pub agent_binary: Option<PathBuf>,
    /// The orchestrator's log filter (`CDVM_LOG`).
    pub log_filter: String,
    /// Boot this guest image folder in QEMU (TCG, simulated secure processor) instead of
    /// running the agent as a process.
    pub qemu_image: Option<PathBuf>,
    /// With `qemu_image`: run QEMU on this host over SSH (the ssh provider).
    pub ssh: Option<SshHost>,
    /// With `qemu_image` (local QEMU only): boot the image's `disk.raw` through UEFI, as a cloud
    /// does, with the firmware in this folder (`OVMF_CODE_4M.fd`, `OVMF_VARS_4M.fd`), instead of
    /// loading the kernel directly.
    pub qemu_disk_firmware: Option<PathBuf>,
    /// A cloud backend against an emulator instead (takes precedence over the others).
    pub cloud: Option<CloudTarget>,
    /// The TEE the process provider simulates for the job (`tdx` needs FUSE: root and
    /// /dev/fuse). The other backends simulate SEV-SNP only.
    pub tee: cdvm_attestation::TeeKind,
    /// The process provider's SEV-SNP guests play Azure confidential VMs (swtpm behind an
    /// emulated paravisor, and IMDS) instead of bare-metal guests.
    pub azure_vtpm: bool,
    /// The input cap for both job kinds (`jobs.max_input_bytes`); `None`: the default (1 GiB).
    pub max_input_bytes: Option<u64>,
    /// Blossom servers the DVM suggests in its announcement (`announce.blossom`).
    pub blossom: Vec<String>,
    /// Serve the RAG job (kind 5050): the model directory the process provider's agents load
    /// (`scripts/fetch-models` makes `target/models`). The guest image carries its own.
    pub models_dir: Option<PathBuf>,
    /// Inference threads per agent (process provider; default: every CPU).
    pub inference_threads: Option<usize>,
    /// A crash point the orchestrator aborts at (`CDVM_FAILPOINT`, restart tests only).
    pub failpoint: Option<String>,
}

/// A cloud provider section for the orchestrator, pointed at an emulator.
#[derive(Clone, Debug)]
pub struct CloudTarget {
    /// The `provider:` value, in YAML flow style (`{ aws: { … } }`); its owner tag must be
    /// `cdvm-demo`, the deployment's.
    pub provider_yaml: String,
    /// The policy the orchestrator and the user check guests against (the emulator's booter
    /// writes a development policy for its simulated secure processor).
    pub guest_policy: PathBuf,
    /// Environment for the orchestrator (the SDKs' credential chains read it).
    pub env: Vec<(String, String)>,
}

/// A bare-metal host for the SSH provider.
#[derive(Clone, Debug)]
pub struct SshHost {
    /// Host name or address.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Private key file.
    pub private_key: PathBuf,
    /// The host's pinned public key line or `SHA256:` fingerprint.
    pub known_host_key: String,
    /// The provider's folder on the host.
    pub remote_dir: PathBuf,
}

impl Default for DeploymentOptions {
    fn default() -> Self {
        Self {
            deadlines: (60, 120, 120),
            per_user_per_minute: 6,
            agent_binary: None,
            log_filter: "info,nostr_relay_pool=warn,nostr_sdk=warn".into(),
            qemu_image: None,
            ssh: None,
            qemu_disk_firmware: None,
            cloud: None,
            tee: cdvm_attestation::TeeKind::SevSnp,
            azure_vtpm: false,
            max_input_bytes: None,
            blossom: Vec::new(),
            models_dir: None,
            inference_threads: None,
            failpoint: None,
        }
    }
}

impl LocalDeployment {
    /// Starts a relay and an orchestrator whose state lives in `state_dir`.
    pub async fn start(state_dir: &Path, opts: &DeploymentOptions) -> Result<Self, ClientError> {
        let relay = TestRelay::start()
            .await
            .map_err(|e| ClientError::Relay(format!("cannot start the local relay: {e}")))?;
        let dvm = Keys::generate();
        Self::start_orchestrator(state_dir, relay, dvm, opts).await
    }

    /// Restarts the relay on the same port with empty memory (an in-memory relay's restart):
    /// every event it held is gone; clients reconnect by themselves.
    pub async fn restart_relay(&mut self) -> Result<(), ClientError> {
        let port = self
            .relay
            .url()
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .ok_or_else(|| ClientError::Relay(format!("no port in {}", self.relay.url())))?;
        self.relay.shutdown();
        // The old listener may take a moment to let the port go.
        let mut last = None;
        for _ in 0..50 {
            match TestRelay::start_on(Some(port)).await {
                Ok(r) => {
                    self.relay = r;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(ClientError::Relay(format!(
            "cannot restart the relay on port {port}: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Arms (or, with `None`, disarms) the crash point for the orchestrator's next start.
    pub fn set_failpoint(&mut self, failpoint: Option<&str>) {
        self.opts.failpoint = failpoint.map(str::to_string);
    }

    /// Waits up to `timeout` for the orchestrator to exit on its own (a failpoint's abort).
    pub async fn wait_for_orchestrator_exit(&mut self, timeout: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < until {
            if !self.orchestrator_alive() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    /// Kills the orchestrator without warning (SIGKILL) and starts it again on the same state,
    /// relay and key: a crash and a restart.
    pub async fn crash_and_restart(&mut self) -> Result<(), ClientError> {
        let _ = self.orchestrator.kill();
        let _ = self.orchestrator.wait();
        self.orchestrator = spawn_orchestrator(&self.state_dir, &self.opts).await?;
        Ok(())
    }

    async fn start_orchestrator(
        state_dir: &Path,
        relay: TestRelay,
        dvm: Keys,
        opts: &DeploymentOptions,
    ) -> Result<Self, ClientError> {
        let deadlines = opts.deadlines;
        std::fs::create_dir_all(state_dir).map_err(io_err(state_dir))?;
        let key_file = state_dir.join("dvm.key");
        write_private(&key_file, &dvm.secret_key().to_secret_hex())?;
        if opts.qemu_disk_firmware.is_some() && (opts.qemu_image.is_none() || opts.ssh.is_some()) {
            return Err(ClientError::Usage(
                "the UEFI disk boot runs on the local QEMU provider only".into(),
            ));
        }
        let (provider, provider_dir) = match (&opts.qemu_image, &opts.ssh) {
            _ if opts.cloud.is_some() => (
                opts.cloud
                    .as_ref()
                    .map(|c| c.provider_yaml.clone())
                    .unwrap_or_default(),
                "",
            ),
            (Some(image), Some(ssh)) => (
                format!(
                    "{{ ssh: {{ host: {}, port: {}, user: {}, private_key: {}, known_host_key: {}, \
                     remote_dir: {}, image_dir: {}, accel: tcg, tee: sim }} }}",
                    yaml_str(&ssh.host),
                    ssh.port,
                    yaml_str(&ssh.user),
                    yaml_str(&ssh.private_key.display().to_string()),
                    yaml_str(&ssh.known_host_key),
                    yaml_str(&ssh.remote_dir.display().to_string()),
                    yaml_str(&image.display().to_string())
                ),
                "ssh-provider",
            ),
            (Some(image), None) => (
                format!(
                    "{{ qemu: {{ image_dir: {}, accel: tcg, tee: sim{} }} }}",
                    yaml_str(&image.display().to_string()),
                    match &opts.qemu_disk_firmware {
                        Some(fw) => format!(
                            ", boot: disk, uefi_firmware_dir: {}",
                            yaml_str(&fw.display().to_string())
                        ),
                        None => String::new(),
                    }
                ),
                "qemu-provider",
            ),
            (None, _) => {
                let agent_bin = match &opts.agent_binary {
                    Some(p) => p.clone(),
                    None => sibling_binary("cdvm-agent")?,
                };
                let models = match &opts.models_dir {
                    Some(dir) => format!(", models_dir: {}", yaml_str(&dir.display().to_string())),
                    None => String::new(),
                };
                let threads = match opts.inference_threads {
                    Some(n) => format!(", inference_threads: {n}"),
                    None => String::new(),
                };
                (
                    format!(
                        "{{ process: {{ agent_binary: {}, platform: {}{models}{threads} }} }}",
                        yaml_str(&agent_bin.display().to_string()),
                        if opts.azure_vtpm {
                            "azure-vtpm"
                        } else {
                            "bare"
                        }
                    ),
                    "process-provider",
                )
            }
        };
        let config = format!(
            "identity: {{ secret_key_file: {key} }}\n\
             owner_tag: cdvm-demo\n\
             relays: [{relay}]\n\
             state_dir: {state}\n\
             provider: {provider}\n\
             jobs: {{ kinds: [{kinds}], tees: [{tees}], vm_class: {{ vcpus: {vcpus}, memory_mib: {memory} }}, max_concurrent: 4{caps} }}\n\
             limits: {{ per_user_per_minute: {per_user} }}\n\
             deadlines: {{ attest_secs: {a}, input_secs: {i}, run_secs: {r} }}\n\
             reconcile_interval_secs: 5\n\
             {guest_policy}\
             announce: {{ name: ConfidentialDVM demo, about: 'Local demo with a SIMULATED TEE', blossom: [{blossom}] }}\n",
            caps = match opts.max_input_bytes {
                Some(n) => format!(", max_input_bytes: {{ 5970: {n}, 5971: {n}, 5050: {n} }}"),
                None => String::new(),
            },
            kinds = if opts.models_dir.is_some() {
                "5970, 5971, 5050"
            } else {
                "5970, 5971"
            },
            // The guest image carries the models (~150 MB) in its initramfs, unpacked into RAM
            // next to the compressed copy, and a RAG job adds llama.cpp's buffers: 512 MiB no
            // longer boots it. Process "VMs" take no memory setting.
            vcpus = 1,
            memory = if opts.models_dir.is_some() || opts.qemu_image.is_some() {
                1536
            } else {
                512
            },
            blossom = opts
                .blossom
                .iter()
                .map(|u| yaml_str(u))
                .collect::<Vec<_>>()
                .join(", "),
            key = yaml_str(&key_file.display().to_string()),
            relay = yaml_str(relay.url()),
            state = yaml_str(&state_dir.display().to_string()),
            a = deadlines.0,
            i = deadlines.1,
            r = deadlines.2,
            per_user = opts.per_user_per_minute,
            tees = if provider_dir == "process-provider" {
                "sev-snp, tdx"
            } else {
                "sev-snp"
            },
            guest_policy = match &opts.cloud {
                Some(c) => format!(
                    "guest_policy: {}\n",
                    yaml_str(&c.guest_policy.display().to_string())
                ),
                None => String::new(),
            },
        );
        let config_path = state_dir.join("orchestrator.yaml");
        std::fs::write(&config_path, config).map_err(io_err(&config_path))?;
        let orchestrator = spawn_orchestrator(state_dir, opts).await?;
        let dev_policy_path = match &opts.cloud {
            Some(c) => c.guest_policy.clone(),
            None if opts.tee == cdvm_attestation::TeeKind::Tdx => {
                if provider_dir != "process-provider" {
                    return Err(ClientError::Usage(
                        "a simulated TDX guest runs only on the process provider".into(),
                    ));
                }
                state_dir.join(provider_dir).join("dev-policy-tdx.yaml")
            }
            None => state_dir.join(provider_dir).join("dev-policy.yaml"),
        };
        let dev_policy = Policy::load(&dev_policy_path)
            .map_err(|e| ClientError::Usage(format!("cannot read the development policy: {e}")))?;
        Ok(Self {
            relay,
            dvm,
            dev_policy,
            dev_policy_path,
            state_dir: state_dir.to_path_buf(),
            orchestrator,
            opts: opts.clone(),
        })
    }

    /// Asks the orchestrator to stop (SIGTERM: it ends live jobs and destroys their VMs) and waits.
    pub fn stop(&mut self) {
        if let Ok(pid) = i32::try_from(self.orchestrator.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for _ in 0..100 {
            if matches!(self.orchestrator.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.orchestrator.kill();
        let _ = self.orchestrator.wait();
    }

    /// True while the orchestrator process runs.
    pub fn orchestrator_alive(&mut self) -> bool {
        matches!(self.orchestrator.try_wait(), Ok(None))
    }

    /// The orchestrator's log so far.
    pub fn orchestrator_log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("orchestrator.log")).unwrap_or_default()
    }
}

impl Drop for LocalDeployment {
    fn drop(&mut self) {
        self.stop();
        self.relay.shutdown();
    }
}

/// Starts the orchestrator on `state_dir/orchestrator.yaml` and waits until it is ready.
async fn spawn_orchestrator(
    state_dir: &Path,
    opts: &DeploymentOptions,
) -> Result<Child, ClientError> {
    let orchestrator_bin = sibling_binary("cdvm-orchestrator")?;
    let config_path = state_dir.join("orchestrator.yaml");
    let log_path = state_dir.join("orchestrator.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(&log_path))?;
    let mut child = Command::new(&orchestrator_bin)
        .arg("--config")
        .arg(&config_path)
        .env("CDVM_LOG", &opts.log_filter)
        .envs(
            opts.failpoint
                .iter()
                .map(|f| ("CDVM_FAILPOINT", f.as_str())),
        )
        .envs(opts.cloud.iter().flat_map(|c| c.env.iter().cloned()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(io_err(&orchestrator_bin))?;
    if wait_ready(&mut child).await {
        return Ok(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    Err(ClientError::Usage(format!(
        "the orchestrator did not start:\n{tail}"
    )))
}

async fn wait_ready(child: &mut Child) -> bool {
    let Some(stdout) = child.stdout.take() else {
        return false;
    };
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.starts_with("cdvm-orchestrator ready"));
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ready
    });
    matches!(
        tokio::time::timeout(Duration::from_secs(60), reader).await,
        Ok(Ok(true))
    )
}

/// A YAML scalar for any string: JSON strings are valid YAML.
fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn write_private(path: &Path, text: &str) -> Result<(), ClientError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    writeln!(f, "{text}").map_err(io_err(path))
}
