//! Cloud SEV-SNP VMs whose image is pinned by the cloud's vTPM (AWS NitroTPM, GCP's vTPM), not by
//! the CPU. On these clouds the SNP report's MEASUREMENT covers the cloud's firmware only (AWS's
//! OVMF, Google's UEFI); our UKI is measured into PCRs 4, 11 and 12 of a vTPM that the cloud's
//! hypervisor runs outside the guest's TEE, and whose attestation key the hardware does not
//! attest. A policy accepts that only when it says so (`image_binding: cloud-vtpm`), and the
//! client prints it: the cloud is trusted for image identity.
//!
//! The evidence adds, to the SNP report, a TPM2 quote over the policy's PCRs made with
//! extraData = SHA-256(report data) (the same binding as the report: [`crate::azure::quote_nonce`])
//! and the attestation key's certificate chain, which must end in a root the policy pins
//! (`cloud_vtpm.vtpm_roots`). The TPM structures are parsed by the Azure vTPM code's parser.
//! Types always compile; the verifier needs the `snp` feature.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[cfg(feature = "azure-attester")]
mod attester;
mod error;
#[cfg(all(feature = "azure-attester", feature = "sim"))]
pub mod gce_sim;
#[cfg(feature = "snp")]
mod verify;

#[cfg(feature = "azure-attester")]
pub use attester::{
    GceVtpmAttestError, GceVtpmAttester, NV_GCE_AK_CERT_RSA, NV_GCE_AK_TEMPLATE_RSA,
};
pub use error::CloudVtpmError;
#[cfg(feature = "snp")]
pub(crate) use verify::{check, firmware_unpinned};

/// How a policy binds the guest image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageBinding {
    /// The TEE's signed launch measurement (SNP MEASUREMENT, TDX MRTD/RTMRs with the event log)
    /// or a vTPM whose key the hardware report attests (Azure's paravisor) pins the image.
    #[default]
    Hardware,
    /// The SNP report pins the cloud's firmware only; the image is pinned by PCRs of a quote by
    /// the cloud's vTPM, whose key only the cloud's certificate vouches for. Requires a
    /// `cloud_vtpm:` section.
    CloudVtpm,
}

/// The cloud whose vTPM vouches for the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// Amazon EC2 SEV-SNP instances with NitroTPM.
    Aws,
    /// Google Compute Engine N2D SEV-SNP instances with Google's vTPM.
    Gcp,
}

impl Cloud {
    /// The vTPM's name as users know it, e.g. `AWS NitroTPM`.
    pub fn vtpm_name(self) -> &'static str {
        match self {
            Cloud::Aws => "AWS NitroTPM",
            Cloud::Gcp => "GCP vTPM",
        }
    }

    /// The cloud's operator, e.g. `AWS`.
    pub fn operator(self) -> &'static str {
        match self {
            Cloud::Aws => "AWS",
            Cloud::Gcp => "Google",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
        })
    }
}

/// One DER certificate of the attestation key's chain, base64 on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AkCert(#[serde(with = "crate::evidence::b64")] pub Vec<u8>);

/// The cloud vTPM part of SNP evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudVtpmEvidence {
    /// The cloud whose vTPM made the quote.
    pub cloud: Cloud,
    /// TPM2_Quote over the policy's PCRs with extraData = SHA-256(report data): the signed
    /// `TPMS_ATTEST`, its raw RSASSA-PKCS1-v1_5/SHA-256 signature and the SHA-256 PCR values.
    pub quote: crate::azure::TpmQuote,
    /// The attestation key's certificate, then any intermediates (leaf first, DER). The last
    /// must be issued by a root in the policy's `cloud_vtpm.vtpm_roots`.
    pub ak_chain: Vec<AkCert>,
}

/// What a policy with `image_binding: cloud-vtpm` requires of the cloud vTPM part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudVtpmPolicy {
    /// The cloud whose vTPM is trusted for image identity.
    pub cloud: Cloud,
    /// PCR index → allowed SHA-256 values (64 hex digits). PCRs 4 and 12 must be listed; each
    /// listed PCR must be quoted and hold one of its values.
    pub pcrs: BTreeMap<u32, Vec<String>>,
    /// PEM certificates the attestation key's chain may end in (the cloud's vTPM AK CA). Empty:
    /// every quote is refused (fail closed).
    #[serde(default)]
    pub vtpm_roots: Vec<String>,
    /// Accept any SNP MEASUREMENT (the cloud's firmware) when `measurements` is empty: the cloud
    /// is then trusted for the firmware as well, and the client says so. Default false: an empty
    /// `measurements` list refuses every report, as in every policy.
    #[serde(default)]
    pub trust_cloud_firmware: bool,
}

impl CloudVtpmPolicy {
    /// Checks PCR indices and values, the required PCRs 4 and 12, and that every root is PEM.
    pub(crate) fn validate(&self) -> Result<(), String> {
        crate::azure::validate_pcrs("cloud_vtpm.pcrs", &self.pcrs)?;
        for required in [4, 12] {
            if !self.pcrs.contains_key(&required) {
                return Err(format!(
                    "cloud_vtpm.pcrs must pin PCR {required} (the image's boot)"
                ));
            }
        }
        for (i, pem) in self.vtpm_roots.iter().enumerate() {
            let ders = crate::pem::certificates(pem.as_bytes())
                .map_err(|e| format!("cloud_vtpm.vtpm_roots[{i}]: {e}"))?;
            if ders.len() != 1 {
                return Err(format!(
                    "cloud_vtpm.vtpm_roots[{i}]: {} certificates, expected one",
                    ders.len()
                ));
            }
            for der in ders {
                openssl::x509::X509::from_der(&der)
                    .map_err(|e| format!("cloud_vtpm.vtpm_roots[{i}]: not X.509 ({e})"))?;
            }
        }
        Ok(())
    }
}

/// Who vouched for the image identity of verified evidence (shown by the client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "binding", rename_all = "kebab-case")]
pub enum ImageIdentity {
    /// The TEE measured the image (or a vTPM attested by the hardware report did).
    Hardware,
    /// The cloud's vTPM vouched for the image; the CPU did not.
    CloudVtpm {
        /// Which cloud.
        cloud: Cloud,
        /// False when the policy accepted any firmware measurement (`trust_cloud_firmware`).
        firmware_pinned: bool,
    },
}

impl ImageIdentity {
    /// The lines a client prints, e.g. `image identity: hardware-measured`.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ImageIdentity::Hardware => vec!["image identity: hardware-measured".to_string()],
            ImageIdentity::CloudVtpm {
                cloud,
                firmware_pinned,
            } => {
                let mut out = vec![format!(
                    "image identity: vouched for by the cloud's vTPM ({}), not by the CPU",
                    cloud.vtpm_name()
                )];
                if !firmware_pinned {
                    out.push(format!(
                        "firmware: not pinned, any measurement accepted: {} is trusted for the firmware too",
                        cloud.operator()
                    ));
                }
                out
            }
        }
    }
}
