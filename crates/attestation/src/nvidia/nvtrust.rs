//! GPU evidence files for verification on their own (`cdvm verify --gpu`): NVIDIA's evidence JSON,
//! as its tools write it, or this crate's own [`GpuEvidence`] JSON.
//!
//! NVIDIA's format is a JSON array with one object per device. Checked against NVIDIA's sources:
//! nvtrust `guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/cc_admin.py`
//! (`collect_gpu_evidence_remote`, the list the Python attestation SDK's `get_evidence` returns)
//! and NVIDIA/attestation-sdk `nv-attestation-sdk-cpp/src/gpu/evidence.cpp` (`to_json` /
//! `from_json`, what `nvattest` writes):
//!
//! | field | content |
//! |---|---|
//! | `evidence` | base64 of the SPDM GET_MEASUREMENTS request ‖ signed MEASUREMENTS response |
//! | `certificate` | base64 of the device chain as PEM text, leaf first, ending in NVIDIA's root |
//! | `arch` | optional: `HOPPER`, `BLACKWELL` or `LS10` (NVSwitch) |
//! | `nonce` | optional: hex of the 32-byte nonce the collector sent (an unsigned copy) |
//! | `version` | optional: `1.0` (attestation-sdk 2025.09 writes it) |
//! | `driver_version`, `vbios_version` | optional: unsigned copies (attestation-sdk 2025.09) |
//!
//! Only the signed report and the chain are trusted. `arch` can only refuse (see
//! [`super::DeviceClass`]); `nonce`, `driver_version` and `vbios_version` are checked for form
//! and otherwise ignored: the verifier compares the nonce and versions the GPU signed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{certs_from_pem, GpuEvidence};

/// One device's entry in NVIDIA's evidence JSON. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvtrustEntry {
    /// The SPDM request ‖ signed response; base64 on the wire.
    #[serde(with = "crate::evidence::b64")]
    pub evidence: Vec<u8>,
    /// The certificate chain as PEM text (leaf first); base64 on the wire.
    #[serde(with = "crate::evidence::b64")]
    pub certificate: Vec<u8>,
    /// The declared device architecture (`HOPPER`, `BLACKWELL`, `LS10`). Not signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Hex of the nonce the collector sent. Not signed: the report's own request nonce is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The entry's format version; only `1.0` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The driver version the collector saw. Not signed: the report's own is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The VBIOS version the collector saw. Not signed: the report's own is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vbios_version: Option<String>,
}

/// One device as a file presents it: its evidence and the architecture the file declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresentedGpu {
    /// The evidence, in this crate's form.
    pub evidence: GpuEvidence,
    /// NVIDIA's `arch` field, if the file had one.
    pub arch: Option<String>,
}

/// Which format a GPU evidence file was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuFileFormat {
    /// NVIDIA's evidence JSON (nvtrust, nvattest).
    Nvidia,
    /// This crate's [`GpuEvidence`] JSON (`report`, `certs`).
    Cdvm,
}

/// A GPU evidence file, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuEvidenceFile {
    /// The format it was in.
    pub format: GpuFileFormat,
    /// The devices, in file order (at least one).
    pub gpus: Vec<PresentedGpu>,
}

/// Why a GPU evidence file could not be read. These are input errors, not refusals: nothing was
/// verified yet.
#[derive(Debug, thiserror::Error)]
pub enum GpuFileError {
    /// The file is not JSON.
    #[error("not JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The JSON is neither an array of device entries nor one entry.
    #[error(
        "expected NVIDIA's evidence JSON (an array of objects with `evidence` and `certificate`) \
         or GpuEvidence JSON (`report`, `certs`); found {found}"
    )]
    Shape {
        /// What the top level is.
        found: &'static str,
    },
    /// The file lists no device.
    #[error("the file lists no device: there is nothing to verify")]
    Empty,
    /// An entry does not have the expected fields (missing, unknown, wrong type, bad base64).
    #[error("device entry #{index}: {source}")]
    Entry {
        /// Position in the file.
        index: usize,
        /// The decoding failure.
        #[source]
        source: serde_json::Error,
    },
    /// An entry's `certificate` is not PEM certificates.
    #[error("device entry #{index}: `certificate` is not a PEM certificate chain: {reason}")]
    Certificate {
        /// Position in the file.
        index: usize,
        /// Why.
        reason: String,
    },
    /// An entry's `nonce` is not 64 hex characters.
    #[error("device entry #{index}: `nonce` is not 64 hex characters (32 bytes)")]
    Nonce {
        /// Position in the file.
        index: usize,
    },
    /// An entry has a format version this reader does not know.
    #[error("device entry #{index}: unsupported format version {found:?} (only \"1.0\" exists)")]
    Version {
        /// Position in the file.
        index: usize,
        /// The version found.
        found: String,
    },
}

/// Reads a GPU evidence file: NVIDIA's array (or one of its entries), or this crate's
/// [`GpuEvidence`] JSON (one object or an array). The first entry decides the format; every
/// entry must be in it. Base64 is decoded strictly (standard alphabet, padding, no whitespace).
pub fn parse_gpu_evidence_file(text: &str) -> Result<GpuEvidenceFile, GpuFileError> {
    let value: Value = serde_json::from_str(text).map_err(GpuFileError::Json)?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        Value::Null => return Err(GpuFileError::Shape { found: "null" }),
        Value::Bool(_) => return Err(GpuFileError::Shape { found: "a boolean" }),
        Value::Number(_) => return Err(GpuFileError::Shape { found: "a number" }),
        Value::String(_) => return Err(GpuFileError::Shape { found: "a string" }),
    };
    let Some(first) = items.first() else {
        return Err(GpuFileError::Empty);
    };
    // Our format has `report`; NVIDIA's has `evidence`. Anything else is read as NVIDIA's, whose
    // decoder then names the missing field.
    let format = if first.get("report").is_some() {
        GpuFileFormat::Cdvm
    } else {
        GpuFileFormat::Nvidia
    };
    let gpus = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match format {
            GpuFileFormat::Cdvm => serde_json::from_value(item)
                .map(|evidence| PresentedGpu {
                    evidence,
                    arch: None,
                })
                .map_err(|source| GpuFileError::Entry { index, source }),
            GpuFileFormat::Nvidia => serde_json::from_value::<NvtrustEntry>(item)
                .map_err(|source| GpuFileError::Entry { index, source })
                .and_then(|entry| entry.into_presented(index)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GpuEvidenceFile { format, gpus })
}

impl NvtrustEntry {
    /// Builds an entry from evidence bytes and a PEM chain, as NVIDIA's tools do (for tests and
    /// for writing NVIDIA's format).
    pub fn new(evidence: Vec<u8>, chain_pem: &str, arch: Option<&str>) -> Self {
        NvtrustEntry {
            evidence,
            certificate: chain_pem.as_bytes().to_vec(),
            arch: arch.map(str::to_string),
            nonce: None,
            version: None,
            driver_version: None,
            vbios_version: None,
        }
    }

    /// Checks the optional fields' form and turns the PEM chain into DER certificates.
    fn into_presented(self, index: usize) -> Result<PresentedGpu, GpuFileError> {
        if let Some(found) = self.version.filter(|v| v != "1.0") {
            return Err(GpuFileError::Version { index, found });
        }
        if let Some(nonce) = &self.nonce {
            let mut bytes = [0u8; super::spdm::NONCE_LEN];
            hex::decode_to_slice(nonce, &mut bytes).map_err(|_| GpuFileError::Nonce { index })?;
        }
        let bad = |reason: String| GpuFileError::Certificate { index, reason };
        let pem = std::str::from_utf8(&self.certificate)
            .map_err(|_| bad("the decoded bytes are not text".into()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(bad("no `BEGIN CERTIFICATE` block".into()));
        }
        let certs = certs_from_pem(pem).map_err(|e| bad(e.to_string()))?;
        Ok(PresentedGpu {
            evidence: GpuEvidence {
                report: self.evidence,
                certs,
            },
            arch: self.arch,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    #[test]
    fn shapes_that_are_not_evidence() {
        for (text, found) in [
            ("null", "null"),
            ("true", "a boolean"),
            ("3", "a number"),
            ("\"x\"", "a string"),
        ] {
            assert!(matches!(
                parse_gpu_evidence_file(text),
                Err(GpuFileError::Shape { found: f }) if f == found
            ));
        }
        assert!(matches!(
            parse_gpu_evidence_file("[]"),
            Err(GpuFileError::Empty)
        ));
        assert!(matches!(
            parse_gpu_evidence_file("[{"),
            Err(GpuFileError::Json(_))
        ));
    }

    #[test]
    fn base64_is_strict() {
        // "AQI=" is [1, 2]; each variant below (one with a JSON-escaped newline) is refused by the
        // standard, padded engine.
        for bad in ["AQI", "AQ I=", r"AQI=\n", "AQ-=", "AQJ="] {
            let text = format!(r#"[{{"evidence": "{bad}", "certificate": "AQI="}}]"#);
            let err = parse_gpu_evidence_file(&text).unwrap_err();
            assert!(
                matches!(err, GpuFileError::Entry { index: 0, .. }),
                "{bad}: {err}"
            );
        }
        // The control: "AQI=" itself decodes, and the entry fails only later, at its chain.
        let text = r#"[{"evidence": "AQI=", "certificate": "AQI="}]"#;
        assert!(matches!(
            parse_gpu_evidence_file(text),
            Err(GpuFileError::Certificate { index: 0, .. })
        ));
        // Valid base64 of text that is not PEM.
        let text = format!(
            r#"[{{"evidence": "AQI=", "certificate": "{}"}}]"#,
            STANDARD.encode(b"not pem")
        );
        assert!(matches!(
            parse_gpu_evidence_file(&text),
            Err(GpuFileError::Certificate { index: 0, .. })
        ));
    }
}
