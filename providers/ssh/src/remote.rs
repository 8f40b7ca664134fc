//! One authenticated SSH connection to the remote host, and the blocking calls made over it:
//! run a command (with optional stdin), upload a file, open a `direct-streamlocal` channel.
//!
//! Every call here blocks; the provider runs them under `spawn_blocking` or on a thread of its
//! own. A connection is cheap (one TCP handshake, one key exchange, one signature) and each
//! provider call uses a fresh one, so a dropped connection never poisons later calls.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2::{Channel, MethodType, Session};

use crate::error::tail;
use crate::hostkey::{self, PinnedKey};
use crate::SshError;

/// How long to wait for the TCP connection and for any single blocking SSH step.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A blocking step (a read, a write) that makes no progress for this long fails.
const IO_TIMEOUT_MS: u32 = 60_000;

/// Where and as whom to log in.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub private_key: PathBuf,
    pub pinned: PinnedKey,
}

impl Target {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What a remote command returned.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// An authenticated connection.
pub(crate) struct Remote {
    session: Session,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

fn channel_err(call: &str, e: impl Into<std::io::Error>) -> SshError {
    SshError::Channel {
        call: call.to_string(),
        source: e.into(),
    }
}

impl Remote {
    /// Connects, checks the host key against the pin (before authenticating or sending anything
    /// else), then authenticates with the private key.
    pub fn connect(t: &Target) -> Result<Self, SshError> {
        let addr = t.addr();
        let connect_err = |source| SshError::Connect {
            addr: addr.clone(),
            source,
        };
        let addrs: Vec<_> = (t.host.as_str(), t.port)
            .to_socket_addrs()
            .map_err(connect_err)?
            .collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or_else(|| connect_err(last))?;
        let _ = tcp.set_nodelay(true);

        let handshake_err = |source| SshError::Handshake {
            addr: addr.clone(),
            source,
        };
        let mut session = Session::new().map_err(handshake_err)?;
        session.set_timeout(CONNECT_TIMEOUT.as_millis().try_into().unwrap_or(u32::MAX));
        if let Some(pref) = t.pinned.method_pref() {
            session
                .method_pref(MethodType::HostKey, pref)
                .map_err(handshake_err)?;
        }
        session.set_tcp_stream(tcp);
        session.handshake().map_err(handshake_err)?;

        // Fail closed: the pinned key, or nothing.
        let presented = session.host_key().map(|(blob, _)| blob.to_vec());
        match presented {
            Some(blob) if t.pinned.matches(&blob) => {}
            other => {
                return Err(SshError::HostKeyMismatch {
                    addr,
                    expected: t.pinned.fingerprint(),
                    presented: other
                        .map(|b| hostkey::describe(&b))
                        .unwrap_or_else(|| "no key".into()),
                })
            }
        }

        let auth_err = |reason: String| SshError::Auth {
            user: t.user.clone(),
            addr: addr.clone(),
            key: t.private_key.clone(),
            reason,
        };
        if !t.private_key.is_file() {
            return Err(auth_err("the private key file does not exist".into()));
        }
        session
            .userauth_pubkey_file(&t.user, None, &t.private_key, None)
            .map_err(|e| auth_err(e.to_string()))?;
        if !session.authenticated() {
            return Err(auth_err("the host did not accept the key".into()));
        }
        session.set_timeout(IO_TIMEOUT_MS);
        Ok(Self { session })
    }

    /// The session (for long-lived channels that manage their own timeouts).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Runs `command` through the remote login shell, feeding it `stdin`, and returns its status
    /// and output (whatever the status).
    pub fn run(&self, call: &str, command: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        let mut ch = self
            .session
            .channel_session()
            .map_err(|e| channel_err(call, e))?;
        ch.exec(command).map_err(|e| channel_err(call, e))?;
        if let Some(input) = stdin {
            ch.write_all(input).map_err(|e| channel_err(call, e))?;
        }
        ch.send_eof().map_err(|e| channel_err(call, e))?;
        let mut stdout = Vec::new();
        ch.read_to_end(&mut stdout)
            .map_err(|e| channel_err(call, e))?;
        let mut stderr = Vec::new();
        ch.stderr()
            .read_to_end(&mut stderr)
            .map_err(|e| channel_err(call, e))?;
        ch.wait_close().map_err(|e| channel_err(call, e))?;
        let status = ch.exit_status().map_err(|e| channel_err(call, e))?;
        // A command killed by a signal has no exit status; libssh2 then reports 0.
        let status = match ch.exit_signal() {
            Ok(sig) if sig.exit_signal.is_some() => -1,
            _ => status,
        };
        Ok(Output {
            status,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Like [`run`](Self::run), but a non-zero status is an error.
    pub fn run_ok(
        &self,
        call: &str,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, SshError> {
        let out = self.run(call, command, stdin)?;
        if out.status != 0 {
            return Err(SshError::Exec {
                call: call.to_string(),
                status: out.status,
                stderr_tail: tail(&out.stderr, 400),
            });
        }
        Ok(out.stdout)
    }

    /// Opens a channel to the Unix socket `path` on the remote host (OpenSSH's
    /// `direct-streamlocal@openssh.com`; the host must allow stream-local forwarding).
    pub fn open_unix(&self, path: &Path) -> Result<Channel, SshError> {
        let call = format!("open direct-streamlocal channel to {}", path.display());
        let text = path.to_str().ok_or_else(|| SshError::Quote {
            value: path.display().to_string(),
            reason: "is not UTF-8",
        })?;
        self.session
            .channel_direct_streamlocal(text, None)
            .map_err(|e| channel_err(&call, e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_sshd::{fingerprint, keygen, Sshd};

    fn target(sshd: &Sshd, pin: &str) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port: sshd.port,
            user: sshd.user.clone(),
            private_key: sshd.client_key.clone(),
            pinned: PinnedKey::parse(pin).unwrap(),
        }
    }

    #[test]
    fn runs_commands_with_stdin_and_reports_failures_with_their_stderr() {
        let sshd = Sshd::start();
        let remote = Remote::connect(&target(&sshd, &sshd.host_key_line)).unwrap();
        let out = remote.run_ok("echo", "tr a-z A-Z", Some(b"hello")).unwrap();
        assert_eq!(out, b"HELLO");
        let err = remote
            .run_ok("failing call", "echo oops >&2; exit 3", None)
            .unwrap_err();
        match &err {
            SshError::Exec {
                call,
                status,
                stderr_tail,
            } => {
                assert_eq!(
                    (call.as_str(), *status, stderr_tail.as_str()),
                    ("failing call", 3, "oops")
                );
            }
            other => panic!("{other:?}"),
        }
        // A fingerprint pin of the same key works as well as the key line.
        let fp = fingerprint(&sshd.dir.path().join("host_key.pub"));
        Remote::connect(&target(&sshd, &fp)).unwrap();
    }

    #[test]
    fn a_host_with_another_key_is_refused_before_authentication() {
        let sshd = Sshd::start();
        let dir = tempfile::tempdir().unwrap();
        let other = keygen(&dir.path().join("other"));
        for pin in [other.clone(), fingerprint(&dir.path().join("other.pub"))] {
            let err = Remote::connect(&target(&sshd, &pin)).unwrap_err();
            let SshError::HostKeyMismatch {
                expected,
                presented,
                ..
            } = &err
            else {
                panic!("{err:?}");
            };
            assert_eq!(*expected, fingerprint(&dir.path().join("other.pub")));
            assert!(presented.starts_with("ssh-ed25519 SHA256:"), "{presented}");
            assert!(err.to_string().contains("host key mismatch"), "{err}");
        }
    }

    #[test]
    fn a_key_the_host_does_not_accept_is_an_auth_error() {
        let sshd = Sshd::start();
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("stranger"));
        let mut t = target(&sshd, &sshd.host_key_line);
        t.private_key = dir.path().join("stranger");
        let err = Remote::connect(&t).unwrap_err();
        assert!(matches!(err, SshError::Auth { .. }), "{err:?}");
    }

    #[test]
    fn nothing_listening_is_a_connect_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Target {
            host: "127.0.0.1".into(),
            port,
            user: "nobody".into(),
            private_key: "/nonexistent".into(),
            pinned: PinnedKey::parse("SHA256:ry5mCuibbxb6RA6LvcbjvLPSzZHU+enTAqPQrIJKa1A").unwrap(),
        };
        let err = Remote::connect(&t).unwrap_err();
        assert!(matches!(err, SshError::Connect { .. }), "{err:?}");
    }
}
