//! Where the emulated provider's reports come from.

use std::sync::Arc;

use cdvm_attestation::sim::{SimReportOptions, SimSecureProcessor};
use cdvm_attestation::snp::cert_table::{self, CertEntry, CertKind};
use cdvm_attestation::{Evidence, Measurement, ReportData};
use thiserror::Error;

/// A backend failure; the filesystem answers it with EIO, as the kernel does for a firmware error.
#[derive(Debug, Error)]
#[error("report backend: {0}")]
pub struct BackendError(pub String);

/// The secure processor behind the emulated provider.
pub trait ReportBackend: Send + Sync {
    /// The provider name shown in `provider` (`sev_guest`, `tdx_guest`).
    fn provider(&self) -> &'static str;
    /// Whether entries have `privlevel`, `privlevel_floor` and `auxblob` (SEV-SNP only).
    fn has_privlevel(&self) -> bool {
        false
    }
    /// The lowest `privlevel` accepted.
    fn privlevel_floor(&self) -> u32 {
        0
    }
    /// Produces `(outblob, auxblob)` for `inblob` at `privlevel`.
    fn report(
        &self,
        inblob: &ReportData,
        privlevel: u32,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError>;
}

/// What `auxblob` holds for SEV-SNP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuxBlob {
    /// The GHCB certificate table with VCEK, ASK and ARK (hosts that supply certificates).
    CertTable,
    /// Nothing, as on upstream KVM hosts that supply no certificates.
    Empty,
}

/// `sev_guest` backed by the simulated AMD secure processor, reporting `measurement`.
#[derive(Debug)]
pub struct SimSnpBackend {
    sp: Arc<SimSecureProcessor>,
    measurement: Measurement,
    aux: AuxBlob,
}

impl SimSnpBackend {
    /// A backend that signs with `sp` and claims `measurement` (what the host launched).
    pub fn new(sp: Arc<SimSecureProcessor>, measurement: Measurement, aux: AuxBlob) -> Self {
        Self {
            sp,
            measurement,
            aux,
        }
    }
}

impl ReportBackend for SimSnpBackend {
    fn provider(&self) -> &'static str {
        "sev_guest"
    }

    fn has_privlevel(&self) -> bool {
        true
    }

    fn report(
        &self,
        inblob: &ReportData,
        privlevel: u32,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        let opts = SimReportOptions {
            vmpl: privlevel,
            ..SimReportOptions::default()
        };
        let evidence = self
            .sp
            .try_report(inblob, &self.measurement, &opts)
            .map_err(|e| BackendError(e.to_string()))?;
        let Evidence::SevSnp(snp) = evidence else {
            return Err(BackendError(
                "the simulator produced non-SNP evidence".into(),
            ));
        };
        let aux = match (self.aux, snp.chain) {
            (AuxBlob::CertTable, Some(chain)) => cert_table::serialize(&[
                CertEntry {
                    kind: CertKind::Vcek,
                    der: chain.vcek,
                },
                CertEntry {
                    kind: CertKind::Ask,
                    der: chain.ask,
                },
                CertEntry {
                    kind: CertKind::Ark,
                    der: chain.ark,
                },
            ]),
            _ => Vec::new(),
        };
        Ok((snp.report, aux))
    }
}

/// `tdx_guest` backed by the simulated TDX platform (development DCAP PKI), reporting `mrtd`.
#[derive(Debug)]
pub struct SimTdxBackend {
    tdx: Arc<cdvm_attestation::sim::tdx::SimTdx>,
    mrtd: Measurement,
}

impl SimTdxBackend {
    /// A backend that quotes with `tdx` and claims `mrtd` (what the host launched).
    pub fn new(tdx: Arc<cdvm_attestation::sim::tdx::SimTdx>, mrtd: Measurement) -> Self {
        Self { tdx, mrtd }
    }
}

impl ReportBackend for SimTdxBackend {
    fn provider(&self) -> &'static str {
        "tdx_guest"
    }

    fn report(
        &self,
        inblob: &ReportData,
        _privlevel: u32,
    ) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        let quote = self
            .tdx
            .quote(inblob, &self.mrtd)
            .map_err(|e| BackendError(e.to_string()))?;
        Ok((quote, Vec::new()))
    }
}
