//! The guest side of the simulated secure processor: an [`Attester`] that asks the host's
//! simulator over a Unix socket (process provider) or a virtio-serial port (QEMU guest) — the
//! stand-in for the real `/dev/sev-guest`.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::sim::wire::{self, MAX_RESPONSE_LEN};
use crate::snp::AttestationReport;
use crate::{AttestError, Attester, Evidence, ReportData, TeeKind};

/// How long one exchange may take before the agent gives up (signing takes about a millisecond).
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How the guest reaches the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// A Unix socket, one request per connection.
    UnixSocket,
    /// A virtio-serial character device, framed responses.
    SerialPort,
}

/// Gets evidence from a simulated secure processor on the host.
#[derive(Clone, Debug)]
pub struct SimAttester {
    socket: PathBuf,
    transport: Transport,
}

impl SimAttester {
    /// An attester talking to the simulator listening on the Unix socket `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            transport: Transport::UnixSocket,
        }
    }

    /// An attester talking to the simulator through a virtio-serial port (`/dev/vportNpM`).
    pub fn serial(device: impl Into<PathBuf>) -> Self {
        Self {
            socket: device.into(),
            transport: Transport::SerialPort,
        }
    }

    /// The socket or device path.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    fn exchange_serial(&self, request: &[u8]) -> Result<Evidence, AttestError> {
        let unavailable = |source| AttestError::Unavailable {
            path: self.socket.display().to_string(),
            source,
        };
        let mut port = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.socket)
            .map_err(unavailable)?;
        port.write_all(request).map_err(unavailable)?;
        wire::read_framed_response(&mut port).map_err(|e| AttestError::BadResponse(e.to_string()))
    }

    fn exchange(&self, request: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(request)?;
        stream.shutdown(Shutdown::Write)?;
        let mut response = Vec::new();
        // One byte over the limit is enough to know the answer is too large.
        (&mut stream)
            .take(MAX_RESPONSE_LEN as u64 + 1)
            .read_to_end(&mut response)?;
        Ok(response)
    }
}

impl Attester for SimAttester {
    fn tee(&self) -> TeeKind {
        TeeKind::SevSnp
    }

    fn interface(&self) -> &'static str {
        match self.transport {
            Transport::UnixSocket => "sim-socket",
            Transport::SerialPort => "sim-serial",
        }
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, AttestError> {
        let request = wire::encode_request(report_data);
        let evidence = match self.transport {
            Transport::SerialPort => self.exchange_serial(&request)?,
            Transport::UnixSocket => {
                let response =
                    self.exchange(&request)
                        .map_err(|source| AttestError::Unavailable {
                            path: self.socket.display().to_string(),
                            source,
                        })?;
                wire::decode_response(&response)
                    .map_err(|e| AttestError::BadResponse(e.to_string()))?
            }
        };
        // Catch a confused simulator here rather than as a REPORT_DATA mismatch at the client.
        let Evidence::SevSnp(snp) = &evidence else {
            return Err(AttestError::BadResponse(
                "the simulator answered with non-SNP evidence".into(),
            ));
        };
        let report = AttestationReport::parse(&snp.report)
            .map_err(|e| AttestError::BadResponse(e.to_string()))?;
        if report.report_data != *report_data {
            return Err(AttestError::BadResponse(
                "the report carries other REPORT_DATA than requested".into(),
            ));
        }
        Ok(evidence)
    }
}
