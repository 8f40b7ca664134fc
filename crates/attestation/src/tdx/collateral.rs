//! Intel's DCAP collateral for one platform model (FMSPC): TCB info, QE identity, the PCK and
//! root CRLs and their signer chains, in dcap-qvl's `QuoteCollateralV3` JSON. Intel signs every
//! item, so the file may come from anywhere (Intel PCS, a PCCS, a copy in the repository): the
//! verifier checks the signatures against the pinned root and the validity at `now`.

use std::path::Path;

use dcap_qvl::QuoteCollateralV3;

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
        let mut inner: QuoteCollateralV3 =
            serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        // A PCK chain in the collateral would replace the quote's own chain in dcap-qvl. Pinned
        // collateral serves every platform of an FMSPC, so the chain is always the quote's.
        inner.pck_certificate_chain = None;
        #[derive(serde::Deserialize)]
        struct Fmspc {
            fmspc: String,
        }
        let fmspc = serde_json::from_str::<Fmspc>(&inner.tcb_info)
            .map_err(|e| unreadable(format!("tcb_info has no fmspc: {e}")))?
            .fmspc
            .to_ascii_lowercase();
        Ok(Self { inner, fmspc })
    }

    /// The FMSPC (platform model, 12 lowercase hex characters) the TCB info is for.
    pub fn fmspc(&self) -> &str {
        &self.fmspc
    }

    pub(crate) fn inner(&self) -> &QuoteCollateralV3 {
        &self.inner
    }
}
