//! Starting moto server (PyPI `moto[server]`) on a free loopback port, for tests and the demo.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A moto server child process; killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    /// Its base URL.
    pub url: String,
    child: Child,
    recording: PathBuf,
}

/// Why moto did not start.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// The executable is missing.
    #[error("moto_server not found at {0}: install it with scripts/setup-moto (CI does this), or set CDVM_MOTO_SERVER")]
    Missing(PathBuf),
    /// It could not be started or did not answer.
    #[error("moto_server at {path} did not start: {reason}")]
    Start {
        /// The executable.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Where moto_server is: `$CDVM_MOTO_SERVER`, else the workspace's `target/moto-venv`.
pub fn moto_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CDVM_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv/bin/moto_server")
}

impl MotoServer {
    /// Starts moto on a free port and waits until it answers.
    pub async fn start() -> Result<Self, MotoError> {
        let path = moto_server_path();
        if !path.exists() {
            return Err(MotoError::Missing(path));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| MotoError::Start {
                path: path.clone(),
                reason: format!("no free port: {e}"),
            })?;
        // moto's request recorder writes to one file in the working directory by default; moto
        // servers started side by side (parallel tests) would read each other's recordings.
        let recording =
            std::env::temp_dir().join(format!("cdvm-moto-recording-{port}-{}", std::process::id()));
        let child = Command::new(&path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| MotoError::Start {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let server = Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            recording,
        };
        let probe = reqwest::Client::new();
        for _ in 0..200 {
            if probe
                .get(format!("{}/moto-api/", server.url))
                .send()
                .await
                .is_ok()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(MotoError::Start {
            path,
            reason: "no answer within 20 s".into(),
        })
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.recording);
    }
}
