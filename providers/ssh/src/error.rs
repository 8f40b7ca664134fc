//! What can go wrong talking to the remote host, naming the remote call that failed.

use std::path::PathBuf;

/// A failure of one step against the remote host (or of the local preparation for it).
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The TCP connection could not be made.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The SSH handshake failed (no common algorithm, connection dropped, timeout).
    #[error("SSH handshake with {addr}: {source}")]
    Handshake {
        /// `host:port`.
        addr: String,
        /// libssh2's error.
        #[source]
        source: ssh2::Error,
    },
    /// The host presented another key than the pinned one: the connection is dropped before
    /// authenticating or running anything.
    #[error(
        "host key mismatch for {addr}: pinned {expected}, host presented {presented} — refusing to \
         connect (if the host's key really changed, update known_host_key)"
    )]
    HostKeyMismatch {
        /// `host:port`.
        addr: String,
        /// The pinned key, as SHA-256 fingerprint.
        expected: String,
        /// The presented key, as `type SHA256:…`.
        presented: String,
    },
    /// The configured `known_host_key` is neither a public key line nor a SHA-256 fingerprint.
    #[error("known_host_key {value:?}: {reason}")]
    PinnedKey {
        /// The configured value (public data).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Public-key authentication was refused.
    #[error("authenticate as {user}@{addr} with {key}: {reason}")]
    Auth {
        /// Remote user.
        user: String,
        /// `host:port`.
        addr: String,
        /// The private key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
    /// An SSH channel operation failed (opening a session or forwarding channel, reading,
    /// writing).
    #[error("{call}: {source}")]
    Channel {
        /// Which remote call.
        call: String,
        /// The I/O or libssh2 error.
        #[source]
        source: std::io::Error,
    },
    /// A remote command exited unsuccessfully.
    #[error("{call}: remote command exited with status {status}: {stderr_tail}")]
    Exec {
        /// Which remote call.
        call: String,
        /// Its exit status (-1: killed by a signal or unknown).
        status: i32,
        /// The end of what it printed on stderr.
        stderr_tail: String,
    },
    /// Uploading a file failed or the remote copy does not hash to what was sent.
    #[error("upload {name} to {remote}: {reason}")]
    Upload {
        /// Local name of the file.
        name: String,
        /// Remote path.
        remote: String,
        /// Why.
        reason: String,
    },
    /// A remote command printed something this provider cannot read.
    #[error("{call}: unexpected output: {reason}")]
    Output {
        /// Which remote call.
        call: String,
        /// What was wrong.
        reason: String,
    },
    /// A value cannot be put into a remote command line.
    #[error("cannot quote {value:?} for the remote shell: it {reason}")]
    Quote {
        /// The value (NUL shown as `\0`).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The launch digest of the image could not be computed.
    #[error("compute the launch digest of the guest image: {0}")]
    Measure(#[from] cdvm_image::MeasureError),
    /// A local image file changed while it was being measured and uploaded.
    #[error("guest image file {0} changed during launch; try again")]
    ImageChanged(PathBuf),
    /// A local file (image, key) could not be read.
    #[error("{what} {path}: {source}")]
    Local {
        /// What the file is.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The last `max` characters of `text`, on char boundaries, trimmed.
pub(crate) fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    let skip = text.chars().count().saturating_sub(max);
    let out: String = text.chars().skip(skip).collect();
    if skip > 0 {
        format!("…{out}")
    } else {
        out
    }
}
