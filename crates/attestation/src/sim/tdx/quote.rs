//! Building a DCAP v4 TDX quote (Intel "TDX DCAP Quoting Library API", Appendix A) as a TDX
//! module and quoting enclave would: header ‖ TD report (584 bytes) signed by the attestation
//! key, then the QE report signed by the PCK key, binding the attestation key through its
//! REPORT_DATA, then the PCK chain as certification data type 5. Integers are little-endian.

use openssl::ec::EcKeyRef;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::Private;
use sha2::{Digest, Sha256, Sha384};

use crate::sim::tdx::pki::PLATFORM;
use crate::sim::SimError;
use crate::tdx::{HEADER_LEN, INTEL_QE_VENDOR_ID, QE_REPORT_LEN, TD10_BODY_LEN, TEE_TYPE_TDX};
use crate::{Measurement, ReportData};

/// TEE_TCB_SVN of the simulated TDX module: ISVSVN 5, module version 1 (so the TCB info's
/// `TDX_01` identity applies), late microcode SVN 2.
pub(crate) const MODULE_TCB_SVN: [u8; 16] = [5, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// The simulated TD quoting enclave's product id (Intel's TD QE is 2 too).
pub(crate) const QE_ISV_PROD_ID: u16 = 2;
/// The simulated TD quoting enclave's SVN.
pub(crate) const QE_ISVSVN: u16 = 4;
/// The QE's SGX ATTRIBUTES: INIT and MODE64BIT, not DEBUG (dcap-qvl refuses a debug QE).
pub(crate) const QE_ATTRIBUTES: [u8; 16] = [0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// MRSIGNER of the simulated quoting enclave: the ASCII label `SIMULATED-CDVM-TD-QE-NOT-INTEL`,
/// so never Intel's and recognisable in a hex dump.
pub(crate) const QE_MRSIGNER: [u8; 32] = [
    0x53, 0x49, 0x4D, 0x55, 0x4C, 0x41, 0x54, 0x45, 0x44, 0x2D, 0x43, 0x44, 0x56, 0x4D, 0x2D, 0x54,
    0x44, 0x2D, 0x51, 0x45, 0x2D, 0x4E, 0x4F, 0x54, 0x2D, 0x49, 0x4E, 0x54, 0x45, 0x4C, 0x00, 0x00,
];
/// TD_ATTRIBUTES bit 28, SEPT_VE_DISABLE: dcap-qvl refuses a TD without it.
const SEPT_VE_DISABLE: u64 = 1 << 28;
/// XFAM of a typical TD (x87, SSE, AVX, AVX-512, PKRU, AMX state components).
const XFAM: [u8; 8] = [0xE7, 0x02, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00];
/// Length of the QE authentication data (dcap-qvl requires exactly 32 bytes).
const QE_AUTH_DATA_LEN: usize = 32;

/// What the simulated TDX module measures into the TD report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimTdxQuoteOptions {
    /// MRTD: the TD's launch measurement.
    pub mrtd: Measurement,
    /// RTMR0..3 (zero unless the caller extends them).
    pub rtmr: [Measurement; 4],
    /// Set the TD_ATTRIBUTES DEBUG bit (to test that verifiers refuse it).
    pub debug: bool,
}

impl SimTdxQuoteOptions {
    /// A non-debug TD with `mrtd` and zero RTMRs.
    pub fn new(mrtd: Measurement) -> Self {
        Self {
            mrtd,
            rtmr: [Measurement([0; 48]); 4],
            debug: false,
        }
    }
}

/// ECDSA P-256 over SHA-256(`message`), as the raw `r ‖ s` (32 bytes each, big-endian) that
/// DCAP structures carry.
pub(crate) fn raw_sign(key: &EcKeyRef<Private>, message: &[u8]) -> Result<[u8; 64], SimError> {
    let sig = EcdsaSig::sign(&Sha256::digest(message), key)?;
    let mut out = [0u8; 64];
    let (r, s) = out.split_at_mut(32);
    r.copy_from_slice(&sig.r().to_vec_padded(32)?);
    s.copy_from_slice(&sig.s().to_vec_padded(32)?);
    Ok(out)
}

/// The public key as the quote carries it: the uncompressed point without its 0x04 prefix.
pub(crate) fn raw_public_key(key: &EcKeyRef<Private>) -> Result<[u8; 64], SimError> {
    let mut ctx = openssl::bn::BigNumContext::new()?;
    let point = key.public_key().to_bytes(
        key.group(),
        openssl::ec::PointConversionForm::UNCOMPRESSED,
        &mut ctx,
    )?;
    point
        .get(1..)
        .and_then(|xy| <[u8; 64]>::try_from(xy).ok())
        .ok_or_else(|| SimError::BadKeyStore {
            path: crate::sim::tdx::TDX_KEY_FILE.into(),
            reason: "the attestation key is not a P-256 key".into(),
        })
}

fn header() -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&4u16.to_le_bytes()); // version
    h.extend_from_slice(&2u16.to_le_bytes()); // attestation key type: ECDSA P-256
    h.extend_from_slice(&TEE_TYPE_TDX.to_le_bytes());
    h.extend_from_slice(&QE_ISVSVN.to_le_bytes());
    h.extend_from_slice(&PLATFORM.pce_svn.to_le_bytes());
    // dcap-qvl accepts only Intel's QE vendor id; the id says nothing about who signed.
    h.extend_from_slice(&INTEL_QE_VENDOR_ID);
    // User data: the QE id (16 bytes) and 4 zero bytes; the simulated QE's id is a label.
    let mut user_data = [0u8; 20];
    if let Some(id) = user_data.get_mut(..16) {
        id.copy_from_slice(b"CDVM-SIM-TD-QE-1");
    }
    h.extend_from_slice(&user_data);
    h
}

fn td_report(report_data: &ReportData, opts: &SimTdxQuoteOptions) -> Vec<u8> {
    let mut b = Vec::with_capacity(TD10_BODY_LEN);
    b.extend_from_slice(&MODULE_TCB_SVN);
    // MRSEAM: a hash of a label; MRSIGNERSEAM zero (Intel-signed modules report zero).
    b.extend_from_slice(&Sha384::digest(b"ConfidentialDVM simulated TDX module"));
    b.extend_from_slice(&[0u8; 48]);
    b.extend_from_slice(&[0u8; 8]); // SEAMATTRIBUTES
    let attributes = SEPT_VE_DISABLE | u64::from(opts.debug);
    b.extend_from_slice(&attributes.to_le_bytes());
    b.extend_from_slice(&XFAM);
    b.extend_from_slice(&opts.mrtd.0);
    for _ in 0..3 {
        b.extend_from_slice(&[0u8; 48]); // MRCONFIGID, MROWNER, MROWNERCONFIG
    }
    for rtmr in &opts.rtmr {
        b.extend_from_slice(&rtmr.0);
    }
    b.extend_from_slice(&report_data.0);
    b
}

/// The QE's SGX report (384 bytes) with `report_data`.
fn qe_report(report_data: &[u8; 64]) -> Vec<u8> {
    let mut r = Vec::with_capacity(QE_REPORT_LEN);
    r.extend_from_slice(&PLATFORM.cpu_svn);
    r.extend_from_slice(&0u32.to_le_bytes()); // MISCSELECT
    r.extend_from_slice(&[0u8; 28]);
    r.extend_from_slice(&QE_ATTRIBUTES);
    r.extend_from_slice(&Sha256::digest(
        b"ConfidentialDVM simulated TD quoting enclave",
    ));
    r.extend_from_slice(&[0u8; 32]);
    r.extend_from_slice(&QE_MRSIGNER);
    r.extend_from_slice(&[0u8; 96]);
    r.extend_from_slice(&QE_ISV_PROD_ID.to_le_bytes());
    r.extend_from_slice(&QE_ISVSVN.to_le_bytes());
    r.extend_from_slice(&[0u8; 60]);
    r.extend_from_slice(report_data);
    r
}

fn u32_len(len: usize) -> Result<[u8; 4], SimError> {
    u32::try_from(len)
        .map(u32::to_le_bytes)
        .map_err(|_| SimError::BadCollateral {
            reason: format!("quote part of {len} bytes does not fit a u32 length"),
        })
}

/// A complete v4 quote.
pub(crate) fn build(
    attestation_key: &EcKeyRef<Private>,
    pck_key: &EcKeyRef<Private>,
    pck_chain_pem: &[u8],
    report_data: &ReportData,
    opts: &SimTdxQuoteOptions,
) -> Result<Vec<u8>, SimError> {
    let mut quote = header();
    quote.extend(td_report(report_data, opts));
    let signature = raw_sign(attestation_key, &quote)?;
    let att_key = raw_public_key(attestation_key)?;

    // QE REPORT_DATA = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes.
    let auth_data: Vec<u8> = (0u8..).take(QE_AUTH_DATA_LEN).collect();
    let mut qe_report_data = [0u8; 64];
    let binding = Sha256::new()
        .chain_update(att_key)
        .chain_update(&auth_data)
        .finalize();
    if let Some(head) = qe_report_data.get_mut(..32) {
        head.copy_from_slice(&binding);
    }
    let qe_report = qe_report(&qe_report_data);
    let qe_signature = raw_sign(pck_key, &qe_report)?;

    let mut cert_data = qe_report;
    cert_data.extend_from_slice(&qe_signature);
    cert_data.extend_from_slice(&(QE_AUTH_DATA_LEN as u16).to_le_bytes());
    cert_data.extend_from_slice(&auth_data);
    cert_data.extend_from_slice(&5u16.to_le_bytes()); // type 5: PCK chain (PEM)
    cert_data.extend_from_slice(&u32_len(pck_chain_pem.len())?);
    cert_data.extend_from_slice(pck_chain_pem);

    let mut sig_data = signature.to_vec();
    sig_data.extend_from_slice(&att_key);
    sig_data.extend_from_slice(&6u16.to_le_bytes()); // type 6: QE report certification data
    sig_data.extend_from_slice(&u32_len(cert_data.len())?);
    sig_data.extend(cert_data);

    quote.extend_from_slice(&u32_len(sig_data.len())?);
    quote.extend(sig_data);
    Ok(quote)
}
