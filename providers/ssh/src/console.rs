//! Streams a remote VM's serial console into the orchestrator's log, one `tracing` debug event
//! per line (target `cdvm::guest_console`), as the QEMU provider does for a local VM. The agent
//! logs no keys, input or output, so its console is safe to repeat.
//!
//! Remote side: `tail -n +1 -F --pid=<qemu supervisor pid> -- <console.log>` over an exec
//! channel; `--pid` ends it once the VM process is gone, so nothing lingers on the host.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::remote::{Remote, Target};

/// How often a blocked read wakes up to see whether the VM is being destroyed.
const POLL_MS: u32 = 500;
/// A line longer than this is logged in pieces.
const MAX_LINE: usize = 4096;

/// Splits a byte stream into lines and hands each non-empty one (without its line end) to `emit`.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&str)) {
        for &b in bytes {
            if b == b'\n' || self.pending.len() >= MAX_LINE {
                self.flush(&mut emit);
                if b == b'\n' {
                    continue;
                }
            }
            self.pending.push(b);
        }
    }

    pub fn flush(&mut self, mut emit: impl FnMut(&str)) {
        let line = String::from_utf8_lossy(&self.pending);
        let text = line.trim_end();
        if !text.is_empty() {
            emit(text);
        }
        self.pending.clear();
    }
}

/// Follows `command`'s output (a `tail -F` of the console) on a thread of its own, with its own
/// SSH connection, until it ends or `stop` is raised.
pub(crate) fn spawn(
    target: Target,
    command: String,
    stop: Arc<AtomicBool>,
    vm: String,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("console-{vm}"))
        .spawn(move || {
            if let Err(e) = follow(&target, &command, &stop, &vm) {
                if !stop.load(Ordering::Relaxed) {
                    tracing::debug!(vm = %vm, error = %e, "guest console stream ended");
                }
            }
        })
}

fn follow(target: &Target, command: &str, stop: &AtomicBool, vm: &str) -> Result<(), String> {
    let remote = Remote::connect(target).map_err(|e| e.to_string())?;
    let mut channel = remote
        .session()
        .channel_session()
        .map_err(|e| e.to_string())?;
    channel.exec(command).map_err(|e| e.to_string())?;
    remote.session().set_timeout(POLL_MS);
    let mut lines = Lines::default();
    let mut buf = [0u8; 4096];
    let emit = |text: &str| tracing::debug!(target: "cdvm::guest_console", vm = %vm, "{text}");
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match channel.read(&mut buf) {
            Ok(0) => {
                lines.flush(emit);
                return Ok(());
            }
            Ok(n) => lines.push(&buf[..n], emit),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_reads_and_skips_blank_ones() {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        lines.push(b"Linux ver", |l| out.push(l.to_string()));
        lines.push(b"sion 6.1\r\n\nagent: up\n", |l| out.push(l.to_string()));
        lines.push(b"tail without newline", |l| out.push(l.to_string()));
        lines.flush(|l| out.push(l.to_string()));
        assert_eq!(
            out,
            ["Linux version 6.1", "agent: up", "tail without newline"]
        );
    }

    #[test]
    fn overlong_lines_come_out_in_pieces() {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        lines.push(&vec![b'x'; MAX_LINE + 10], |l| out.push(l.len()));
        lines.flush(|l| out.push(l.len()));
        assert_eq!(out, [MAX_LINE, 10]);
    }
}
