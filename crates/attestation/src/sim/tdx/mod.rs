//! Simulated Intel TDX, for development and end-to-end tests only: a development DCAP PKI and
//! a TDX module + quoting enclave that produce real DCAP v4 quotes.
//!
//! The PKI is shaped like Intel's: a self-signed root CA ("ConfidentialDVM SIMULATED SGX Root
//! CA"), a PCK platform CA, a PCK certificate with the SGX extension (FMSPC, PCE-ID, TCB
//! components), a TCB signing certificate, CRLs, and collateral (TCB info v3 for TDX, QE
//! identity v2) signed over its exact JSON bytes. The project's real TDX verifier (our checks,
//! then dcap-qvl) checks these quotes unchanged; only the trust anchor differs: a policy that
//! names this root's SHA-256 as `simulated` root makes the verifier hand dcap-qvl this root
//! instead of Intel's pinned one, and marks the claims `simulated`. No shipped policy names it,
//! so every shipped policy refuses these quotes. They give no confidentiality whatsoever.

mod collateral;
mod der;
mod pki;
mod quote;
mod store;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::ec::EcKey;
use openssl::pkey::Private;

use crate::policy::{AllowedMeasurement, MinTcb, Policy, TrustedRoot};
use crate::sim::store::{io_err, temp_path, write_new};
use crate::sim::SimError;
use crate::tdx::{TdxCollateral, TdxEvidence, TdxPolicy};
use crate::{Evidence, Measurement, ReportData, TeeKind};

pub use quote::SimTdxQuoteOptions;
pub use store::{TDX_KEY_FILE, TDX_ROOT_FILE};

/// Name of the policy [`dev_tdx_policy`] builds.
pub const DEV_TDX_POLICY_NAME: &str = "development-simulated-tdx";
/// File [`SimTdx::write_collateral`] writes (dcap-qvl `QuoteCollateralV3` JSON).
pub const TDX_COLLATERAL_FILE: &str = "sim-tdx-collateral.json";

/// A simulated TDX platform: its DCAP PKI and quoting enclave, persisted in a state folder.
#[derive(Debug)]
pub struct SimTdx {
    stored: StoredDebug,
    attestation_key: EcKey<Private>,
    pck_key: EcKey<Private>,
    /// The PCK chain (leaf, PCK CA, root) as PEM: the quote's certification data.
    pck_chain_pem: Vec<u8>,
    root_der: Vec<u8>,
}

/// The stored PKI, wrapped so that `SimTdx` can derive `Debug` without printing keys.
struct StoredDebug(store::Stored);

impl std::fmt::Debug for StoredDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimulatedDcapPki { .. }")
    }
}

impl SimTdx {
    /// Loads the PKI from `dir/sim-tdx-keys.pem` (mode 0600), or creates and stores a new one;
    /// always writes `dir/sim-tdx-root.pem`. The root fingerprint is stable across restarts.
    pub fn load_or_create(dir: &Path) -> Result<Self, SimError> {
        let stored = store::load_or_create(dir)?;
        let pki = &stored.pki;
        let mut pck_chain_pem = Vec::new();
        for cert in [&pki.pck.cert, &pki.pck_ca.cert, &pki.root.cert] {
            pck_chain_pem.extend(cert.to_pem()?);
        }
        Ok(Self {
            attestation_key: stored.attestation_key.ec_key()?,
            pck_key: pki.pck.key.ec_key()?,
            root_der: pki.root.cert.to_der()?,
            pck_chain_pem,
            stored: StoredDebug(stored),
        })
    }

    /// The simulated root CA certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// Hex SHA-256 of the root's DER: what a development policy lists as its simulated root.
    pub fn root_sha256_hex(&self) -> String {
        crate::snp::fingerprint(&self.root_der)
    }

    /// The FMSPC (platform model) of the simulated PCK certificate, 12 lowercase hex characters.
    pub fn fmspc(&self) -> String {
        hex::encode(pki::PLATFORM.fmspc)
    }

    /// A DCAP v4 quote of a TD with launch measurement `mrtd`, zero RTMRs, not in debug mode,
    /// binding `report_data`: the bytes a real TDX guest reads from configfs-tsm's `outblob`.
    pub fn quote(&self, report_data: &ReportData, mrtd: &Measurement) -> Result<Vec<u8>, SimError> {
        self.quote_with(report_data, &SimTdxQuoteOptions::new(*mrtd))
    }

    /// A DCAP v4 quote with the TD report fields in `opts`.
    pub fn quote_with(
        &self,
        report_data: &ReportData,
        opts: &SimTdxQuoteOptions,
    ) -> Result<Vec<u8>, SimError> {
        quote::build(
            &self.attestation_key,
            &self.pck_key,
            &self.pck_chain_pem,
            report_data,
            opts,
        )
    }

    /// [`SimTdx::quote`] as evidence.
    pub fn evidence(
        &self,
        report_data: &ReportData,
        mrtd: &Measurement,
    ) -> Result<Evidence, SimError> {
        Ok(Evidence::Tdx(TdxEvidence {
            quote: self.quote(report_data, mrtd)?,
            event_log: None,
            gpus: Vec::new(),
        }))
    }

    /// Collateral for this platform issued at `now`: valid from a day before `now` until 30
    /// days after (like Intel's), signed by the simulated TCB signer.
    pub fn collateral_at(&self, now: SystemTime) -> Result<TdxCollateral, SimError> {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        collateral::make(&self.stored.0.pki, secs)
    }

    /// Writes fresh collateral (issued now) to `dir/sim-tdx-collateral.json`, where a policy's
    /// `tdx.collateral` can name it, and returns that path. Replaced atomically.
    pub fn write_collateral(&self, dir: &Path) -> Result<PathBuf, SimError> {
        let json = self
            .collateral_at(SystemTime::now())?
            .to_json()
            .map_err(|e| SimError::BadCollateral {
                reason: e.to_string(),
            })?;
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(TDX_COLLATERAL_FILE);
        let tmp = temp_path(dir, TDX_COLLATERAL_FILE);
        write_new(&tmp, json.as_bytes(), 0o644)?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(path)
    }
}

/// A development TDX policy trusting exactly this simulated root and one MRTD, with the
/// collateral file `collateral` (see [`SimTdx::write_collateral`]).
pub fn dev_tdx_policy(sim: &SimTdx, mrtd: &Measurement, source: &str, collateral: &Path) -> Policy {
    Policy {
        name: DEV_TDX_POLICY_NAME.to_string(),
        tee: TeeKind::Tdx,
        roots: vec![TrustedRoot::Simulated {
            ark_sha256: sim.root_sha256_hex(),
        }],
        measurements: Vec::new(),
        min_tcb: MinTcb::default(),
        min_tcb_by_product: Default::default(),
        allow_debug: false,
        allow_migration_agent: false,
        max_vmpl: 0,
        tdx: Some(TdxPolicy {
            collateral: Some(collateral.to_path_buf()),
            mrtd: vec![AllowedMeasurement {
                measurement: mrtd.to_string(),
                source: source.to_string(),
            }],
            ..TdxPolicy::default()
        }),
        gpu: None,
        azure_vtpm: None,
        image_binding: Default::default(),
        cloud_vtpm: None,
        models: Vec::new(),
    }
}
