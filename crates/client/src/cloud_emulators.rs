//! The cloud emulators a local deployment can run its cloud backends against: moto server (EC2)
//! behind the mock cloud's proxy, and the mock cloud itself (GCE, ARM), which boots each
//! instance's agent locally with the bootstrap from the emulated metadata service.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::demo::{sibling_binary, CloudTarget};
use crate::ClientError;

/// Which cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// EC2 (moto server + the mock cloud's proxy).
    Aws,
    /// Compute Engine (mock cloud).
    Gcp,
    /// Azure Resource Manager (mock cloud).
    Azure,
}

/// Running emulators; stopped (and their guests halted) when dropped.
#[derive(Debug)]
pub struct Emulators {
    /// The mock cloud's base URL.
    pub base_url: String,
    /// The orchestrator's provider section and guest policy for this cloud.
    pub target: CloudTarget,
    mockcloud: Child,
    moto: Option<Child>,
}

fn usage(msg: String) -> ClientError {
    ClientError::Usage(msg)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn free_port() -> Result<u16, ClientError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io(Path::new("a loopback port")))
}

fn http_get(url: &str) -> Result<String, String> {
    ureq::get(url)
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())
}

fn start_moto(moto_server: &Path) -> Result<(Child, String), ClientError> {
    if !moto_server.exists() {
        return Err(usage(format!(
            "moto_server not found at {}: install it with scripts/setup-moto",
            moto_server.display()
        )));
    }
    let port = free_port()?;
    let mut child = Command::new(moto_server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io(moto_server))?;
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if http_get(&format!("{url}/moto-api/")).is_ok() {
            return Ok((child, url));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(usage("moto server did not answer within 20 s".into()))
}

/// Reads the next stdout line of a starting child, with a deadline.
fn next_line(lines: &mut std::io::Lines<BufReader<ChildStdout>>) -> Option<String> {
    lines.next().and_then(Result::ok)
}

impl Emulators {
    /// Starts the emulators for `cloud`, keeping their state under `state_dir`. `moto_server`
    /// is the moto executable (AWS only). The orchestrator's owner tag must be `owner_tag`.
    pub fn start(
        cloud: Cloud,
        state_dir: &Path,
        moto_server: &Path,
        owner_tag: &str,
    ) -> Result<Self, ClientError> {
        let (moto, moto_url) = match cloud {
            Cloud::Aws => {
                let (child, url) = start_moto(moto_server)?;
                (Some(child), Some(url))
            }
            Cloud::Gcp | Cloud::Azure => (None, None),
        };
        let boot_dir = state_dir.join("mockcloud");
        std::fs::create_dir_all(&boot_dir).map_err(io(&boot_dir))?;
        let agent = sibling_binary("cdvm-agent")?;
        let config_path = state_dir.join("mockcloud.yaml");
        let config = serde_json::json!({
            "listen": "127.0.0.1:0",
            "boot": { "agent_binary": agent, "state_dir": boot_dir },
            "moto_url": moto_url,
        });
        std::fs::write(&config_path, config.to_string()).map_err(io(&config_path))?;
        let binary = sibling_binary("mockcloud")?;
        let mut command = Command::new(&binary);
        command.arg("--config").arg(&config_path);
        if cloud == Cloud::Aws {
            command.args(["--aws-setup", "us-east-1"]);
        }
        let log_path = state_dir.join("mockcloud.log");
        let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
        let mut mockcloud = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(io(&binary))?;
        let stdout = mockcloud.stdout.take();
        let mut emulators = Self {
            base_url: String::new(),
            target: CloudTarget {
                provider_yaml: String::new(),
                guest_policy: boot_dir.join("dev-policy.yaml"),
                env: Vec::new(),
            },
            mockcloud,
            moto,
        };
        let mut lines = stdout
            .map(|s| BufReader::new(s).lines())
            .ok_or_else(|| usage("mockcloud has no stdout".into()))?;
        emulators.base_url = next_line(&mut lines).ok_or_else(|| {
            usage(format!(
                "mockcloud did not start; see {}",
                log_path.display()
            ))
        })?;
        let base = emulators.base_url.clone();
        emulators.target.provider_yaml = match cloud {
            Cloud::Aws => {
                let fixture: serde_json::Value = next_line(&mut lines)
                    .and_then(|l| serde_json::from_str(&l).ok())
                    .ok_or_else(|| {
                        usage(format!(
                            "creating the AWS network in moto failed; see {}",
                            log_path.display()
                        ))
                    })?;
                let field = |k: &str| fixture[k].as_str().unwrap_or_default().to_string();
                emulators.target.env = vec![
                    ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
                    ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
                    ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
                ];
                serde_json::json!({ "aws": {
                    "region": field("region"),
                    "subnet_id": field("subnet_id"),
                    "security_group_id": field("security_group_id"),
                    "ami_id": field("ami_id"),
                    "owner_tag_key": "cdvm-owner",
                    "owner_tag": owner_tag,
                    "allowed_instance_types": ["m6a.large"],
                    "endpoint": base,
                }})
                .to_string()
            }
            // What terraform/gcp would output, for a made-up project the mock cloud accepts.
            Cloud::Gcp => serde_json::json!({ "gcp": {
                "project": "cdvm-demo",
                "zone": "europe-west4-a",
                "network": "projects/cdvm-demo/global/networks/cdvm-jobs",
                "subnetwork": "projects/cdvm-demo/regions/europe-west4/subnetworks/cdvm-jobs",
                "service_account_email": "cdvm-orchestrator@cdvm-demo.iam.gserviceaccount.com",
                "image": "projects/cdvm-demo/global/images/cdvm-guest",
                "instance_name_prefix": "cdvm-",
                "owner_label_key": "cdvm-owner",
                "owner_label": owner_tag,
                "allowed_machine_types": ["n2d-standard-2"],
                "endpoint": base,
            }})
            .to_string(),
            // What terraform/azure would output, for a made-up subscription.
            Cloud::Azure => {
                let sub = "00000000-0000-0000-0000-00000000cd0e";
                serde_json::json!({ "azure": {
                    "subscription_id": sub,
                    "location": "westeurope",
                    "resource_group": "cdvm-jobs",
                    "subnet_id": format!("/subscriptions/{sub}/resourceGroups/cdvm-net/providers/Microsoft.Network/virtualNetworks/cdvm/subnets/jobs"),
                    "image_id": format!("/subscriptions/{sub}/resourceGroups/cdvm-images/providers/Microsoft.Compute/galleries/cdvm/images/guest/versions/1.0.0"),
                    "owner_tag_key": "cdvm-owner",
                    "owner_tag": owner_tag,
                    "allowed_vm_sizes": ["Standard_DC2as_v5"],
                    "endpoint": base,
                }})
                .to_string()
            }
        };
        // Keep draining so mockcloud never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(emulators)
    }

    /// Instances and guests still alive in the emulators.
    pub fn leftovers(&self) -> Result<usize, ClientError> {
        let text = http_get(&format!("{}/mockcloud/instances", self.base_url))
            .map_err(|e| usage(format!("asking the mock cloud what is left: {e}")))?;
        let live: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| usage(format!("the mock cloud's answer is not JSON: {e}")))?;
        let count = |k: &str| live[k].as_array().map_or(0, Vec::len);
        Ok(count("gce")
            + count("arm")
            + count("aws")
            + live["guests"].as_u64().unwrap_or(0) as usize)
    }
}

impl Drop for Emulators {
    fn drop(&mut self) {
        // SIGINT lets the mock cloud halt its guests before it exits.
        if let Ok(pid) = i32::try_from(self.mockcloud.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        for _ in 0..50 {
            if matches!(self.mockcloud.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.mockcloud.kill();
        let _ = self.mockcloud.wait();
        if let Some(moto) = &mut self.moto {
            let _ = moto.kill();
            let _ = moto.wait();
        }
    }
}

/// Where the moto server is installed by default (scripts/setup-moto).
pub fn default_moto_server() -> PathBuf {
    PathBuf::from("target/moto-venv/bin/moto_server")
}
