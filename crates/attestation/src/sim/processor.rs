//! The simulated secure processor: signs v3 SNP reports with its VCEK.

use std::path::Path;

use openssl::ecdsa::EcdsaSig;
use openssl::sha::{sha384, sha512};

use crate::sim::ca::Identity;
use crate::sim::{store, SimError, SimReportOptions};
use crate::snp::{
    fingerprint, scalar_to_le, AttestationReport, GuestPolicy, KeyInfo, SIG_ALGO_ECDSA_P384_SHA384,
};
use crate::{Evidence, Measurement, ReportData, SnpCertChain, SnpEvidence};

/// A simulated AMD secure processor with a persistent ARK → ASK → VCEK chain.
#[derive(Debug)]
pub struct SimSecureProcessor {
    vcek: Identity,
    /// The DER chain, encoded once at load.
    chain: SnpCertChain,
    chip_id: [u8; 64],
}

/// Guest policy the simulator reports: SMT allowed, reserved bit 17 set (ABI Table 9).
const BASE_POLICY: u64 = GuestPolicy::SMT | GuestPolicy::RESERVED_ONE;
/// PLATFORM_INFO: SMT enabled.
const PLATFORM_INFO: u64 = 0x1;
/// Reported firmware 1.55.29 and a Milan CPUID (family 19h model 01h stepping 1), as on a
/// current Milan host.
const FW: (u8, u8, u8) = (29, 55, 1);
const CPUID: (u8, u8, u8) = (0x19, 0x01, 0x01);

impl SimSecureProcessor {
    /// Loads the chain from `dir/sim-sp-keys.pem`, or creates and stores a new one (and always
    /// writes `dir/sim-ark.pem`), so the root fingerprint is stable across restarts.
    pub fn load_or_create(dir: &Path) -> Result<Self, SimError> {
        let [ark, ask, vcek] = store::load_or_create(dir)?;
        // Random but stable per processor, like a real CHIP_ID: derived from the VCEK key.
        let chip_id = sha512(&vcek.cert.public_key()?.public_key_to_der()?);
        let chain = SnpCertChain {
            vcek: vcek.cert.to_der()?,
            ask: ask.cert.to_der()?,
            ark: ark.cert.to_der()?,
        };
        Ok(Self {
            vcek,
            chain,
            chip_id,
        })
    }

    /// The ARK certificate, DER.
    pub fn ark_der(&self) -> Vec<u8> {
        self.chain.ark.clone()
    }

    /// Hex SHA-256 of the ARK's DER: what a development policy lists as its simulated root.
    pub fn ark_sha256_hex(&self) -> String {
        fingerprint(&self.chain.ark)
    }

    /// The CHIP_ID this processor writes into its reports.
    pub fn chip_id(&self) -> [u8; 64] {
        self.chip_id
    }

    /// A signed report binding `report_data`, claiming `measurement` as launch measurement.
    pub fn try_report(
        &self,
        report_data: &ReportData,
        measurement: &Measurement,
        opts: &SimReportOptions,
    ) -> Result<Evidence, SimError> {
        let mut r = AttestationReport::zeroed();
        r.version = 3;
        r.policy = GuestPolicy(BASE_POLICY | if opts.debug { GuestPolicy::DEBUG } else { 0 });
        r.vmpl = opts.vmpl;
        r.sig_algo = SIG_ALGO_ECDSA_P384_SHA384;
        r.current_tcb = opts.tcb;
        r.reported_tcb = opts.tcb;
        r.committed_tcb = opts.tcb;
        r.launch_tcb = opts.tcb;
        r.platform_info = PLATFORM_INFO;
        r.key_info = KeyInfo(0); // signing key 0 = VCEK
        r.report_data = *report_data;
        r.measurement = *measurement;
        openssl::rand::rand_bytes(&mut r.report_id)?;
        (r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step) = CPUID;
        r.chip_id = self.chip_id;
        (r.current_build, r.current_minor, r.current_major) = FW;
        (r.committed_build, r.committed_minor, r.committed_major) = FW;

        let key = self.vcek.key.ec_key()?;
        let sig = EcdsaSig::sign(&sha384(&r.signed_bytes()), &key)?;
        let le = |n: &openssl::bn::BigNumRef| {
            scalar_to_le(&n.to_vec()).ok_or_else(|| SimError::BadKeyStore {
                path: store::KEY_FILE.into(),
                reason: "VCEK signature scalar longer than 48 bytes (not a P-384 key)".into(),
            })
        };
        r.signature_r = le(sig.r())?;
        r.signature_s = le(sig.s())?;

        Ok(Evidence::SevSnp(SnpEvidence {
            gpus: Vec::new(),
            report: r.to_bytes().to_vec(),
            chain: Some(self.chain.clone()),
            cloud_vtpm: None,
        }))
    }

    /// Like [`Self::try_report`], for callers that cannot handle an error.
    ///
    /// # Panics
    /// Only if OpenSSL fails to sign with the loaded P-384 key or to draw random bytes, which
    /// means the process is out of memory or entropy.
    pub fn report(
        &self,
        report_data: &ReportData,
        measurement: &Measurement,
        opts: &SimReportOptions,
    ) -> Evidence {
        match self.try_report(report_data, measurement, opts) {
            Ok(ev) => ev,
            Err(e) => panic!("simulated secure processor cannot sign: {e}"),
        }
    }
}
