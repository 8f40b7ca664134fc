//! The HCL runtime-claims JSON: only the fields this verifier reads, each typed. Other fields
//! (`vm-configuration`, …) are Microsoft's and may grow, so they are not refused; a duplicated
//! field we read is (serde refuses duplicates), so two readers cannot see two values.

use serde::Deserialize;

use super::AzureError;
use crate::ReportData;

/// `kid` of the vTPM attestation key in `keys`.
pub const AK_KID: &str = "HCLAkPub";

#[derive(Deserialize)]
struct Raw {
    keys: Vec<Jwk>,
    #[serde(rename = "user-data")]
    user_data: String,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    kty: String,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// The vTPM attestation key: an RSA public key (big-endian modulus and exponent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// Modulus.
    pub n: Vec<u8>,
    /// Public exponent.
    pub e: Vec<u8>,
}

/// What the verifier needs from the runtime claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeClaims {
    /// The attestation key `HCLAkPub` that signs TPM quotes.
    pub ak: RsaPublicKey,
    /// `user-data`: the 64 bytes the guest asked the paravisor to bind (hex in the JSON).
    pub user_data: ReportData,
}

fn bad(reason: impl Into<String>) -> AzureError {
    AzureError::MalformedRuntimeData(reason.into())
}

fn b64url(field: &str, s: &str) -> Result<Vec<u8>, AzureError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('=').as_bytes())
        .map_err(|e| bad(format!("{AK_KID}.{field} is not base64url: {e}")))
}

impl RuntimeClaims {
    /// Parses the JSON bytes. Exactly one `HCLAkPub` key, of type RSA, and a 128-hex-digit
    /// `user-data` are required.
    pub fn parse(json: &[u8]) -> Result<Self, AzureError> {
        let raw: Raw = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        let mut aks = raw.keys.iter().filter(|k| k.kid == AK_KID);
        let (Some(ak), None) = (aks.next(), aks.next()) else {
            return Err(bad(format!("not exactly one `{AK_KID}` key")));
        };
        if ak.kty != "RSA" {
            return Err(bad(format!("{AK_KID} is of type {:?}, not RSA", ak.kty)));
        }
        let (Some(n), Some(e)) = (&ak.n, &ak.e) else {
            return Err(bad(format!("{AK_KID} lacks n or e")));
        };
        let mut user_data = [0u8; 64];
        hex::decode_to_slice(&raw.user_data, &mut user_data)
            .map_err(|e| bad(format!("user-data is not 128 hex digits: {e}")))?;
        Ok(Self {
            ak: RsaPublicKey {
                n: b64url("n", n)?,
                e: b64url("e", e)?,
            },
            user_data: ReportData(user_data),
        })
    }
}
