//! Attestation for ConfidentialDVM: the typed [`Evidence`] a guest produces, the [`Attester`] and
//! [`Verifier`] seams, SEV-SNP report parsing and verification, and YAML [`Policy`] evaluation.
//!
//! One folder per TEE (`snp/`, `tdx/`, `azure/` for Azure vTPM CVMs, `cloud_vtpm/` for SNP clouds
//! whose vTPM, outside the TEE, pins the image, `nvidia/` for confidential GPUs, and `sim/` for the
//! simulated secure processor, which is feature-gated and trusted by no shipped policy). Each
//! folder's evidence and policy types always compile; its verifier sits behind its cargo feature.
#![deny(missing_docs)]

mod claims;
#[cfg(any(feature = "snp", feature = "tdx", feature = "nvidia"))]
mod der;
mod dispatch;
mod error;
mod evidence;
pub mod pem;
pub mod policy;
mod types;
#[cfg(feature = "snp")]
mod x509;
#[cfg(any(feature = "tdx", feature = "nvidia"))]
mod x509time;

pub mod azure;
pub mod cloud_vtpm;
pub mod nvidia;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "snp")]
pub mod snp;
pub mod tdx;
#[cfg(feature = "tsm")]
pub mod tsm;

pub use claims::{Check, Claims};
pub use cloud_vtpm::{ImageBinding, ImageIdentity};
pub use dispatch::AnyVerifier;
pub use error::{AttestError, VerifyError};
pub use evidence::{Evidence, SnpCertChain, SnpEvidence};
pub use policy::Policy;
pub use types::{Measurement, ReportData, TeeKind};

use std::time::SystemTime;

/// Produces hardware evidence that binds 64 bytes of report data (the guest side).
pub trait Attester: Send + Sync {
    /// The TEE this attester speaks for.
    fn tee(&self) -> TeeKind;
    /// The interface it gets evidence through (`configfs-tsm`, `sev-guest-ioctl`, `azure-vtpm`,
    /// `sim-socket`, `sim-serial`), logged and named in the attestation event for display.
    fn interface(&self) -> &'static str;
    /// Asks the (possibly simulated) secure processor for evidence carrying `report_data`.
    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, AttestError>;
}

/// Checks evidence against the expected report data and a policy (the client side).
pub trait Verifier: Send + Sync {
    /// Verifies `evidence` at time `now`. Returns the verified claims, or the first failed check.
    fn verify(
        &self,
        evidence: &Evidence,
        expected: &ReportData,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Claims, VerifyError>;
}
