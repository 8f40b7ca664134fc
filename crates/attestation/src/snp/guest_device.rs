//! The `/dev/sev-guest` fallback: `SNP_GET_EXT_REPORT` through virtee/sev's guest firmware API,
//! for SEV-SNP guests whose kernel has no configfs-tsm (before 6.7). The ioctl and its buffer
//! handling live in `sev`; this file only maps its answer to [`Evidence`].

use sev::firmware::guest::Firmware;
use sev::firmware::host::{CertTableEntry, CertType};

use crate::snp::AttestationReport;
use crate::{AttestError, Attester, Evidence, ReportData, SnpCertChain, SnpEvidence, TeeKind};

/// The character device of the `sev-guest` driver.
pub const SEV_GUEST_DEVICE: &str = "/dev/sev-guest";

/// Gets SEV-SNP evidence through `/dev/sev-guest` (`SNP_GET_EXT_REPORT`).
#[derive(Clone, Copy, Debug)]
pub struct SevGuestAttester {
    vmpl: u32,
}

impl SevGuestAttester {
    /// Reports requested at VMPL `vmpl`.
    pub fn new(vmpl: u32) -> Self {
        Self { vmpl }
    }
}

fn chain_of(entries: &[CertTableEntry]) -> Option<SnpCertChain> {
    let find = |t: CertType| {
        entries
            .iter()
            .find(|e| e.cert_type == t)
            .map(|e| e.data.clone())
    };
    Some(SnpCertChain {
        vcek: find(CertType::VCEK).or_else(|| find(CertType::VLEK))?,
        ask: find(CertType::ASK)?,
        ark: find(CertType::ARK)?,
    })
}

impl Attester for SevGuestAttester {
    fn tee(&self) -> TeeKind {
        TeeKind::SevSnp
    }

    fn interface(&self) -> &'static str {
        "sev-guest-ioctl"
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, AttestError> {
        let mut firmware = Firmware::open().map_err(|source| AttestError::Unavailable {
            path: SEV_GUEST_DEVICE.into(),
            source,
        })?;
        let (report, certs) = firmware
            .get_ext_report(None, Some(report_data.0), Some(self.vmpl))
            .map_err(|e| {
                AttestError::BadResponse(format!("{SEV_GUEST_DEVICE}: SNP_GET_EXT_REPORT: {e}"))
            })?;
        let parsed = AttestationReport::parse(&report).map_err(|e| {
            AttestError::BadResponse(format!("{SEV_GUEST_DEVICE}: not an SNP report: {e}"))
        })?;
        if parsed.report_data != *report_data {
            return Err(AttestError::BadResponse(format!(
                "{SEV_GUEST_DEVICE}: the report carries other REPORT_DATA than requested"
            )));
        }
        // No certificates from the host is normal (upstream KVM): the client resolves the VCEK.
        let chain = match certs.as_deref() {
            None | Some([]) => None,
            Some(entries) => Some(chain_of(entries).ok_or_else(|| {
                AttestError::BadResponse(format!(
                    "{SEV_GUEST_DEVICE}: the host's certificate table lacks the VCEK/VLEK, ASK or ARK"
                ))
            })?),
        };
        Ok(Evidence::SevSnp(SnpEvidence {
            report,
            chain,
            gpus: Vec::new(),
            cloud_vtpm: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs only on a SEV-SNP guest with the sev-guest driver bound:
    /// `sudo cargo test -p cdvm-attestation --features sev-guest --lib guest_device -- --ignored`.
    #[test]
    #[ignore = "needs a SEV-SNP guest with /dev/sev-guest (run on such a machine with --ignored)"]
    fn a_real_report_binds_our_data() {
        let rd = ReportData([0x42; 64]);
        match SevGuestAttester::new(0).evidence(&rd) {
            Ok(Evidence::SevSnp(e)) => {
                let r = AttestationReport::parse(&e.report).expect("report parses");
                assert_eq!(r.report_data, rd);
            }
            other => panic!("no SNP evidence from /dev/sev-guest: {other:?}"),
        }
    }
}
