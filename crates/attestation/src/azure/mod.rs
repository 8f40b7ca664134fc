//! Azure confidential VMs with a vTPM (no `/dev/sev-guest` in the guest): Microsoft's paravisor
//! (HCL) writes an HCL report into vTPM NV index 0x01400001. Its hardware report (SNP
//! `ATTESTATION_REPORT`) carries SHA-256 of a runtime-claims JSON, which names the vTPM
//! attestation key (`HCLAkPub`) and the guest's `user-data`; that key signs TPM2 quotes over
//! the boot PCRs. References: Microsoft's IGVM attestation structures, kinvolk/azure-cvm-tooling
//! (`az-cvm-vtpm`), trustee's `az-snp-vtpm` verifier, TPM 2.0 Library Part 2.
//!
//! Binding (our choice): `user-data` = the 64-byte report data, and the quote's extraData =
//! SHA-256(report data) ([`quote_nonce`]): 32 bytes fit every TPM's `TPM2B_DATA`.
//! Types and parsers always compile; the verifier needs the `azure` feature.

use serde::{Deserialize, Serialize};

#[cfg(feature = "azure-attester")]
mod attester;
mod error;
mod hcl;
#[cfg(feature = "azure-attester")]
pub mod imds;
#[cfg(all(feature = "azure-attester", feature = "sim"))]
pub mod paravisor_sim;
mod runtime;
#[cfg(all(feature = "azure-attester", feature = "sim"))]
pub mod swtpm;
#[cfg(all(feature = "azure", feature = "tdx"))]
mod tdx_verify;
mod tpm;
#[cfg(feature = "azure-attester")]
pub mod tpm_client;
pub mod trustee;
#[cfg(feature = "azure")]
mod verify;

#[cfg(feature = "azure-attester")]
pub(crate) use attester::{quote_pcrs, strip_zeros};
#[cfg(feature = "azure-attester")]
pub use attester::{
    AzureVtpmAttester, VtpmAttestError, AK_HANDLE, DEFAULT_PCRS, NV_HCL_REPORT, NV_REPORT_DATA,
};
pub use error::AzureError;
pub use hcl::{
    HclReport, HclReportType, HASH_TYPE_SHA256, HCL_HEADER_LEN, HCL_SIGNATURE, HW_REPORT_LEN,
    RUNTIME_HEADER_LEN, TDREPORT_LEN, TDREPORT_MRTD, TDREPORT_REPORTDATA,
};
pub use runtime::{RsaPublicKey, RuntimeClaims, AK_KID};
#[cfg(all(feature = "azure", feature = "tdx"))]
pub use tdx_verify::{
    verify_tdx_with_nonce, verify_tdx_without_dcap_collateral, AzureTdxVtpmVerifier,
};
#[cfg(feature = "snp")]
pub(crate) use tpm::{check_pcr_digest, first_disallowed_pcr};
pub use tpm::{
    rsassa_sha256_signature, PcrSelection, QuoteAttest, TPM_ALG_RSASSA, TPM_ALG_SHA256,
    TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE,
};
#[cfg(feature = "azure")]
pub use verify::{verify_with_nonce, AzureVtpmVerifier};

use crate::evidence::b64;
use crate::{ReportData, SnpCertChain};

/// Azure SEV-SNP CVM evidence: the HCL report, a vTPM quote, and the chain of the SNP report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSnpEvidence {
    /// The HCL report read from vTPM NV index 0x01400001, base64 on the wire.
    #[serde(with = "b64")]
    pub hcl_report: Vec<u8>,
    /// A TPM2 quote by the attestation key named in the HCL runtime data.
    pub tpm_quote: TpmQuote,
    /// ARK → ASK → VCEK for the SNP report inside the HCL report.
    pub chain: SnpCertChain,
    /// Evidence of the guest's confidential GPUs, each bound to the same report data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<crate::nvidia::GpuEvidence>,
}

/// Azure TDX CVM evidence: the HCL report (a TD report inside), the TD quote IMDS made of that
/// TD report, and a vTPM quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureTdxEvidence {
    /// The HCL report read from vTPM NV index 0x01400001, base64 on the wire.
    #[serde(with = "b64")]
    pub hcl_report: Vec<u8>,
    /// A TPM2 quote by the attestation key named in the HCL runtime data.
    pub tpm_quote: TpmQuote,
    /// The DCAP quote (v4) of the TD report, from IMDS `/acc/tdquote`, base64 on the wire.
    #[serde(with = "b64")]
    pub td_quote: Vec<u8>,
    /// Evidence of the guest's confidential GPUs, each bound to the same report data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<crate::nvidia::GpuEvidence>,
}

/// A TPM2_Quote: the signed `TPMS_ATTEST`, its signature and the PCR values it covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmQuote {
    /// The `TPMS_ATTEST` bytes (the signed message), base64 on the wire.
    #[serde(with = "b64")]
    pub message: Vec<u8>,
    /// The raw RSASSA-PKCS1-v1_5/SHA-256 signature (not a `TPMT_SIGNATURE`), base64.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
    /// SHA-256 bank values, index = PCR number (hex on the wire). Must cover every quoted PCR.
    pub pcrs: Vec<PcrValue>,
}

/// A SHA-256 PCR value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PcrValue(pub [u8; 32]);

impl Serialize for PcrValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for PcrValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Self(out))
    }
}

/// The quote's extraData a guest must use for `report_data`: SHA-256 of the 64 bytes.
pub fn quote_nonce(report_data: &ReportData) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(report_data.as_bytes()).into()
}

/// PCR values allowed by a policy, for Azure vTPM evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureVtpmPolicy {
    /// PCR index → allowed SHA-256 values (64 hex digits). A PCR not listed is not checked;
    /// a listed PCR must be quoted and hold one of its values.
    #[serde(default)]
    pub pcrs: std::collections::BTreeMap<u32, Vec<String>>,
}

impl AzureVtpmPolicy {
    /// Checks every value is 64 hex digits and every index a PCR (0..24).
    pub(crate) fn validate(&self) -> Result<(), String> {
        validate_pcrs("azure_vtpm.pcrs", &self.pcrs)
    }
}

/// Checks a policy's PCR map (`what` names it in errors): indices 0..24, values 64 hex digits.
pub(crate) fn validate_pcrs(
    what: &str,
    pcrs: &std::collections::BTreeMap<u32, Vec<String>>,
) -> Result<(), String> {
    for (index, values) in pcrs {
        if *index >= 24 {
            return Err(format!("{what}: PCR {index} does not exist"));
        }
        for v in values {
            if v.len() != 64 || hex::decode(v).is_err() {
                return Err(format!("{what}.{index}: {v:?} is not 64 hex digits"));
            }
        }
    }
    Ok(())
}
