//! Evidence from configfs-tsm: the [`Attester`] for real SEV-SNP and TDX guests.

use std::path::PathBuf;

use crate::snp::{cert_table, AttestationReport};
use crate::tdx::{TdxEvidence, TdxQuote};
use crate::tsm::{TsmProvider, TsmReportClient, TsmRequest};
use crate::{AttestError, Attester, Evidence, ReportData, SnpEvidence, TeeKind};

/// Gets SEV-SNP or TDX evidence through the kernel's configfs-tsm report directory.
#[derive(Clone, Debug)]
pub struct TsmAttester {
    client: TsmReportClient,
    provider: TsmProvider,
    privlevel: Option<u32>,
    /// Where the ACPI tables are (TDX: the CCEL event log rides with the quote).
    acpi_tables: PathBuf,
}

impl TsmAttester {
    /// SEV-SNP through `root` (normally [`crate::tsm::DEFAULT_REPORT_ROOT`]), at VMPL `vmpl`
    /// (0 for the guest kernel's own level; policies accept at most their `max_vmpl`).
    pub fn sev_snp(root: impl Into<PathBuf>, vmpl: u32) -> Self {
        Self {
            client: TsmReportClient::new(root),
            provider: TsmProvider::SevGuest,
            privlevel: Some(vmpl),
            acpi_tables: crate::tsm::DEFAULT_ACPI_TABLES.into(),
        }
    }

    /// TDX through `root`.
    pub fn tdx(root: impl Into<PathBuf>) -> Self {
        Self {
            client: TsmReportClient::new(root),
            provider: TsmProvider::TdxGuest,
            privlevel: None,
            acpi_tables: crate::tsm::DEFAULT_ACPI_TABLES.into(),
        }
    }

    /// Reads the ACPI tables (the CCEL event log) from `dir` instead of
    /// [`crate::tsm::DEFAULT_ACPI_TABLES`].
    #[must_use]
    pub fn with_acpi_tables(mut self, dir: impl Into<PathBuf>) -> Self {
        self.acpi_tables = dir.into();
        self
    }

    /// The report directory used.
    pub fn client(&self) -> &TsmReportClient {
        &self.client
    }
}

fn bad(e: impl std::fmt::Display) -> AttestError {
    AttestError::BadResponse(e.to_string())
}

impl Attester for TsmAttester {
    fn tee(&self) -> TeeKind {
        match self.provider {
            TsmProvider::SevGuest => TeeKind::SevSnp,
            TsmProvider::TdxGuest => TeeKind::Tdx,
        }
    }

    fn interface(&self) -> &'static str {
        "configfs-tsm"
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, AttestError> {
        let request = TsmRequest {
            inblob: *report_data,
            privlevel: self.privlevel,
        };
        let out = self
            .client
            .get_report(self.provider, &request)
            .map_err(AttestError::Tsm)?;
        match self.provider {
            TsmProvider::SevGuest => {
                let report = AttestationReport::parse(&out.outblob)
                    .map_err(|e| bad(format!("configfs-tsm: outblob is not an SNP report: {e}")))?;
                if report.report_data != *report_data {
                    return Err(bad(
                        "configfs-tsm: the report carries other REPORT_DATA than requested",
                    ));
                }
                // An empty table is normal (upstream KVM hosts supply none): the client then
                // resolves the VCEK itself (docs/protocol.md, "Evidence").
                let chain = if out.auxblob.is_empty() {
                    None
                } else {
                    let entries = cert_table::parse(&out.auxblob).map_err(|e| {
                        bad(format!(
                            "configfs-tsm: auxblob is not a certificate table: {e}"
                        ))
                    })?;
                    Some(cert_table::chain(&entries).ok_or_else(|| {
                        bad("configfs-tsm: auxblob's certificate table lacks the VCEK/VLEK, ASK or ARK")
                    })?)
                };
                Ok(Evidence::SevSnp(SnpEvidence {
                    report: out.outblob,
                    chain,
                    gpus: Vec::new(),
                    cloud_vtpm: None,
                }))
            }
            TsmProvider::TdxGuest => {
                let quote = TdxQuote::parse(&out.outblob)
                    .map_err(|e| bad(format!("configfs-tsm: outblob is not a TDX quote: {e}")))?;
                if quote.report.report_data != *report_data {
                    return Err(bad(
                        "configfs-tsm: the quote carries other REPORT_DATA than requested",
                    ));
                }
                Ok(Evidence::Tdx(TdxEvidence {
                    quote: out.outblob,
                    event_log: crate::tsm::read_ccel(&self.acpi_tables)?,
                    gpus: Vec::new(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs only inside a SEV-SNP or TDX guest with Linux >= 6.7 and its guest driver:
    /// `sudo cargo test -p cdvm-attestation --features tsm --lib tsm -- --ignored`.
    #[test]
    #[ignore = "needs a SEV-SNP or TDX guest with configfs-tsm (run there with --ignored)"]
    fn a_real_configfs_tsm_report_binds_our_data() {
        let client = TsmReportClient::new(crate::tsm::DEFAULT_REPORT_ROOT);
        let attester = match client.provider().expect("configfs-tsm readable").as_deref() {
            Some("sev_guest") => TsmAttester::sev_snp(crate::tsm::DEFAULT_REPORT_ROOT, 0),
            Some("tdx_guest") => TsmAttester::tdx(crate::tsm::DEFAULT_REPORT_ROOT),
            other => panic!("no known TSM provider: {other:?}"),
        };
        let rd = ReportData([0x42; 64]);
        let evidence = attester.evidence(&rd).expect("evidence");
        assert_eq!(evidence.tee(), attester.tee());
    }
}
