//! Typed evidence as it travels from guest to client.

use serde::{Deserialize, Serialize};

use crate::TeeKind;

/// Evidence from one TEE family. Serialized with a `tee` tag and base64 byte fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tee", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Evidence {
    /// An AMD SEV-SNP attestation report with the certificate chain that signs it.
    SevSnp(SnpEvidence),
    /// An Intel TDX quote (DCAP).
    Tdx(crate::tdx::TdxEvidence),
    /// An Azure SEV-SNP confidential VM's HCL report and vTPM quote (no `/dev/sev-guest`).
    AzureSevSnpVtpm(crate::azure::AzureSnpEvidence),
    /// An Azure TDX confidential VM's HCL report (TD report inside), TD quote and vTPM quote.
    AzureTdxVtpm(crate::azure::AzureTdxEvidence),
}

impl Evidence {
    /// The TEE family of this evidence.
    pub fn tee(&self) -> TeeKind {
        match self {
            Evidence::SevSnp(_) => TeeKind::SevSnp,
            Evidence::Tdx(_) => TeeKind::Tdx,
            // The hardware is SEV-SNP: SNP policies (roots, measurements, TCB) apply to it.
            Evidence::AzureSevSnpVtpm(_) => TeeKind::SevSnp,
            // The hardware is TDX: TDX policies (MRTD, RTMRs, collateral) apply to it.
            Evidence::AzureTdxVtpm(_) => TeeKind::Tdx,
        }
    }

    /// The launch measurement the evidence claims (unverified: for display and image identity).
    /// SNP: `MEASUREMENT`; TDX: `MRTD`. None if the evidence does not parse.
    pub fn claimed_measurement(&self) -> Option<crate::Measurement> {
        match self {
            #[cfg(feature = "snp")]
            Evidence::SevSnp(e) => crate::snp::AttestationReport::parse(&e.report)
                .ok()
                .map(|r| r.measurement),
            #[cfg(not(feature = "snp"))]
            Evidence::SevSnp(_) => None,
            Evidence::Tdx(e) => crate::tdx::claimed_mrtd(&e.quote),
            #[cfg(feature = "snp")]
            Evidence::AzureSevSnpVtpm(e) => crate::azure::HclReport::parse(&e.hcl_report)
                .ok()
                .and_then(|h| crate::snp::AttestationReport::parse(h.hw_report).ok())
                .map(|r| r.measurement),
            #[cfg(not(feature = "snp"))]
            Evidence::AzureSevSnpVtpm(_) => None,
            Evidence::AzureTdxVtpm(e) => crate::tdx::claimed_mrtd(&e.td_quote),
        }
    }

    /// GPU evidence attached to the CPU evidence (confidential-computing GPUs of the same guest).
    pub fn gpus(&self) -> &[crate::nvidia::GpuEvidence] {
        match self {
            Evidence::SevSnp(e) => &e.gpus,
            Evidence::Tdx(e) => &e.gpus,
            Evidence::AzureSevSnpVtpm(e) => &e.gpus,
            Evidence::AzureTdxVtpm(e) => &e.gpus,
        }
    }

    /// The GPU evidence list, for the guest to attach what it collected through NVML.
    pub fn gpus_mut(&mut self) -> &mut Vec<crate::nvidia::GpuEvidence> {
        match self {
            Evidence::SevSnp(e) => &mut e.gpus,
            Evidence::Tdx(e) => &mut e.gpus,
            Evidence::AzureSevSnpVtpm(e) => &mut e.gpus,
            Evidence::AzureTdxVtpm(e) => &mut e.gpus,
        }
    }
}

/// SEV-SNP evidence: the raw 1184-byte `ATTESTATION_REPORT` and its chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpEvidence {
    /// The raw report (AMD SEV-SNP ABI spec, Table 22), base64 on the wire.
    #[serde(with = "b64")]
    pub report: Vec<u8>,
    /// The certificates, leaf to root, when the host supplied them. Absent when the guest got
    /// none (configfs-tsm's `auxblob` is empty on upstream KVM hosts): the verifier then needs
    /// the VCEK resolved from the report (AMD KDS or a cache), see [`SnpEvidence::with_chain`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<SnpCertChain>,
    /// Evidence of the guest's confidential GPUs, each bound to the same report data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<crate::nvidia::GpuEvidence>,
    /// On clouds whose vTPM pins the image (AWS NitroTPM, GCP vTPM): the vTPM's quote and its
    /// attestation key's chain. Required by a policy with `image_binding: cloud-vtpm`, refused by
    /// any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_vtpm: Option<crate::cloud_vtpm::CloudVtpmEvidence>,
}

impl SnpEvidence {
    /// This evidence with `chain` filled in (a client resolved the VCEK for a chain-less report).
    pub fn with_chain(mut self, chain: SnpCertChain) -> Self {
        self.chain = Some(chain);
        self
    }
}

/// The ARK → ASK → VCEK chain, DER-encoded, base64 on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpCertChain {
    /// The chip's versioned endorsement key certificate (signs the report).
    #[serde(with = "b64")]
    pub vcek: Vec<u8>,
    /// The AMD SEV key certificate (signs the VCEK).
    #[serde(with = "b64")]
    pub ask: Vec<u8>,
    /// The AMD root key certificate (self-signed; must match a root the policy trusts).
    #[serde(with = "b64")]
    pub ark: Vec<u8>,
}

pub(crate) mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}
