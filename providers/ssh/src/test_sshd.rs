//! For tests: a real OpenSSH server (Debian's `openssh-server`) on a loopback port, with a fresh
//! ed25519 host key and a fresh client key authorised for the current user, key auth only. The
//! "remote host" is this machine. Shared by the unit tests (`mod test_sshd`) and the integration
//! tests (`#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed on drop.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The host's public key line (`ssh-ed25519 AAAA…`).
    pub host_key_line: String,
    /// A private key the server accepts for [`user`](Self::user).
    pub client_key: PathBuf,
    /// The current user's name.
    pub user: String,
    /// Keys, config and log.
    pub dir: tempfile::TempDir,
}

/// Makes an ed25519 key pair at `path` (+ `.pub`) and returns the public key line.
pub fn keygen(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "cdvm-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (package openssh-client) must be installed");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// The SHA-256 fingerprint `ssh-keygen -lf` prints for a public key file.
pub fn fingerprint(pub_file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_file)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Starts sshd and waits until it accepts connections.
    pub fn start() -> Self {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} is missing: install the openssh-server package (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_key");
        let host_key_line = keygen(&host_key);
        let client_key = dir.path().join("client_key");
        let client_line = keygen(&client_key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{client_line}\n")).unwrap();
        // sshd's privilege separation needs this folder when it runs as root.
        if current_user() == "root" {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\n\
                 HostKey {host_key}\n\
                 AuthorizedKeysFile {authorized}\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PidFile none\n\
                 PermitRootLogin prohibit-password\n\
                 AllowStreamLocalForwarding yes\n\
                 AllowTcpForwarding local\n\
                 X11Forwarding no\n\
                 PrintMotd no\n\
                 MaxStartups 100:30:200\n\
                 LogLevel ERROR\n",
                host_key = host_key.display(),
                authorized = authorized.display(),
            ),
        )
        .unwrap();
        let log_path = dir.path().join("sshd.log");
        for _attempt in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .args(["-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait().unwrap() {
                    eprintln!(
                        "sshd on port {port} exited ({status}): {}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self {
                        child,
                        port,
                        host_key_line,
                        client_key,
                        user: current_user(),
                        dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not start: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    /// What sshd logged so far (errors only), less the line about the readiness probe, which
    /// connects and hangs up without a word.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("kex_exchange_identification: Connection closed"))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
