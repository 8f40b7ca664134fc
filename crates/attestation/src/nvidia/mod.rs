//! NVIDIA confidential-computing GPUs (H100 "Hopper"): SPDM measurement evidence, policy, and
//! (feature `nvidia`) verification bound to the CPU evidence's report data.
//!
//! A GPU's evidence is the SPDM 1.1 GET_MEASUREMENTS request the guest sent, the GPU's signed
//! MEASUREMENTS response ([`spdm`]), and the GPU's certificate chain up to NVIDIA's pinned device
//! identity root. The request nonce must be [`gpu_nonce`] of the CPU evidence's report data (its
//! first half) — so the GPU evidence is bound to the same job and guest key.
//! Checks and their order: `docs/attestation.md`, "NVIDIA GPUs". GPU evidence can also be
//! verified on its own against a nonce the relying party chose ([`verify_gpus_standalone`]), read
//! from NVIDIA's evidence JSON ([`nvtrust`]).

use serde::{Deserialize, Serialize};

mod device;
pub mod nvtrust;
mod policy;
pub mod spdm;

#[cfg(feature = "nvidia")]
mod chain;
#[cfg(feature = "nvml")]
pub mod collect;
#[cfg(feature = "nvidia")]
mod der;
#[cfg(feature = "nvidia")]
pub mod roots;
#[cfg(feature = "nvidia")]
mod verify;

pub use device::DeviceClass;
pub use nvtrust::{
    parse_gpu_evidence_file, GpuEvidenceFile, GpuFileError, GpuFileFormat, NvtrustEntry,
    PresentedGpu,
};
pub use policy::{load_gpu_policy, AllowedGpuMeasurement, GpuOnlyPolicy, GpuPolicy};
pub use spdm::{GpuReport, MeasurementBlock, SpdmError, NONCE_LEN};

/// THE derivation of the 32-byte SPDM nonce a GPU signs from the 64 bytes of report data
/// (docs/protocol.md, "The GPU nonce"): the first 32 bytes, `REPORT_DATA[0..32]`.
///
/// The one definition, used by the guest when it asks each GPU for its report
/// (`nvidia::collect`, feature `nvml`) and by every verifier ([`verify_gpus`],
/// [`crate::ReportData::gpu_nonce`]); `cdvm_protocol::gpu_nonce` re-exports it. No second hash:
/// REPORT_DATA is already the domain-separated `SHA-512("cdvm/v1" ‖ request_id ‖ G)`, so its first
/// 256 bits are a collision-resistant commitment to the job and the guest key on their own, and
/// the truncation keeps GPU evidence checkable by NVIDIA's tools with the nonce shown in hex.
pub fn gpu_nonce(report_data: &[u8; 64]) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&report_data[..NONCE_LEN]);
    nonce
}

/// One GPU's evidence: the SPDM GET_MEASUREMENTS request+response and its certificate chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuEvidence {
    /// The SPDM request followed by the signed MEASUREMENTS response, base64 on the wire.
    #[serde(with = "crate::evidence::b64")]
    pub report: Vec<u8>,
    /// The device certificate chain, DER, base64 on the wire, **leaf first**: the certificate
    /// whose key signed the report (`GH100 A01 GSP FMC LF`), then each issuer in turn, ending
    /// with NVIDIA's root (`NVIDIA Device Identity CA`). This is the order NVIDIA's driver and
    /// nvtrust return it in.
    pub certs: Vec<GpuCert>,
}

/// One DER certificate of a GPU chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GpuCert(#[serde(with = "crate::evidence::b64")] pub Vec<u8>);

impl GpuEvidence {
    /// Builds evidence from the text forms nvtrust and trustee use: the report as hex (optional
    /// `0x` prefix, surrounding whitespace ignored) and the chain as concatenated PEM
    /// certificates, leaf first (kept in file order).
    pub fn from_text(report_hex: &str, chain_pem: &str) -> Result<Self, GpuError> {
        let text = report_hex.trim();
        let text = text.strip_prefix("0x").unwrap_or(text);
        let report = hex::decode(text).map_err(|e| GpuError::Malformed {
            gpu: 0,
            reason: format!("report is not hex ({e})"),
        })?;
        Ok(GpuEvidence {
            report,
            certs: certs_from_pem(chain_pem)?,
        })
    }

    /// The parsed report (unverified).
    pub fn parse_report(&self) -> Result<GpuReport, SpdmError> {
        GpuReport::parse(&self.report)
    }
}

/// Splits concatenated PEM certificates into DER, in file order.
pub fn certs_from_pem(pem: &str) -> Result<Vec<GpuCert>, GpuError> {
    let bad = |reason: String| GpuError::BadCertificate {
        gpu: 0,
        cert: "PEM chain".into(),
        reason,
    };
    let stack = openssl::x509::X509::stack_from_pem(pem.as_bytes())
        .map_err(|e| bad(format!("not PEM certificates ({e})")))?;
    stack
        .iter()
        .map(|c| {
            c.to_der()
                .map(GpuCert)
                .map_err(|e| bad(format!("cannot re-encode ({e})")))
        })
        .collect()
}

/// Reads the attestation certificate chain as NVML returns it
/// (`nvmlDeviceGetConfComputeGpuCertificate`'s `attestationCertChain`): concatenated PEM
/// certificates, leaf first, possibly followed by NUL padding. Refuses bytes that are not text,
/// not PEM certificates, or hold none.
pub fn certs_from_driver_chain(bytes: &[u8]) -> Result<Vec<GpuCert>, GpuError> {
    let bad = |reason: &str| GpuError::BadCertificate {
        gpu: 0,
        cert: "NVML attestation chain".into(),
        reason: reason.to_string(),
    };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = std::str::from_utf8(bytes.get(..end).unwrap_or_default())
        .map_err(|_| bad("not text (PEM expected)"))?;
    let certs = certs_from_pem(text)?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it"));
    }
    Ok(certs)
}

/// Why GPU evidence was refused. `gpu` is the position in the evidence's `gpus` list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GpuError {
    /// The guest presents GPU evidence but the policy has no `gpu` section.
    #[error(
        "the guest presents {count} GPU(s) but the policy has no `gpu` section (a guest may not \
         present devices the policy does not speak about)"
    )]
    NotInPolicy {
        /// How many GPUs were presented.
        count: usize,
    },
    /// The policy requires a GPU and the guest presents none (or, verifying GPU evidence on its
    /// own, there is none to verify).
    #[error("no confidential GPU is presented, but at least one is required")]
    Missing,
    /// The guest presents another number of GPUs than the policy requires.
    #[error("the policy requires exactly {expected} GPU(s); the guest presents {found}")]
    WrongCount {
        /// Required by the policy.
        expected: usize,
        /// Presented.
        found: usize,
    },
    /// The same GPU is presented twice (same attestation leaf certificate).
    #[error("GPU #{second} is the same device as GPU #{first} (same attestation certificate)")]
    Duplicate {
        /// The first occurrence.
        first: usize,
        /// The repeat.
        second: usize,
    },
    /// This build cannot verify GPU evidence (its cargo feature is off).
    #[error("this build cannot verify NVIDIA GPU evidence: enable the `{feature}` feature")]
    Unsupported {
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// The device is not a Hopper GPU (e.g. an NVSwitch of a protected-PCIe system). Checked
    /// before anything else, so no GPU rule is applied to another kind of device.
    #[error(
        "GPU #{gpu}: unsupported device class: {found} ({indicator}); only NVIDIA Hopper GPUs \
         are verified (NVSwitch evidence of protected-PCIe systems is refused)"
    )]
    UnsupportedDeviceClass {
        /// Which GPU.
        gpu: usize,
        /// The class found.
        found: DeviceClass,
        /// What said so: the leaf certificate's name or the evidence file's `arch` field.
        indicator: String,
    },
    /// The report could not be parsed.
    #[error("GPU #{gpu}: malformed evidence: {reason}")]
    Malformed {
        /// Which GPU.
        gpu: usize,
        /// Why.
        reason: String,
    },
    /// The chain is too short to hold a leaf and the root.
    #[error(
        "GPU #{gpu}: certificate chain has {found} certificate(s); it needs at least the signing \
         certificate and the NVIDIA root"
    )]
    ChainIncomplete {
        /// Which GPU.
        gpu: usize,
        /// How many certificates there are.
        found: usize,
    },
    /// A certificate is unreadable or of an unexpected type.
    #[error("GPU #{gpu}: bad certificate {cert}: {reason}")]
    BadCertificate {
        /// Which GPU.
        gpu: usize,
        /// Which certificate.
        cert: String,
        /// Why.
        reason: String,
    },
    /// The chain does not end in the pinned NVIDIA Device Identity CA.
    #[error(
        "GPU #{gpu}: untrusted root certificate {cert} (sha256 {fingerprint}); only the pinned \
         NVIDIA Device Identity CA is trusted"
    )]
    UntrustedRoot {
        /// Which GPU.
        gpu: usize,
        /// The root's label.
        cert: String,
        /// SHA-256 of the root's DER.
        fingerprint: String,
    },
    /// A certificate is not signed by the next one in the chain (or names another issuer).
    #[error("GPU #{gpu}: certificate chain broken: {cert} is not signed by {issuer}")]
    ChainInvalid {
        /// Which GPU.
        gpu: usize,
        /// The certificate that failed.
        cert: String,
        /// The certificate that should have signed it.
        issuer: String,
    },
    /// A certificate is outside its validity period at the verification time.
    #[error("GPU #{gpu}: certificate {cert} is not valid at the verification time")]
    CertificateExpired {
        /// Which GPU.
        gpu: usize,
        /// The certificate that failed.
        cert: String,
    },
    /// OpenSSL's RFC 5280 path validation refused the chain (CA flags, key usage, path length).
    #[error("GPU #{gpu}: certificate path rejected by X.509 path validation: {reason}")]
    PathRejected {
        /// Which GPU.
        gpu: usize,
        /// OpenSSL's reason.
        reason: String,
    },
    /// The first certificate is not a device attestation certificate (the signing leaf is
    /// missing from the chain).
    #[error("GPU #{gpu}: {cert} is not an attestation leaf certificate ({reason})")]
    NotAttestationLeaf {
        /// Which GPU.
        gpu: usize,
        /// The first certificate.
        cert: String,
        /// Why.
        reason: String,
    },
    /// The report signature does not verify with the leaf key.
    #[error(
        "GPU #{gpu}: report signature invalid: the report was altered or not signed by this GPU"
    )]
    SignatureInvalid {
        /// Which GPU.
        gpu: usize,
    },
    /// The firmware ID in the leaf certificate differs from the one the report carries.
    #[error("GPU #{gpu}: FWID mismatch: leaf certificate {certificate}, report {report}")]
    FwidMismatch {
        /// Which GPU.
        gpu: usize,
        /// Hex FWID of the leaf certificate.
        certificate: String,
        /// Hex FWID of the report (`absent` if none).
        report: String,
    },
    /// The SPDM request nonce is not the expected one: the GPU evidence is bound to another job
    /// or guest key (or replayed).
    #[error(
        "GPU #{gpu}: nonce mismatch: the GPU signed nonce {found}, but {expected} is required \
         (the first half of the report data, or the nonce given for standalone verification)"
    )]
    NonceMismatch {
        /// Which GPU.
        gpu: usize,
        /// Hex of the expected nonce.
        expected: String,
        /// Hex of the request nonce in the report.
        found: String,
    },
    /// A measurement index the policy lists is absent from the report.
    #[error("GPU #{gpu}: measurement index {index} required by the policy is not in the report")]
    MeasurementMissing {
        /// Which GPU.
        gpu: usize,
        /// The index.
        index: u8,
    },
    /// A measurement is not one the policy allows.
    #[error("GPU #{gpu}: measurement {index} = {found} is not allowed by the policy")]
    MeasurementNotAllowed {
        /// Which GPU.
        gpu: usize,
        /// The index.
        index: u8,
        /// Hex of the reported value.
        found: String,
    },
    /// The driver or VBIOS version is not one the policy allows.
    #[error("GPU #{gpu}: {what} {found} is not allowed by the policy")]
    VersionNotAllowed {
        /// Which GPU.
        gpu: usize,
        /// `driver version` or `VBIOS version`.
        what: &'static str,
        /// The reported version (`absent` if none).
        found: String,
    },
}

impl GpuError {
    /// The name of the check that failed, matching the `Check::name`s of a successful run
    /// (`gpu-count`, `gpu<N>-device`, `gpu<N>-chain`, …), so a refusal can be shown in place.
    pub fn check(&self) -> String {
        let step = |gpu: &usize, step: &str| format!("gpu{gpu}-{step}");
        match self {
            GpuError::NotInPolicy { .. } => "gpu-policy".into(),
            GpuError::Missing | GpuError::WrongCount { .. } => "gpu-count".into(),
            GpuError::Unsupported { .. } => "gpu-support".into(),
            GpuError::Duplicate { second, .. } => step(second, "duplicate"),
            GpuError::UnsupportedDeviceClass { gpu, .. } => step(gpu, "device"),
            GpuError::Malformed { gpu, .. } => step(gpu, "report"),
            GpuError::ChainIncomplete { gpu, .. }
            | GpuError::BadCertificate { gpu, .. }
            | GpuError::UntrustedRoot { gpu, .. }
            | GpuError::ChainInvalid { gpu, .. }
            | GpuError::PathRejected { gpu, .. } => step(gpu, "chain"),
            GpuError::CertificateExpired { gpu, .. } => step(gpu, "validity"),
            GpuError::NotAttestationLeaf { gpu, .. } => step(gpu, "leaf"),
            GpuError::SignatureInvalid { gpu } => step(gpu, "signature"),
            GpuError::FwidMismatch { gpu, .. } => step(gpu, "fwid"),
            GpuError::NonceMismatch { gpu, .. } => step(gpu, "nonce"),
            GpuError::MeasurementMissing { gpu, .. }
            | GpuError::MeasurementNotAllowed { gpu, .. } => step(gpu, "measurements"),
            GpuError::VersionNotAllowed { gpu, .. } => step(gpu, "versions"),
        }
    }
}

/// Verifies every GPU's evidence against the policy and the CPU evidence's report data.
///
/// No `gpu` section: no GPU evidence may be present ([`GpuError::NotInPolicy`]); the result is
/// empty. With one: the count rules, then each GPU in order. Without the `nvidia` feature, any
/// GPU evidence is refused with [`GpuError::Unsupported`], never skipped.
pub fn verify_gpus(
    gpus: &[GpuEvidence],
    expected: &crate::ReportData,
    policy: Option<&GpuPolicy>,
    now: std::time::SystemTime,
) -> Result<Vec<crate::Check>, GpuError> {
    let Some(policy) = policy else {
        if gpus.is_empty() {
            return Ok(Vec::new());
        }
        return Err(GpuError::NotInPolicy { count: gpus.len() });
    };
    let count = crate::Check {
        name: "gpu-count".into(),
        detail: policy.check_count(gpus.len())?,
    };
    if gpus.is_empty() {
        return Ok(vec![count]);
    }
    #[cfg(feature = "nvidia")]
    {
        let presented: Vec<_> = gpus.iter().map(|g| (g, None)).collect();
        let nonce = verify::Nonce {
            value: expected.gpu_nonce(),
            source: "the first half of the expected report data",
        };
        let mut checks = vec![count];
        checks.extend(verify::verify_all(&presented, &nonce, policy, now)?);
        Ok(checks)
    }
    #[cfg(not(feature = "nvidia"))]
    {
        let _ = (expected, now, count);
        Err(GpuError::Unsupported { feature: "nvidia" })
    }
}

/// Verifies GPU evidence on its own, not attached to CPU evidence: every device's SPDM request
/// nonce must equal `nonce`, which the relying party chose and sent to the GPU. The policy's `gpu`
/// rules apply as for attached GPUs (count, measurements, versions); a declared `arch` other than
/// Hopper refuses the device ([`GpuError::UnsupportedDeviceClass`]). Without the `nvidia`
/// feature, every device is refused with [`GpuError::Unsupported`].
///
/// Without CPU evidence this binds the GPUs to the nonce only, not to a guest: it shows that
/// genuine GPUs in confidential-computing mode answered this nonce, not which VM they serve. An
/// empty list is refused ([`GpuError::Missing`]) whatever the policy: verifying nothing proves
/// nothing.
pub fn verify_gpus_standalone(
    gpus: &[PresentedGpu],
    nonce: &[u8; NONCE_LEN],
    policy: &GpuPolicy,
    now: std::time::SystemTime,
) -> Result<Vec<crate::Check>, GpuError> {
    if gpus.is_empty() {
        return Err(GpuError::Missing);
    }
    let count = crate::Check {
        name: "gpu-count".into(),
        detail: policy.check_count(gpus.len())?,
    };
    #[cfg(feature = "nvidia")]
    {
        let presented: Vec<_> = gpus
            .iter()
            .map(|g| (&g.evidence, g.arch.as_deref()))
            .collect();
        let nonce = verify::Nonce {
            value: *nonce,
            source: "the nonce given to the verifier",
        };
        let mut checks = vec![count];
        checks.extend(verify::verify_all(&presented, &nonce, policy, now)?);
        Ok(checks)
    }
    #[cfg(not(feature = "nvidia"))]
    {
        let _ = (gpus, nonce, now, count);
        Err(GpuError::Unsupported { feature: "nvidia" })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ReportData;
    use std::time::SystemTime;

    fn dummy() -> GpuEvidence {
        GpuEvidence {
            report: vec![1, 2, 3],
            certs: Vec::new(),
        }
    }

    #[test]
    fn no_section_refuses_any_gpu_and_ignores_none() {
        let rd = ReportData([0; 64]);
        assert_eq!(
            verify_gpus(&[], &rd, None, SystemTime::now()),
            Ok(Vec::new())
        );
        assert_eq!(
            verify_gpus(&[dummy()], &rd, None, SystemTime::now()),
            Err(GpuError::NotInPolicy { count: 1 })
        );
    }

    #[test]
    fn count_rules_run_before_any_parsing() {
        let rd = ReportData([0; 64]);
        let required = GpuPolicy {
            required: true,
            ..GpuPolicy::default()
        };
        assert_eq!(
            verify_gpus(&[], &rd, Some(&required), SystemTime::now()),
            Err(GpuError::Missing)
        );
        let one = GpuPolicy {
            count: Some(1),
            ..GpuPolicy::default()
        };
        assert_eq!(
            verify_gpus(&[dummy(), dummy()], &rd, Some(&one), SystemTime::now()),
            Err(GpuError::WrongCount {
                expected: 1,
                found: 2
            })
        );
        let checks = verify_gpus(&[], &rd, Some(&GpuPolicy::default()), SystemTime::now()).unwrap();
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].name, "gpu-count");
    }

    #[cfg(not(feature = "nvidia"))]
    #[test]
    fn without_the_feature_gpu_evidence_is_refused_not_skipped() {
        let rd = ReportData([0; 64]);
        assert_eq!(
            verify_gpus(
                &[dummy()],
                &rd,
                Some(&GpuPolicy::default()),
                SystemTime::now()
            ),
            Err(GpuError::Unsupported { feature: "nvidia" })
        );
    }

    #[cfg(feature = "nvidia")]
    #[test]
    fn with_the_feature_garbage_is_malformed() {
        let rd = ReportData([0; 64]);
        assert!(matches!(
            verify_gpus(
                &[dummy()],
                &rd,
                Some(&GpuPolicy::default()),
                SystemTime::now()
            ),
            Err(GpuError::Malformed { gpu: 0, .. })
        ));
    }

    #[test]
    fn text_forms() {
        assert!(matches!(
            GpuEvidence::from_text("zz", ""),
            Err(GpuError::Malformed { .. })
        ));
        let ev = GpuEvidence::from_text(" 0x0102\n", "").unwrap();
        assert_eq!(ev.report, vec![1, 2]);
        assert!(ev.certs.is_empty());
    }
}
