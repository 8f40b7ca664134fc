//! The simulated AMD secure processor, for development and end-to-end tests only.
//!
//! It lives where the real one does — outside the guest, in the provider — and signs structurally
//! real 1184-byte SNP reports with its own ARK → ASK → VCEK chain (ECDSA P-384). The same verifier
//! checks them; only the root differs, and no shipped policy trusts a simulated root: evidence from
//! here verifies only under a policy that names this processor's ARK fingerprint, and its claims
//! are then marked `simulated`. It gives no confidentiality whatsoever.

mod attester;
mod ca;
mod processor;
mod store;
#[cfg(feature = "tdx")]
pub mod tdx;
pub mod wire;

use sha2::{Digest, Sha384};
use thiserror::Error;

use crate::policy::{AllowedMeasurement, MinTcb, Policy, TrustedRoot};
use crate::snp::TcbVersion;
use crate::{Measurement, TeeKind};

pub use attester::SimAttester;
pub use processor::SimSecureProcessor;
pub use store::{ARK_FILE, KEY_FILE};

/// Name of the policy [`dev_policy`] builds.
pub const DEV_POLICY_NAME: &str = "development-simulated";

/// Options for one simulated report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimReportOptions {
    /// Set the guest-policy DEBUG bit (to test that verifiers refuse it).
    pub debug: bool,
    /// The TCB written as reported, current, committed and launch TCB.
    pub tcb: TcbVersion,
    /// The VMPL the request came from (configfs-tsm `privlevel`); 0 is the guest kernel's own.
    pub vmpl: u32,
}

impl SimReportOptions {
    /// The default TCB: a typical patched Milan (bl=3 tee=0 snp=8 ucode=115).
    pub const DEFAULT_TCB: TcbVersion = TcbVersion::new(3, 0, 8, 115);
}

impl Default for SimReportOptions {
    fn default() -> Self {
        Self {
            debug: false,
            tcb: Self::DEFAULT_TCB,
            vmpl: 0,
        }
    }
}

/// Failures of the simulated secure processor.
#[derive(Debug, Error)]
pub enum SimError {
    /// Reading or writing its key store failed.
    #[error("simulated secure processor: I/O on {path}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// OpenSSL failed (key generation, signing).
    #[error("simulated secure processor: crypto failure: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// The key store exists but is not a valid simulated chain.
    #[error("simulated secure processor key store {path} is invalid: {reason}")]
    BadKeyStore {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The simulated TDX collateral could not be assembled or serialised.
    #[error("simulated TDX collateral: {reason}")]
    BadCollateral {
        /// Why.
        reason: String,
    },
    /// The key store is readable by group or others.
    #[error("simulated secure processor key store {path} has mode {mode:o}; it must be 0600")]
    InsecurePermissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
}

/// The launch measurement the process provider reports for the agent binary it starts: SHA-384
/// of the file's bytes (a real SNP launch digest covers the initial guest memory instead).
pub fn measure_file_bytes(bytes: &[u8]) -> Measurement {
    Measurement(Sha384::digest(bytes).into())
}

/// A development policy trusting exactly this simulated processor and one measurement.
pub fn dev_policy(sp: &SimSecureProcessor, measurement: &Measurement, source: &str) -> Policy {
    Policy {
        name: DEV_POLICY_NAME.to_string(),
        tee: TeeKind::SevSnp,
        roots: vec![TrustedRoot::Simulated {
            ark_sha256: sp.ark_sha256_hex(),
        }],
        measurements: vec![AllowedMeasurement {
            measurement: measurement.to_string(),
            source: source.to_string(),
        }],
        min_tcb: MinTcb::default(),
        min_tcb_by_product: Default::default(),
        allow_debug: false,
        allow_migration_agent: false,
        max_vmpl: 0,
        tdx: None,
        gpu: None,
        azure_vtpm: None,
        image_binding: Default::default(),
        cloud_vtpm: None,
        models: Vec::new(),
    }
}
