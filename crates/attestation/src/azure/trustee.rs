//! Reads trustee's `az-snp-vtpm` evidence JSON (confidential-containers/trustee test data) into
//! [`AzureSnpEvidence`]. Two shapes exist: v1/v2 (`version`, base64url `hcl_report`, hex
//! quote fields, base64 DER `vcek`) and v0 (`report`, `quote` as byte arrays, PEM `vcek`).
//! trustee's JSON has no ASK/ARK (its verifier pins them), so the caller supplies them.

use serde::Deserialize;

use super::{AzureSnpEvidence, AzureTdxEvidence, PcrValue, TpmQuote};
use crate::SnpCertChain;

/// Why trustee evidence JSON could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("trustee az-snp-vtpm evidence: {0}")]
pub struct TrusteeFormatError(pub String);

#[derive(Deserialize)]
#[serde(untagged)]
enum Shape {
    V1(V1),
    V0(V0),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1 {
    version: u32,
    hcl_report: String,
    tpm_quote: HexQuote,
    vcek: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TdxV1 {
    version: u32,
    hcl_report: String,
    tpm_quote: HexQuote,
    td_quote: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HexQuote {
    signature: String,
    message: String,
    pcrs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V0 {
    report: Vec<u8>,
    quote: ByteQuote,
    vcek: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByteQuote {
    signature: Vec<u8>,
    message: Vec<u8>,
    pcrs: Vec<Vec<u8>>,
}

fn err(reason: impl Into<String>) -> TrusteeFormatError {
    TrusteeFormatError(reason.into())
}

/// base64 in either alphabet, padding optional (trustee mixes them).
fn b64_any(field: &str, s: &str) -> Result<Vec<u8>, TrusteeFormatError> {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine;
    let normal: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    STANDARD_NO_PAD
        .decode(normal.as_bytes())
        .map_err(|e| err(format!("{field} is not base64: {e}")))
}

fn hex_field(field: &str, s: &str) -> Result<Vec<u8>, TrusteeFormatError> {
    hex::decode(s).map_err(|e| err(format!("{field} is not hex: {e}")))
}

fn pcr(i: usize, v: &[u8]) -> Result<PcrValue, TrusteeFormatError> {
    let a: [u8; 32] = v
        .try_into()
        .map_err(|_| err(format!("PCR {i} is {} bytes, not 32", v.len())))?;
    Ok(PcrValue(a))
}

fn hex_quote(q: HexQuote) -> Result<TpmQuote, TrusteeFormatError> {
    let pcrs = q
        .pcrs
        .iter()
        .enumerate()
        .map(|(i, p)| pcr(i, &hex_field("pcr", p)?))
        .collect::<Result<_, _>>()?;
    Ok(TpmQuote {
        message: hex_field("tpm_quote.message", &q.message)?,
        signature: hex_field("tpm_quote.signature", &q.signature)?,
        pcrs,
    })
}

/// Converts trustee's `az-tdx-vtpm` evidence JSON (version 1: base64url `hcl_report` and
/// `td_quote`, hex quote fields).
pub fn tdx_evidence(json: &[u8]) -> Result<AzureTdxEvidence, TrusteeFormatError> {
    let v: TdxV1 = serde_json::from_slice(json).map_err(|e| err(e.to_string()))?;
    if v.version != 1 {
        return Err(err(format!("version {} is not 1", v.version)));
    }
    Ok(AzureTdxEvidence {
        hcl_report: b64_any("hcl_report", &v.hcl_report)?,
        tpm_quote: hex_quote(v.tpm_quote)?,
        td_quote: b64_any("td_quote", &v.td_quote)?,
        gpus: Vec::new(),
    })
}

/// Converts trustee evidence JSON, completing the chain with `ask` and `ark` (DER).
pub fn snp_evidence(
    json: &[u8],
    ask: Vec<u8>,
    ark: Vec<u8>,
) -> Result<AzureSnpEvidence, TrusteeFormatError> {
    let shape: Shape = serde_json::from_slice(json).map_err(|e| err(e.to_string()))?;
    let (hcl_report, tpm_quote, vcek) = match shape {
        Shape::V1(v) => {
            if !(1..=2).contains(&v.version) {
                return Err(err(format!("version {} is not 1 or 2", v.version)));
            }
            let quote = hex_quote(v.tpm_quote)?;
            (
                b64_any("hcl_report", &v.hcl_report)?,
                quote,
                b64_any("vcek", &v.vcek)?,
            )
        }
        Shape::V0(v) => {
            let pcrs = v
                .quote
                .pcrs
                .iter()
                .enumerate()
                .map(|(i, p)| pcr(i, p))
                .collect::<Result<_, _>>()?;
            let quote = TpmQuote {
                message: v.quote.message,
                signature: v.quote.signature,
                pcrs,
            };
            let certs = crate::pem::certificates(v.vcek.as_bytes())
                .map_err(|e| err(format!("vcek PEM: {e}")))?;
            let [vcek] = <[Vec<u8>; 1]>::try_from(certs)
                .map_err(|c| err(format!("vcek PEM holds {} certificates, not 1", c.len())))?;
            (v.report, quote, vcek)
        }
    };
    Ok(AzureSnpEvidence {
        hcl_report,
        tpm_quote,
        chain: SnpCertChain { vcek, ask, ark },
        gpus: Vec::new(),
    })
}
