//! The quote's own signatures, checked with OpenSSL (ECDSA P-256 / SHA-256, raw `r ‖ s`):
//! the PCK leaf signs the QE report, the QE report binds the attestation key, and the
//! attestation key signs header ‖ TD report. dcap-qvl checks the same again.

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{PKeyRef, Public};
use sha2::{Digest, Sha256};

use crate::tdx::quote::TdxQuote;
use crate::tdx::TdxError;

pub(crate) fn ecdsa_p256_verify(key: &EcKey<Public>, message: &[u8], sig: &[u8; 64]) -> bool {
    let (r, s) = sig.split_at(32);
    let Ok(sig) = BigNum::from_slice(r)
        .and_then(|r| BigNum::from_slice(s).map(|s| (r, s)))
        .and_then(|(r, s)| EcdsaSig::from_private_components(r, s))
    else {
        return false;
    };
    let digest = Sha256::digest(message);
    matches!(sig.verify(&digest, key), Ok(true))
}

/// The PCK leaf key must be a P-256 key and must have signed the QE report.
pub(crate) fn verify_qe_report(
    quote: &TdxQuote,
    pck_key: &PKeyRef<Public>,
) -> Result<(), TdxError> {
    let ec = pck_key
        .ec_key()
        .ok()
        .filter(|k| k.group().curve_name() == Some(Nid::X9_62_PRIME256V1))
        .ok_or_else(|| TdxError::PckChainMalformed("PCK leaf key is not a P-256 key".into()))?;
    let sig = &quote.signature;
    if !ecdsa_p256_verify(&ec, &sig.qe_report, &sig.qe_report_signature) {
        return Err(TdxError::QeReportSignatureInvalid);
    }
    Ok(())
}

/// QE REPORT_DATA[0..32] = SHA-256(attestation key ‖ QE authentication data).
pub(crate) fn verify_attestation_key_binding(quote: &TdxQuote) -> Result<(), TdxError> {
    let sig = &quote.signature;
    let mut h = Sha256::new();
    h.update(sig.attestation_key);
    h.update(&sig.qe_auth_data);
    let expected = h.finalize();
    if sig.qe_report_data().get(..32) != Some(expected.as_slice()) {
        return Err(TdxError::AttestationKeyNotBound);
    }
    Ok(())
}

/// The attestation key signed header ‖ body (the first `signed_len` bytes of the quote).
pub(crate) fn verify_quote_signature(quote: &TdxQuote, raw: &[u8]) -> Result<(), TdxError> {
    let sig = &quote.signature;
    let signed = raw
        .get(..quote.signed_len)
        .ok_or_else(|| TdxError::Malformed("signed region beyond the quote".into()))?;
    let key = attestation_key(&sig.attestation_key).ok_or(TdxError::QuoteSignatureInvalid)?;
    if !ecdsa_p256_verify(&key, signed, &sig.signature) {
        return Err(TdxError::QuoteSignatureInvalid);
    }
    Ok(())
}

/// The raw `x ‖ y` attestation key as a P-256 public key (None if not a point on the curve).
fn attestation_key(xy: &[u8; 64]) -> Option<EcKey<Public>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).ok()?;
    let mut ctx = BigNumContext::new().ok()?;
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(xy);
    let point = EcPoint::from_bytes(&group, &sec1, &mut ctx).ok()?;
    let key = EcKey::from_public_key(&group, &point).ok()?;
    key.check_key().ok()?;
    Some(key)
}
