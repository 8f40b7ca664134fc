//! Intel's DCAP collateral for one platform model (FMSPC): TCB info, QE identity, the PCK and
//! root CRLs and their signer chains, in dcap-qvl's `QuoteCollateralV3` JSON. Intel signs every
//! item, so the file may come from anywhere (Intel PCS, a PCCS, a copy in the repository): the
//! verifier checks the signatures against the pinned root and the validity at `now`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dcap_qvl::QuoteCollateralV3;
use openssl::asn1::Asn1Time;
use openssl::x509::X509Crl;

use crate::tdx::TdxError;

/// Collateral for verifying TDX quotes of one FMSPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxCollateral {
    inner: QuoteCollateralV3,
    fmspc: String,
}

impl TdxCollateral {
    /// Parses `QuoteCollateralV3` JSON (byte fields hex-encoded, as dcap-qvl writes them).
    pub fn from_json(text: &str) -> Result<Self, TdxError> {
        Self::parse(text, "<string>")
    }

    /// Reads and parses a collateral file.
    pub fn load(path: &Path) -> Result<Self, TdxError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TdxError::CollateralUnreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &shown)
    }

    fn parse(text: &str, path: &str) -> Result<Self, TdxError> {
        let unreadable = |reason: String| TdxError::CollateralUnreadable {
            path: path.to_string(),
            reason,
        };
        let inner: QuoteCollateralV3 =
            serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        Self::from_inner(inner).map_err(unreadable)
    }

    /// Wraps dcap-qvl collateral (e.g. assembled from PCS responses). Fails only if the TCB info
    /// names no FMSPC.
    pub(crate) fn from_inner(mut inner: QuoteCollateralV3) -> Result<Self, String> {
        // A PCK chain in the collateral would replace the quote's own chain in dcap-qvl. Pinned
        // collateral serves every platform of an FMSPC, so the chain is always the quote's.
        inner.pck_certificate_chain = None;
        #[derive(serde::Deserialize)]
        struct Fmspc {
            fmspc: String,
        }
        let fmspc = serde_json::from_str::<Fmspc>(&inner.tcb_info)
            .map_err(|e| format!("tcb_info has no fmspc: {e}"))?
            .fmspc
            .to_ascii_lowercase();
        Ok(Self { inner, fmspc })
    }

    /// The FMSPC (platform model, 12 lowercase hex characters) the TCB info is for.
    pub fn fmspc(&self) -> &str {
        &self.fmspc
    }

    /// The collateral as `QuoteCollateralV3` JSON: what [`TdxCollateral::from_json`] and
    /// [`TdxCollateral::load`] read (so a `tdx.pccs` cache file can be pinned as a file).
    pub fn to_json(&self) -> Result<String, TdxError> {
        serde_json::to_string_pretty(&self.inner)
            .map_err(|e| TdxError::CollateralInvalid(format!("cannot serialise: {e}")))
    }

    /// When this collateral must be replaced: the earliest `nextUpdate` of the TCB info, the QE
    /// identity, the PCK CRL and the root CA CRL (dcap-qvl refuses each one from then on).
    pub fn next_update(&self) -> Result<SystemTime, TdxError> {
        self.next_update_secs()
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
            .map_err(TdxError::CollateralInvalid)
    }

    /// [`TdxCollateral::next_update`] in unix seconds, failing with what was unreadable.
    pub(crate) fn next_update_secs(&self) -> Result<u64, String> {
        let items = [
            json_next_update(&self.inner.tcb_info).map_err(|e| format!("tcb_info: {e}"))?,
            json_next_update(&self.inner.qe_identity).map_err(|e| format!("qe_identity: {e}"))?,
            crl_next_update(&self.inner.pck_crl).map_err(|e| format!("pck_crl: {e}"))?,
            crl_next_update(&self.inner.root_ca_crl).map_err(|e| format!("root_ca_crl: {e}"))?,
        ];
        items
            .into_iter()
            .min()
            .ok_or_else(|| "no nextUpdate".to_string())
    }

    pub(crate) fn inner(&self) -> &QuoteCollateralV3 {
        &self.inner
    }
}

/// `nextUpdate` of a signed JSON item (TCB info, QE identity), unix seconds.
pub(crate) fn json_next_update(json: &str) -> Result<u64, String> {
    #[derive(serde::Deserialize)]
    struct Dates {
        #[serde(rename = "nextUpdate")]
        next_update: String,
    }
    let dates: Dates = serde_json::from_str(json).map_err(|e| format!("nextUpdate: {e}"))?;
    rfc3339_secs(&dates.next_update).ok_or_else(|| {
        format!(
            "nextUpdate {:?} is not an RFC 3339 UTC time",
            dates.next_update
        )
    })
}

/// `nextUpdate` of a DER CRL, unix seconds.
pub(crate) fn crl_next_update(der: &[u8]) -> Result<u64, String> {
    let crl = X509Crl::from_der(der).map_err(|e| format!("not a DER CRL: {e}"))?;
    let next = crl.next_update().ok_or("the CRL has no nextUpdate")?;
    let epoch = Asn1Time::from_unix(0).map_err(|e| e.to_string())?;
    let diff = epoch.diff(next).map_err(|e| e.to_string())?;
    i64::from(diff.days)
        .checked_mul(86_400)
        .and_then(|d| d.checked_add(i64::from(diff.secs)))
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| "nextUpdate before 1970".to_string())
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (what Intel writes) → unix seconds.
fn rfc3339_secs(text: &str) -> Option<u64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let time = time.split_once('.').map_or(time, |(whole, _)| whole);
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let mut t = time.split(':');
    let (h, min, sec) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || h > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    // Days from 1970-01-01 to y-m-day in the proleptic Gregorian calendar (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + min * 60 + sec).ok()
}

#[cfg(test)]
mod tests {
    use super::rfc3339_secs;

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_secs("2025-07-19T10:00:34Z"), Some(1_752_919_234));
        assert_eq!(
            rfc3339_secs("2024-02-29T23:59:59.123Z"),
            Some(1_709_251_199)
        );
        assert_eq!(rfc3339_secs("2000-03-01T00:00:00+00:00"), Some(951_868_800));
        for bad in [
            "2025-07-19T10:00:34",
            "2025-07-19 10:00:34Z",
            "2025-13-19T10:00:34Z",
            "2025-07-19T10:00Z",
            "2025-07-19T10:00:34+02:00",
            "x025-07-19T10:00:34Z",
        ] {
            assert_eq!(rfc3339_secs(bad), None, "{bad}");
        }
    }
}
