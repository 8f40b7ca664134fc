//! The simulated platform's DCAP collateral, made fresh on request: TCB info (v3, TDX) and QE
//! identity (v2, TD_QE) JSON signed over their exact bytes by the TCB signer, CRLs of the root and
//! the PCK CA, and the issuer chains, in dcap-qvl's `QuoteCollateralV3` shape.

use dcap_qvl::QuoteCollateralV3;
use serde_json::json;

use crate::sim::tdx::pki::{self, Pki, PLATFORM};
use crate::sim::tdx::quote::{
    raw_sign, MODULE_TCB_SVN, QE_ATTRIBUTES, QE_ISVSVN, QE_ISV_PROD_ID, QE_MRSIGNER,
};
use crate::sim::SimError;
use crate::tdx::TdxCollateral;

/// How long the collateral is valid after it was made (Intel's is about 30 days too).
pub(crate) const VALID_SECS: i64 = 30 * 86_400;
/// The TCB evaluation data number the simulated collateral claims.
const TCB_EVALUATION_DATA_NUMBER: u32 = 17;
/// TCB date of the one (UpToDate) level.
const TCB_DATE: &str = "2024-03-13T00:00:00Z";

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds (Intel's format), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn components(svns: &[u8]) -> Vec<serde_json::Value> {
    svns.iter().map(|svn| json!({ "svn": svn })).collect()
}

/// The TCB info body: one UpToDate level that the simulated platform meets exactly, and the
/// TDX module identity `TDX_01` (module version 1, as in [`MODULE_TCB_SVN`]).
fn tcb_info(issue: i64, next: i64) -> String {
    let zero48 = "0".repeat(96);
    json!({
        "id": "TDX",
        "version": 3,
        "issueDate": rfc3339(issue),
        "nextUpdate": rfc3339(next),
        "fmspc": hex::encode_upper(PLATFORM.fmspc),
        "pceId": hex::encode_upper(PLATFORM.pce_id),
        "tcbType": 0,
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
        "tdxModule": {
            "mrsigner": zero48,
            "attributes": "0000000000000000",
            "attributesMask": "FFFFFFFFFFFFFFFF"
        },
        "tdxModuleIdentities": [{
            "id": "TDX_01",
            "mrsigner": zero48,
            "attributes": "0000000000000000",
            "attributesMask": "FFFFFFFFFFFFFFFF",
            "tcbLevels": [{
                "tcb": { "isvsvn": MODULE_TCB_SVN[0] },
                "tcbDate": TCB_DATE,
                "tcbStatus": "UpToDate"
            }]
        }],
        "tcbLevels": [{
            "tcb": {
                "sgxtcbcomponents": components(&PLATFORM.cpu_svn),
                "pcesvn": PLATFORM.pce_svn,
                "tdxtcbcomponents": components(&MODULE_TCB_SVN)
            },
            "tcbDate": TCB_DATE,
            "tcbStatus": "UpToDate"
        }]
    })
    .to_string()
}

/// The QE identity body: the simulated quoting enclave's signer, product and SVN.
fn qe_identity(issue: i64, next: i64) -> String {
    json!({
        "id": "TD_QE",
        "version": 2,
        "issueDate": rfc3339(issue),
        "nextUpdate": rfc3339(next),
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
        "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF",
        "attributes": hex::encode_upper(QE_ATTRIBUTES),
        "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": hex::encode_upper(QE_MRSIGNER),
        "isvprodid": QE_ISV_PROD_ID,
        "tcbLevels": [{
            "tcb": { "isvsvn": QE_ISVSVN },
            "tcbDate": TCB_DATE,
            "tcbStatus": "UpToDate"
        }]
    })
    .to_string()
}

/// Collateral issued at unix time `now`, valid from a day before until [`VALID_SECS`] after.
pub(crate) fn make(pki: &Pki, now: i64) -> Result<TdxCollateral, SimError> {
    let issue = now - 86_400;
    let next = now + VALID_SECS;
    let tcb_info = tcb_info(issue, next);
    let qe_identity = qe_identity(issue, next);
    let tcb_key = pki.tcb_signer.key.ec_key()?;
    let signer_chain = pem_chain(&[&pki.tcb_signer.cert, &pki.root.cert])?;
    let inner = QuoteCollateralV3 {
        pck_crl_issuer_chain: pem_chain(&[&pki.pck_ca.cert, &pki.root.cert])?,
        root_ca_crl: pki::crl(&pki.root, now, next)?.to_der()?,
        pck_crl: pki::crl(&pki.pck_ca, now, next)?.to_der()?,
        tcb_info_issuer_chain: signer_chain.clone(),
        tcb_info_signature: raw_sign(&tcb_key, tcb_info.as_bytes())?.to_vec(),
        tcb_info,
        qe_identity_issuer_chain: signer_chain,
        qe_identity_signature: raw_sign(&tcb_key, qe_identity.as_bytes())?.to_vec(),
        qe_identity,
        pck_certificate_chain: None,
    };
    TdxCollateral::from_inner(inner).map_err(|reason| SimError::BadCollateral { reason })
}

fn pem_chain(certs: &[&openssl::x509::X509]) -> Result<String, SimError> {
    let mut out = Vec::new();
    for c in certs {
        out.extend(c.to_pem()?);
    }
    String::from_utf8(out).map_err(|e| SimError::BadCollateral {
        reason: format!("PEM is not UTF-8: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_752_919_234), "2025-07-19T10:00:34Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(951_868_800), "2000-03-01T00:00:00Z");
    }
}
