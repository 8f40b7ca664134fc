//! A swtpm process for the emulated vTPMs (Azure's paravisor, GCE's Shielded VM vTPM): started
//! in a folder, its control channel initialised and TPM2_Startup sent; stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::paravisor_sim::{io_step, ParavisorError};
use super::tpm_client::{swtpm_ctrl_init, SocketAddress, SocketTransport, Tpm};

/// How long swtpm may take to create its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running swtpm serving TPM commands on a Unix socket (one connection at a time).
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    socket: PathBuf,
}

fn wait_for(path: &Path, child: &mut Child, log: &Path) -> Result<(), ParavisorError> {
    let start = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(ParavisorError::SwtpmStart(format!(
                "swtpm exited ({status}): {}",
                log.trim()
            )));
        }
        if start.elapsed() > START_TIMEOUT {
            return Err(ParavisorError::SwtpmStart(format!(
                "{} did not appear within {START_TIMEOUT:?}",
                path.display()
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

impl Swtpm {
    /// Starts swtpm with its state in `dir/swtpm-state` (kept across starts: the same keys),
    /// sockets `dir/swtpm.sock` and `dir/swtpm.ctrl`, log `dir/swtpm.log`.
    pub fn start(dir: &Path) -> Result<Self, ParavisorError> {
        Command::new("swtpm")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(ParavisorError::SwtpmMissing)?;
        let state = dir.join("swtpm-state");
        std::fs::create_dir_all(&state).map_err(io_step(format!("create {}", state.display())))?;
        let socket = dir.join("swtpm.sock");
        let ctrl = dir.join("swtpm.ctrl");
        for p in [&socket, &ctrl] {
            let _ = std::fs::remove_file(p);
        }
        let log = dir.join("swtpm.log");
        let log_file =
            std::fs::File::create(&log).map_err(io_step(format!("create {}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(io_step("duplicate the swtpm log handle"))?;
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()))
            .arg("--flags")
            .arg("startup-clear")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(ParavisorError::SwtpmMissing)?;
        // From here on, Drop stops it.
        let mut this = Self { child, socket };
        wait_for(&this.socket, &mut this.child, &log)?;
        wait_for(&ctrl, &mut this.child, &log)?;
        swtpm_ctrl_init(&SocketAddress::Unix(ctrl))
            .map_err(io_step("swtpm control channel CMD_INIT"))?;
        // `--flags startup-clear` does it on CMD_INIT in newer swtpm; older ones need it sent.
        this.tpm().startup_clear()?;
        Ok(this)
    }

    /// The command socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A client on a fresh connection (drop it before another connects).
    pub fn tpm(&self) -> Tpm<SocketTransport> {
        Tpm::new(SocketTransport::unix(&self.socket))
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}
