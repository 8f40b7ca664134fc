//! The full DCAP verification by dcap-qvl, and the mapping of its (string) failures to
//! [`TdxError`] variants. Anything not recognised stays a refusal: [`TdxError::Dcap`].

use dcap_qvl::verify::QuoteVerifier;

use crate::tdx::{TdxCollateral, TdxError};

/// What dcap-qvl established.
pub(crate) struct DcapVerdict {
    /// Intel's TCB status for the platform (platform, TDX module and QE converged).
    pub status: String,
    /// Intel security advisories that apply.
    pub advisories: Vec<String>,
}

/// Runs dcap-qvl anchored in `root_der` (the pinned Intel root, or a simulated root the policy
/// names by fingerprint; [`crate::tdx::chain::check_root`] chose it): collateral signatures and
/// validity at `now`, CRLs, PCK chain, QE report and identity, quote signature, TCB level, TD
/// attributes. Debug is left to the policy step (`allow_debug(true)` here), so it is refused
/// with its own error.
pub(crate) fn verify(
    raw_quote: &[u8],
    collateral: &TdxCollateral,
    quote_fmspc: &str,
    now_secs: u64,
    root_der: &[u8],
) -> Result<DcapVerdict, TdxError> {
    let report = QuoteVerifier::new(root_der.to_vec())
        .allow_debug(true)
        .verify(raw_quote, collateral.inner(), now_secs)
        .map_err(|e| classify(&format!("{e:#}"), collateral.fmspc(), quote_fmspc))?;
    Ok(DcapVerdict {
        status: report.status,
        advisories: report.advisory_ids,
    })
}

/// dcap-qvl 0.7 reports failures as `anyhow` message chains; these are its messages.
fn classify(msg: &str, collateral_fmspc: &str, quote_fmspc: &str) -> TdxError {
    let has = |needles: &[&str]| needles.iter().any(|n| msg.contains(n));
    let m = || msg.to_string();
    if has(&[
        "TCBInfo expired",
        "QE Identity expired",
        "issue date is in the future",
        "CrlExpired",
        "CertExpired",
        "CertNotValidYet",
    ]) {
        TdxError::CollateralExpired(m())
    } else if has(&["CertRevoked"]) {
        TdxError::CertificateRevoked(m())
    } else if has(&["Fmspc mismatch"]) {
        TdxError::FmspcMismatch {
            collateral: collateral_fmspc.to_string(),
            quote: quote_fmspc.to_string(),
        }
    } else if has(&["TCB status is invalid: Revoked"]) {
        TdxError::TcbRevoked
    } else if has(&[
        "No matching TCB level found",
        "below minimum required from TDX module TCB levels",
    ]) {
        TdxError::TcbLevelNotFound(m())
    } else if has(&["TDX module"]) {
        TdxError::TdxModuleMismatch(m())
    } else if has(&[
        "QE MRSIGNER",
        "QE ISVPRODID",
        "QE MISCSELECT",
        "QE ATTRIBUTES",
        "QE ISVSVN",
        "QE report validation failed",
        "No TCB levels found in QE Identity",
    ]) {
        TdxError::QeIdentityMismatch(m())
    } else if has(&["Signature is invalid for qe_report"]) {
        TdxError::QeReportSignatureInvalid
    } else if has(&["QE report hash mismatch"]) {
        TdxError::AttestationKeyNotBound
    } else if has(&["ISV enclave report signature is invalid"]) {
        TdxError::QuoteSignatureInvalid
    } else if has(&[
        "Debug mode is enabled",
        "TD profiling",
        "TD attributes",
        "TD migration",
        "SERVTD_EXT",
        "SEPT_VE_DISABLE",
        "MR service TD",
    ]) {
        TdxError::TdAttributes(m())
    } else if has(&[
        "PCK certificate",
        "too short in quote",
        "from quote",
        "PCK cert format",
    ]) {
        TdxError::PckChainMalformed(m())
    } else if has(&[
        "quote_collateral",
        "TcbInfo",
        "QeIdentity",
        "QE Identity",
        "TCB Info",
        "TCB info",
        "CRL",
        "certificate chain",
        "Certificate chain",
        "root CA",
        "Unrecognized TCB status",
    ]) {
        TdxError::CollateralInvalid(m())
    } else {
        TdxError::Dcap(m())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_map_to_their_variants() {
        let c = |m: &str| classify(m, "aa", "bb");
        assert!(matches!(
            c("TCBInfo expired"),
            TdxError::CollateralExpired(_)
        ));
        assert!(matches!(
            c("Failed to verify certificate chain: CrlExpired { time: 1 }"),
            TdxError::CollateralExpired(_)
        ));
        assert!(matches!(
            c("Failed to verify certificate chain: CertRevoked"),
            TdxError::CertificateRevoked(_)
        ));
        assert_eq!(
            c("Fmspc mismatch"),
            TdxError::FmspcMismatch {
                collateral: "aa".into(),
                quote: "bb".into()
            }
        );
        assert_eq!(c("TCB status is invalid: Revoked"), TdxError::TcbRevoked);
        assert!(matches!(
            c("No matching TCB level found"),
            TdxError::TcbLevelNotFound(_)
        ));
        assert!(matches!(
            c("TDX module TCB level check: TDX module ISVSVN 1 is below minimum required from TDX module TCB levels"),
            TdxError::TcbLevelNotFound(_)
        ));
        assert!(matches!(
            c("TDX module identity check: TDX module MRSIGNER mismatch: expected 00, got 01"),
            TdxError::TdxModuleMismatch(_)
        ));
        assert!(matches!(
            c("QE MRSIGNER mismatch: expected A, got B"),
            TdxError::QeIdentityMismatch(_)
        ));
        assert_eq!(
            c("Signature is invalid for qe_report in quote"),
            TdxError::QeReportSignatureInvalid
        );
        assert_eq!(
            c("QE report hash mismatch"),
            TdxError::AttestationKeyNotBound
        );
        assert_eq!(
            c("ISV enclave report signature is invalid"),
            TdxError::QuoteSignatureInvalid
        );
        for m in [
            "TD migration is enabled",
            "SEPT_VE_DISABLE is not enabled",
            "Invalid MR service TD",
            "Reserved bits in TD attributes are set",
        ] {
            assert!(matches!(c(m), TdxError::TdAttributes(_)), "{m}");
        }
        for m in [
            "Signature is invalid for tcb_info in quote_collateral",
            "Failed to decode TcbInfo: x",
            "Failed to parse PCK CRL: y",
            "Failed to verify certificate chain: UnknownIssuer",
        ] {
            assert!(matches!(c(m), TdxError::CollateralInvalid(_)), "{m}");
        }
        for m in [
            "Certificate chain is too short in quote",
            "Failed to extract PCK certificates from quote: Failed to parse certs",
        ] {
            assert!(matches!(c(m), TdxError::PckChainMalformed(_)), "{m}");
        }
        assert!(matches!(c("something new"), TdxError::Dcap(_)));
    }
}
