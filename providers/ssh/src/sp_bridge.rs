//! The simulated secure processor for a guest on the remote host.
//!
//! On the remote, QEMU listens on a Unix socket (`-chardev socket,…,server=on,wait=off`) wired to
//! the guest's virtio-serial port. This side opens a `direct-streamlocal` SSH channel to that
//! socket and answers each 64-byte REPORT_DATA request with a framed evidence response
//! (`cdvm_attestation::sim::wire`) signed here, with the local simulated secure processor, over
//! the launch digest of the image files this provider uploaded. The keys never leave this host.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cdvm_attestation::sim::{wire, SimReportOptions, SimSecureProcessor};
use cdvm_attestation::Measurement;

use crate::remote::{Remote, Target};
use crate::SshError;

/// How often a blocked read wakes up to see whether the VM is being destroyed.
const POLL_MS: u32 = 500;
/// How long QEMU may take to create its socket after it was started.
pub(crate) const FIRST_CONNECT: Duration = Duration::from_secs(20);
/// After a disconnect, how long to try to reconnect before concluding QEMU is gone.
const RECONNECT: Duration = Duration::from_secs(3);

/// Why [`serve`] returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The other side closed the stream.
    Eof,
    /// The stop flag was raised.
    Stopped,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Answers requests on `stream` until it ends or `stop` is raised. Reads that time out (the
/// stream's own timeout) are retried, so the stop flag is seen within one timeout.
pub(crate) fn serve<S: Read + Write>(
    stream: &mut S,
    sp: &SimSecureProcessor,
    measurement: &Measurement,
    stop: &AtomicBool,
) -> io::Result<Ended> {
    loop {
        let mut request = [0u8; wire::REQUEST_LEN];
        let mut filled = 0;
        while filled < request.len() {
            if stop.load(Ordering::Relaxed) {
                return Ok(Ended::Stopped);
            }
            match stream.read(&mut request[filled..]) {
                Ok(0) => return Ok(Ended::Eof),
                Ok(n) => filled += n,
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let report_data = wire::decode_request(&request).map_err(io::Error::other)?;
        let evidence = sp.report(&report_data, measurement, &SimReportOptions::default());
        let body = wire::encode_framed_response(&evidence).map_err(io::Error::other)?;
        let mut sent = 0;
        while sent < body.len() {
            if stop.load(Ordering::Relaxed) {
                return Ok(Ended::Stopped);
            }
            match stream.write(&body[sent..]) {
                Ok(0) => return Ok(Ended::Eof),
                Ok(n) => sent += n,
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
        stream.flush()?;
    }
}

/// Says once whether the bridge's first channel opened.
pub(crate) type Ready = mpsc::Receiver<Result<(), SshError>>;

/// Starts the bridge for one VM on a thread of its own (with its own SSH connection). The
/// receiver yields once: `Ok` when the first channel to QEMU's socket is open, or the error that
/// kept it from opening within [`FIRST_CONNECT`].
pub(crate) fn spawn(
    target: Target,
    socket: PathBuf,
    sp: Arc<SimSecureProcessor>,
    measurement: Measurement,
    stop: Arc<AtomicBool>,
    vm: String,
) -> io::Result<(JoinHandle<()>, Ready)> {
    let (ready, ready_rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(format!("sp-{vm}"))
        .spawn(move || {
            let remote = match Remote::connect(&target) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            remote.session().set_timeout(POLL_MS);
            let mut first = Some(ready);
            loop {
                let wait = if first.is_some() {
                    FIRST_CONNECT
                } else {
                    RECONNECT
                };
                let mut channel = match open_until(&remote, &socket, wait, &stop) {
                    Ok(ch) => ch,
                    Err(e) => {
                        match first.take() {
                            Some(ready) => {
                                let _ = ready.send(Err(e));
                            }
                            None => {
                                tracing::debug!(vm = %vm, error = %e, "simulated SP bridge ends")
                            }
                        }
                        return;
                    }
                };
                if let Some(ready) = first.take() {
                    let _ = ready.send(Ok(()));
                }
                match serve(&mut channel, &sp, &measurement, &stop) {
                    Ok(Ended::Stopped) => return,
                    Ok(Ended::Eof) => {
                        tracing::debug!(vm = %vm, "simulated SP channel closed by QEMU");
                    }
                    Err(e) => {
                        tracing::warn!(vm = %vm, error = %e, "simulated SP channel failed");
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
        })?;
    Ok((handle, ready_rx))
}

/// Opens the channel to QEMU's socket, retrying while QEMU has not created it yet.
fn open_until(
    remote: &Remote,
    socket: &std::path::Path,
    wait: Duration,
    stop: &AtomicBool,
) -> Result<ssh2::Channel, SshError> {
    let deadline = Instant::now() + wait;
    loop {
        match remote.open_unix(socket) {
            Ok(ch) => return Ok(ch),
            Err(e) if Instant::now() >= deadline || stop.load(Ordering::Relaxed) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use cdvm_attestation::ReportData;
    use std::os::unix::net::UnixStream;

    #[test]
    fn answers_every_request_with_a_report_over_the_given_measurement() {
        let dir = tempfile::tempdir().unwrap();
        let sp = SimSecureProcessor::load_or_create(dir.path()).unwrap();
        let measurement = Measurement([7u8; 48]);
        let (mut host, mut guest) = UnixStream::pair().unwrap();
        let stop = AtomicBool::new(false);
        let server = std::thread::spawn(move || serve(&mut host, &sp, &measurement, &stop));
        for byte in [1u8, 2] {
            let report_data = ReportData([byte; 64]);
            guest
                .write_all(&wire::encode_request(&report_data))
                .unwrap();
            let evidence = wire::read_framed_response(&mut guest).unwrap();
            let cdvm_attestation::Evidence::SevSnp(snp) = evidence else {
                panic!("not SNP evidence");
            };
            let report = cdvm_attestation::snp::AttestationReport::parse(&snp.report).unwrap();
            assert_eq!(report.report_data, report_data);
            assert_eq!(report.measurement, Measurement([7u8; 48]));
        }
        drop(guest);
        assert_eq!(server.join().unwrap().unwrap(), Ended::Eof);
    }

    #[test]
    fn a_raised_stop_flag_ends_a_blocked_bridge() {
        let dir = tempfile::tempdir().unwrap();
        let sp = SimSecureProcessor::load_or_create(dir.path()).unwrap();
        let (mut host, _guest) = UnixStream::pair().unwrap();
        host.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let server =
            std::thread::spawn(move || serve(&mut host, &sp, &Measurement([0u8; 48]), &flag));
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(server.join().unwrap().unwrap(), Ended::Stopped);
    }

    #[test]
    fn the_bridge_reaches_a_remote_unix_socket_through_ssh() {
        use crate::hostkey::PinnedKey;
        use crate::test_sshd::Sshd;
        use std::os::unix::net::UnixListener;

        let sshd = Sshd::start();
        let dir = tempfile::tempdir().unwrap();
        // Plays QEMU's part: the server socket on the "remote" host.
        let socket = dir.path().join("sp.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let sp = Arc::new(SimSecureProcessor::load_or_create(dir.path()).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let target = Target {
            host: "127.0.0.1".into(),
            port: sshd.port,
            user: sshd.user.clone(),
            private_key: sshd.client_key.clone(),
            pinned: PinnedKey::parse(&sshd.host_key_line).unwrap(),
        };
        let (thread, ready) = spawn(
            target,
            socket,
            sp,
            Measurement([9u8; 48]),
            Arc::clone(&stop),
            "test-vm".into(),
        )
        .unwrap();
        // The bridge reports its first connection (or why it failed) before we block on it.
        ready
            .recv_timeout(Duration::from_secs(30))
            .expect("the bridge said nothing in 30 s")
            .expect("the bridge could not reach the socket");
        let (mut guest, _) = listener.accept().unwrap();
        let report_data = ReportData([5u8; 64]);
        guest
            .write_all(&wire::encode_request(&report_data))
            .unwrap();
        let cdvm_attestation::Evidence::SevSnp(snp) =
            wire::read_framed_response(&mut guest).unwrap()
        else {
            panic!("not SNP evidence");
        };
        let report = cdvm_attestation::snp::AttestationReport::parse(&snp.report).unwrap();
        assert_eq!(report.report_data, report_data);
        assert_eq!(report.measurement, Measurement([9u8; 48]));
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        assert!(sshd.log().is_empty(), "sshd complained: {}", sshd.log());
    }
}
