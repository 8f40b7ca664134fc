//! The host process behind a VM (an agent process, a QEMU process): spawn, observe, kill.
//!
//! Liveness and killing go by a marker in the process's command line (a flag followed by a
//! value naming the VM, such as `--vm-id <id>` or `-name cdvm-<id>`), not only by pid, so a
//! restarted orchestrator finds its VMs and a recycled pid is never mistaken for one. Between fork
//! and exec a fresh process does not carry the marker yet; it is recognised then as our own child.

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::VmState;

/// The flag and value in a VM process's command line that say which VM it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The flag (`--vm-id`, `-name`).
    pub flag: String,
    /// The value after it.
    pub value: String,
}

/// Starts `command` in its own process group with stdin closed and stdout/stderr appended to
/// `console`. Returns its pid. The child is reaped when it exits; with `lifetime`, its process
/// group is killed once that much time has passed (a hard deadline that holds even if nobody
/// calls destroy).
pub fn spawn(
    mut command: tokio::process::Command,
    console: &Path,
    lifetime: Option<Duration>,
) -> io::Result<u32> {
    let console = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(console)?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console)
        .process_group(0)
        .kill_on_drop(false)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("process exited before its pid was read"))?;
    tokio::spawn(async move {
        match lifetime {
            Some(limit) => {
                if tokio::time::timeout(limit, child.wait()).await.is_err() {
                    tracing::warn!(pid, ?limit, "VM reached its hard deadline; killing it");
                    if let Ok(group) = i32::try_from(pid) {
                        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
                    }
                    let _ = child.wait().await;
                }
            }
            // Reap the child so an exited process does not linger as a zombie.
            None => {
                let _ = child.wait().await;
            }
        }
    });
    Ok(pid)
}

/// Pids of live (non-zombie) processes carrying this marker.
fn marked_pids(id: &Marker) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if is_marked(pid, id) && !is_zombie(pid) {
            out.push(pid);
        }
    }
    out
}

fn is_marked(pid: i32, id: &Marker) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    while let Some(arg) = args.next() {
        if arg == id.flag.as_bytes() {
            return args.next() == Some(id.value.as_bytes());
        }
    }
    false
}

/// The fields after the command name in `/proc/<pid>/stat`: state, ppid, …
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn is_zombie(pid: i32) -> bool {
    stat_fields(pid).is_none_or(|f| f.first().is_none_or(|s| s == "Z"))
}

fn is_our_child(pid: i32) -> bool {
    stat_fields(pid)
        .and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
        .is_some_and(|ppid| ppid == std::process::id())
}

/// The VM's process (or, before its exec, our child that is becoming it) is alive.
fn is_ours_alive(pid: i32, id: &Marker) -> bool {
    !is_zombie(pid) && (is_marked(pid, id) || is_our_child(pid))
}

/// The state of a VM whose process is `pid` (None: recorded but not spawned yet).
pub fn state(pid: Option<u32>, id: &Marker) -> VmState {
    let Some(pid) = pid else {
        return VmState::Pending;
    };
    let alive = i32::try_from(pid).is_ok_and(|p| is_ours_alive(p, id));
    if alive {
        VmState::Running
    } else {
        VmState::Exited {
            detail: "VM process ended".into(),
        }
    }
}

/// Kills every process of the VM and waits until none is left.
pub async fn kill(pid: Option<u32>, id: &Marker) {
    for _ in 0..50 {
        let mut pids = marked_pids(id);
        if let Some(p) = pid.and_then(|p| i32::try_from(p).ok()) {
            if is_ours_alive(p, id) && !pids.contains(&p) {
                pids.push(p);
            }
        }
        if pids.is_empty() {
            return;
        }
        for p in pids {
            // Each VM process leads its own process group: kill the whole group.
            let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::error!(vm = %id.value, "VM processes survived SIGKILL for 1 s");
}
