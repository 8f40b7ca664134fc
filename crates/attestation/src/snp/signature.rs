//! The report signature: ECDSA P-384 with SHA-384 over bytes `0x000..0x2A0` (ABI spec, Table 22
//! and Chapter 10 "Signature formats": R and S are 72-byte little-endian, zero-extended).

use aws_lc_rs::signature::ParsedPublicKey;

use crate::snp::AttestationReport;
use crate::VerifyError;

/// `SIGNATURE_ALGO` value for ECDSA P-384 with SHA-384, the only one defined.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// Significant bytes of a P-384 scalar.
const SCALAR_LEN: usize = 48;

/// Big-endian scalar from a 72-byte little-endian field, or `None` if the padding is not zero
/// (a non-canonical encoding is refused rather than silently truncated).
pub(crate) fn scalar_from_le(field: &[u8; 72]) -> Option<Vec<u8>> {
    let (low, high) = field.split_at(SCALAR_LEN);
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    Some(low.iter().rev().copied().collect())
}

/// 72-byte little-endian zero-padded field from a big-endian scalar of at most 48 bytes.
#[cfg(feature = "sim")]
pub(crate) fn scalar_to_le(big_endian: &[u8]) -> Option<[u8; 72]> {
    if big_endian.len() > SCALAR_LEN {
        return None;
    }
    let mut out = [0u8; 72];
    for (dst, src) in out.iter_mut().zip(big_endian.iter().rev()) {
        *dst = *src;
    }
    Some(out)
}

/// Verifies the report's signature with the leaf certificate's key (`None`: the leaf's key is
/// not EC P-384).
pub(crate) fn verify_report_signature(
    report: &AttestationReport,
    key: Option<&ParsedPublicKey>,
    leaf_label: &str,
) -> Result<(), VerifyError> {
    if report.sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(VerifyError::Malformed(format!(
            "unsupported signature algorithm {} (only 1 = ECDSA P-384/SHA-384 exists)",
            report.sig_algo
        )));
    }
    let key = key.ok_or_else(|| VerifyError::BadCertificate {
        cert: leaf_label.to_string(),
        reason: "public key is not an EC P-384 key".to_string(),
    })?;
    let r = scalar_from_le(&report.signature_r).ok_or(VerifyError::SignatureInvalid)?;
    let s = scalar_from_le(&report.signature_s).ok_or(VerifyError::SignatureInvalid)?;
    // The fixed-width form R ‖ S, each 48 bytes big-endian.
    let fixed = [r, s].concat();
    key.verify_sig(&report.signed_bytes(), &fixed)
        .map_err(|_| VerifyError::SignatureInvalid)
}
