//! The agent process behind a VM: spawn, observe, kill.
//!
//! Liveness and killing go by a marker in the agent's command line (`--vm-id <id>`), not only by
//! pid, so a restarted orchestrator finds its agents and a recycled pid is never mistaken for one.
//! Between fork and exec a fresh agent does not carry the marker yet; it is recognised then as
//! our own child.

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cdvm_provider_api::{VmId, VmState};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::vm_dir::VmDir;

/// Starts the agent in its own process group, console to the VM folder. Returns its pid.
pub(crate) fn spawn_agent(agent: &Path, dir: &VmDir, id: &VmId) -> io::Result<u32> {
    let console = std::fs::File::create(dir.console())?;
    let mut child = tokio::process::Command::new(agent)
        .arg("--bootstrap")
        .arg(dir.bootstrap())
        .arg("--tee")
        .arg("sim")
        .arg("--sim-socket")
        .arg(dir.sp_socket())
        .arg("--vm-id")
        .arg(&id.0)
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console)
        .process_group(0)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("agent exited before its pid was read"))?;
    // Reap the child so an exited agent does not linger as a zombie.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(pid)
}

/// Pids of live (non-zombie) processes carrying this VM's marker.
fn marked_pids(id: &VmId) -> Vec<i32> {
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

fn is_marked(pid: i32, id: &VmId) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    while let Some(arg) = args.next() {
        if arg == b"--vm-id" {
            return args.next() == Some(id.0.as_bytes());
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

/// The VM's agent (or, before its exec, our child that is becoming it) is alive.
fn is_ours_alive(pid: i32, id: &VmId) -> bool {
    !is_zombie(pid) && (is_marked(pid, id) || is_our_child(pid))
}

pub(crate) fn state(pid: Option<u32>, id: &VmId) -> VmState {
    let Some(pid) = pid else {
        return VmState::Pending;
    };
    let alive = i32::try_from(pid).is_ok_and(|p| is_ours_alive(p, id));
    if alive {
        VmState::Running
    } else {
        VmState::Exited {
            detail: "agent process ended".into(),
        }
    }
}

/// Kills every process of the VM and waits until none is left.
pub(crate) async fn kill(pid: Option<u32>, id: &VmId) {
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
            // Each agent leads its own process group: kill the whole group.
            let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::error!(vm = %id, "agent processes survived SIGKILL for 1 s");
}
