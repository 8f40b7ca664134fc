//! The exact shell commands the provider runs on the remote host, one function each. Every path
//! and argument in them goes through [`quote`](crate::quote::quote); the only unquoted parts are
//! this file's own text. They need a POSIX shell, coreutils (`timeout`, `sha256sum`, `tail`),
//! util-linux (`setsid`) and procps (`pgrep`, `pkill`), all in a default Debian or Ubuntu install.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::quote::{quote, quote_os, quote_path};
use crate::SshError;

/// The exit status of [`create_vm`] when the VM folder already exists.
pub(crate) const EXISTS: i32 = 17;
/// The exit status of [`upload`] when the remote copy does not hash to what was sent.
pub(crate) const HASH_MISMATCH: i32 = 3;

/// One VM's folder on the remote host and the files in it.
#[derive(Clone, Debug)]
pub(crate) struct VmPaths {
    /// `<remote_dir>/vms`.
    pub vms: PathBuf,
    /// `<remote_dir>/vms/<id>`.
    pub dir: PathBuf,
    /// The VM's id, reduced to `[A-Za-z0-9-]`.
    pub id: String,
}

impl VmPaths {
    /// The folder of VM `id`; None if the id has no usable character.
    pub fn new(remote_dir: &Path, id: &str) -> Option<Self> {
        // Ids come from callers; keep them inside the VM folder and regex-safe.
        let id: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if id.is_empty() {
            return None;
        }
        let vms = remote_dir.join("vms");
        Some(Self {
            dir: vms.join(&id),
            vms,
            id,
        })
    }

    pub fn meta(&self) -> PathBuf {
        self.dir.join("meta.json")
    }
    pub fn bootstrap(&self) -> PathBuf {
        self.dir.join("bootstrap.json")
    }
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn qemu_log(&self) -> PathBuf {
        self.dir.join("qemu.log")
    }
    pub fn sp_socket(&self) -> PathBuf {
        self.dir.join("sp.sock")
    }

    /// QEMU's `-name` value: the marker that finds the VM's processes.
    pub fn marker(&self) -> String {
        format!("cdvm-{}", self.id)
    }

    /// A `pgrep -f` pattern matching the QEMU process (and its `timeout` supervisor) by the
    /// `-name cdvm-<id>` marker. One character is bracketed so that the pattern does not match
    /// the command line of the shell that runs `pgrep` itself.
    fn marker_pattern(&self) -> String {
        format!("-name cdvm-{}( |$)", self_safe(&self.id))
    }

    /// A `pgrep -f` pattern matching the console follower of this VM.
    fn tail_pattern(&self) -> String {
        format!("^tail .*/vms/{}/console[.]log$", self_safe(&self.id))
    }
}

/// `id` with its first character written as a bracket expression (`ssh-1` → `[s]sh-1`): the same
/// regex, but one that no longer matches its own text.
fn self_safe(id: &str) -> String {
    let mut chars = id.chars();
    match chars.next() {
        Some(first) => format!("[{first}]{}", chars.as_str()),
        None => String::new(),
    }
}

/// Creates the VM folder and writes the record (stdin) into it, atomically; exits [`EXISTS`] if
/// the folder is already there (a retried launch).
pub(crate) fn create_vm(p: &VmPaths) -> Result<String, SshError> {
    let tmp = quote_path(&p.dir.join("meta.json.tmp"))?;
    Ok(format!(
        "umask 077 && mkdir -p -- {vms} && {{ mkdir -- {dir} 2>/dev/null || exit {EXISTS}; }} && \
         cat > {tmp} && mv -f -- {tmp} {meta}",
        vms = quote_path(&p.vms)?,
        dir = quote_path(&p.dir)?,
        meta = quote_path(&p.meta())?,
    ))
}

/// Prints the VM's record.
pub(crate) fn read_meta(p: &VmPaths) -> Result<String, SshError> {
    Ok(format!("cat -- {}", quote_path(&p.meta())?))
}

/// Replaces `path` with stdin, atomically.
pub(crate) fn write_file(path: &Path) -> Result<String, SshError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = quote_os(&tmp)?;
    Ok(format!(
        "umask 077 && cat > {tmp} && mv -f -- {tmp} {path}",
        path = quote_path(path)?
    ))
}

/// Prints the index of every path in `paths` that is not a file.
pub(crate) fn missing(paths: &[PathBuf]) -> Result<String, SshError> {
    let mut script = String::from("true");
    for (i, path) in paths.iter().enumerate() {
        script.push_str(&format!("; test -f {} || echo {i}", quote_path(path)?));
    }
    Ok(script)
}

/// Receives a file on stdin into a temporary name next to `dest`, checks its SHA-256 with
/// `sha256sum`, and only then moves it into place (exit [`HASH_MISMATCH`] otherwise). A file in
/// the image store is therefore always complete and verified.
pub(crate) fn upload(dest: &Path, sha256: &str) -> Result<String, SshError> {
    let dir = dest.parent().unwrap_or(Path::new("/"));
    Ok(format!(
        "umask 077 && mkdir -p -- {dir} && t={dir}/.upload.$$ && cat > \"$t\" && \
         h=$(sha256sum -- \"$t\") && h=${{h%% *}} && \
         if [ \"$h\" = {sha} ]; then mv -f -- \"$t\" {dest}; \
         else rm -f -- \"$t\"; echo \"remote copy hashes to $h\" >&2; exit {HASH_MISMATCH}; fi",
        dir = quote_path(dir)?,
        sha = quote(sha256)?,
        dest = quote_path(dest)?,
    ))
}

/// Starts QEMU detached from the SSH session (`setsid`), under a hard deadline (`timeout -s
/// KILL`), output to `qemu.log`; prints the supervisor's pid (the leader of the VM's process
/// group).
pub(crate) fn start(
    p: &VmPaths,
    qemu: &Path,
    args: &[OsString],
    lifetime_secs: u64,
) -> Result<String, SshError> {
    let qemu_q = quote_path(qemu)?;
    let mut line = format!("setsid timeout -s KILL {}s {qemu_q}", lifetime_secs.max(1));
    for arg in args {
        line.push(' ');
        line.push_str(&quote_os(arg)?);
    }
    Ok(format!(
        "command -v -- {qemu_q} >/dev/null 2>&1 || {{ echo {missing} >&2; exit 127; }}\n\
         cd -- {dir} || exit 1\n\
         {line} </dev/null >{log} 2>&1 &\n\
         echo $!",
        missing = quote(&format!("{} not found on the host", qemu.display()))?,
        dir = quote_path(&p.dir)?,
        log = quote_path(&p.qemu_log())?,
    ))
}

/// Prints `gone` (no record), or `running` / `exited`, then the record, then the end of
/// `qemu.log`.
pub(crate) fn status(p: &VmPaths) -> Result<String, SshError> {
    let meta = quote_path(&p.meta())?;
    Ok(format!(
        "test -f {meta} || {{ echo gone; exit 0; }}\n\
         if pgrep -f -- {pat} >/dev/null; then echo running; else echo exited; fi\n\
         cat -- {meta} 2>/dev/null; echo\n\
         tail -c 400 -- {log} 2>/dev/null; true",
        pat = quote(&p.marker_pattern())?,
        log = quote_path(&p.qemu_log())?,
    ))
}

/// Kills every process of the VM (QEMU, its supervisor, the console follower), waits until none
/// is left, then removes the VM folder (the record first, so the VM is never listed half-gone).
/// Prints `existed` if there was a folder.
pub(crate) fn destroy(p: &VmPaths) -> Result<String, SshError> {
    let pat = quote(&p.marker_pattern())?;
    let tail = quote(&p.tail_pattern())?;
    Ok(format!(
        "if [ -e {dir} ]; then echo existed; fi\n\
         i=0\n\
         while pgrep -f -- {pat} >/dev/null || pgrep -f -- {tail} >/dev/null; do\n\
         pkill -KILL -f -- {pat}; pkill -KILL -f -- {tail}\n\
         i=$((i+1)); if [ \"$i\" -ge 100 ]; then echo 'VM processes survived SIGKILL for 5 s' >&2; exit 1; fi\n\
         sleep 0.05\n\
         done\n\
         rm -f -- {meta} && rm -rf -- {dir}",
        meta = quote_path(&p.meta())?,
        dir = quote_path(&p.dir)?,
    ))
}

/// Prints every VM record, one JSON document per line.
pub(crate) fn list(remote_dir: &Path) -> Result<String, SshError> {
    Ok(format!(
        "for f in {vms}/*/meta.json; do if [ -f \"$f\" ]; then cat -- \"$f\"; echo; fi; done; true",
        vms = quote_path(&remote_dir.join("vms"))?
    ))
}

/// Follows the console from its first line until the VM's supervisor `pid` is gone.
pub(crate) fn console(p: &VmPaths, pid: u32) -> Result<String, SshError> {
    Ok(format!(
        "exec tail -n +1 -F --pid={pid} -- {} 2>/dev/null",
        quote_path(&p.console())?
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn paths() -> VmPaths {
        VmPaths::new(Path::new("/srv/cdvm"), "ssh-0011223344556677").unwrap()
    }

    #[test]
    fn ids_are_confined_to_the_vm_folder() {
        let p = VmPaths::new(Path::new("/srv/cdvm"), "../../etc; rm -rf /").unwrap();
        assert_eq!(p.dir, Path::new("/srv/cdvm/vms/etcrm-rf"));
        assert!(VmPaths::new(Path::new("/srv/cdvm"), "../;").is_none());
    }

    #[test]
    fn patterns_never_match_their_own_text() {
        let p = paths();
        assert_eq!(p.marker_pattern(), "-name cdvm-[s]sh-0011223344556677( |$)");
        assert_eq!(
            p.tail_pattern(),
            "^tail .*/vms/[s]sh-0011223344556677/console[.]log$"
        );
    }

    #[test]
    fn the_start_command_is_exact() {
        let args: Vec<OsString> = [
            "-name",
            "cdvm-ssh-0011223344556677",
            "-append",
            "console=ttyS0 quiet",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(
            start(&paths(), Path::new("qemu-system-x86_64"), &args, 600).unwrap(),
            "command -v -- qemu-system-x86_64 >/dev/null 2>&1 || { echo 'qemu-system-x86_64 not found on the host' >&2; exit 127; }\n\
             cd -- /srv/cdvm/vms/ssh-0011223344556677 || exit 1\n\
             setsid timeout -s KILL 600s qemu-system-x86_64 -name cdvm-ssh-0011223344556677 -append 'console=ttyS0 quiet' \
             </dev/null >/srv/cdvm/vms/ssh-0011223344556677/qemu.log 2>&1 &\n\
             echo $!"
        );
    }

    #[test]
    fn scripts_are_valid_shell() {
        let p = paths();
        for script in [
            create_vm(&p).unwrap(),
            read_meta(&p).unwrap(),
            write_file(&p.bootstrap()).unwrap(),
            missing(&[p.meta(), p.console()]).unwrap(),
            upload(Path::new("/srv/cdvm/images/ab/vmlinuz"), "ab").unwrap(),
            start(&p, Path::new("/usr/bin/qemu"), &[], 1).unwrap(),
            status(&p).unwrap(),
            destroy(&p).unwrap(),
            list(Path::new("/srv/it's here")).unwrap(),
            console(&p, 42).unwrap(),
        ] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{script}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn upload_moves_only_a_verified_copy_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("images/x/file");
        let run = |sha: &str| {
            let mut child = std::process::Command::new("sh")
                .args(["-c", &upload(&dest, sha).unwrap()])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"hello").unwrap();
            child.wait_with_output().unwrap()
        };
        let bad = run(&"0".repeat(64));
        assert_eq!(bad.status.code(), Some(HASH_MISMATCH));
        assert!(!dest.exists());
        let good = run("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert!(good.status.success());
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        // No temporary file is left behind either way.
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
