//! Follows a VM's serial console file and repeats each line in the orchestrator's log (the
//! agent logs no keys, input or output, so its console is safe to repeat).

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

pub(crate) fn follow(path: PathBuf, vm: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        // QEMU creates the file; wait for it briefly.
        let file = loop {
            match tokio::fs::File::open(&path).await {
                Ok(f) => break f,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let mut lines = BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line).await {
                Ok(0) => tokio::time::sleep(Duration::from_millis(100)).await,
                Ok(_) => {
                    let text = line.trim_end();
                    if !text.is_empty() {
                        tracing::debug!(target: "cdvm::guest_console", vm = %vm, "{text}");
                    }
                }
                Err(_) => return,
            }
        }
    })
}
