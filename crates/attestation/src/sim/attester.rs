//! The guest side of the simulated secure processor: an [`Attester`] that asks the provider's
//! simulator over a Unix socket (the stand-in for the real `/dev/sev-guest`).

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

/// Gets evidence from a simulated secure processor listening on a Unix socket.
#[derive(Clone, Debug)]
pub struct SimAttester {
    socket: PathBuf,
}

impl SimAttester {
    /// An attester talking to the simulator at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
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

    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, AttestError> {
        let response = self
            .exchange(&wire::encode_request(report_data))
            .map_err(|source| AttestError::Unavailable {
                path: self.socket.display().to_string(),
                source,
            })?;
        let evidence = wire::decode_response(&response)
            .map_err(|e| AttestError::BadResponse(e.to_string()))?;
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
