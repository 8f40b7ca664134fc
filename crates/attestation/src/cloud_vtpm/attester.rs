//! The guest side of `image_binding: cloud-vtpm` on GCP: [`GceVtpmAttester`] takes the SNP
//! report from the inner attester (configfs-tsm), then from the Shielded VM vTPM the
//! attestation key GCE provisions (its template in NV 0x01c10001, its certificate in NV
//! 0x01c10000: go-tpm-tools' `GceAKTemplateNVIndexRSA` / `GceAKCertNVIndexRSA`), checks the
//! certificate names that key, and adds a TPM2_Quote over the boot PCRs with extraData =
//! SHA-256(report data) as the evidence's `cloud_vtpm` part (docs/attestation.md, "Cloud vTPM").
//!
//! AWS is not here: NitroTPM vouches for its PCRs with an attestation document signed by the
//! Nitro hypervisor, not with a certified AK, so it needs its own evidence form.

use std::sync::Mutex;

use openssl::bn::BigNum;
use openssl::x509::X509;

use super::{AkCert, Cloud, CloudVtpmEvidence};
use crate::azure::tpm_client::{Tpm, TpmError, TpmTransport, TPM_RH_ENDORSEMENT};
use crate::azure::{quote_nonce, strip_zeros, VtpmAttestError, DEFAULT_PCRS};
use crate::{AttestError, Attester, Evidence, ReportData, TeeKind};

/// NV index of GCE's RSA attestation key certificate (DER).
pub const NV_GCE_AK_CERT_RSA: u32 = 0x01c1_0000;
/// NV index of the `TPMT_PUBLIC` template GCE's RSA attestation key is created from.
pub const NV_GCE_AK_TEMPLATE_RSA: u32 = 0x01c1_0001;

/// Why the GCE vTPM part could not be collected. Messages name the NV index or the step.
#[derive(Debug, thiserror::Error)]
pub enum GceVtpmAttestError {
    /// A TPM command failed (a missing NV index: not a GCE Shielded VM vTPM).
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// NV 0x01c10000 does not hold an RSA certificate.
    #[error("gce vtpm: NV 0x01c10000 does not hold an RSA certificate: {0}")]
    AkCertificate(String),
    /// The key created from the template is not the certified one.
    #[error("gce vtpm: the key created from the template in NV 0x01c10001 is not the key certified in NV 0x01c10000")]
    AkMismatch,
    /// The quote failed or kept changing.
    #[error("gce vtpm: quote")]
    Quote(#[source] VtpmAttestError),
}

impl From<GceVtpmAttestError> for AttestError {
    fn from(e: GceVtpmAttestError) -> Self {
        AttestError::GceVtpm(Box::new(e))
    }
}

/// An SNP attester whose evidence also carries a GCE vTPM quote and AK certificate.
pub struct GceVtpmAttester {
    inner: Box<dyn Attester>,
    tpm: Mutex<Tpm<Box<dyn TpmTransport>>>,
}

impl std::fmt::Debug for GceVtpmAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GceVtpmAttester")
            .field("inner", &self.inner.interface())
            .finish_non_exhaustive()
    }
}

impl GceVtpmAttester {
    /// Wraps `inner` (an SEV-SNP attester) with the vTPM at `transport` (`/dev/tpmrm0` in a guest).
    pub fn new(inner: Box<dyn Attester>, transport: impl TpmTransport + 'static) -> Self {
        Self {
            inner,
            tpm: Mutex::new(Tpm::new(Box::new(transport))),
        }
    }

    /// The `cloud_vtpm` part for `report_data`.
    pub fn vtpm_part(
        &self,
        report_data: &ReportData,
    ) -> Result<CloudVtpmEvidence, GceVtpmAttestError> {
        let mut tpm = self
            .tpm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let template = tpm.nv_read(NV_GCE_AK_TEMPLATE_RSA)?;
        let cert = tpm.nv_read(NV_GCE_AK_CERT_RSA)?;
        let certified = X509::from_der(&cert)
            .and_then(|c| c.public_key())
            .and_then(|k| k.rsa())
            .map_err(|e| GceVtpmAttestError::AkCertificate(e.to_string()))?;
        let ak = tpm.create_primary("CreatePrimary GCE AK", TPM_RH_ENDORSEMENT, &template)?;
        // Flushed whatever happens next: a transient object left behind would fill the TPM.
        let part = (|| {
            let public = tpm.read_public(ak)?;
            let same_e = BigNum::from_u32(public.public_exponent())
                .map(|e| e.to_vec() == certified.e().to_vec())
                .unwrap_or(false);
            if !same_e || strip_zeros(&certified.n().to_vec()) != strip_zeros(&public.modulus) {
                return Err(GceVtpmAttestError::AkMismatch);
            }
            let quote =
                crate::azure::quote_pcrs(&mut tpm, ak, &quote_nonce(report_data), &DEFAULT_PCRS)
                    .map_err(GceVtpmAttestError::Quote)?;
            Ok(CloudVtpmEvidence {
                cloud: Cloud::Gcp,
                quote,
                ak_chain: vec![AkCert(cert.clone())],
            })
        })();
        let flushed = tpm.flush_context(ak);
        let part = part?;
        flushed?;
        Ok(part)
    }
}

impl Attester for GceVtpmAttester {
    fn tee(&self) -> TeeKind {
        self.inner.tee()
    }

    fn interface(&self) -> &'static str {
        "configfs-tsm+gce-vtpm"
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, AttestError> {
        let mut evidence = self.inner.evidence(report_data)?;
        let Evidence::SevSnp(snp) = &mut evidence else {
            return Err(AttestError::BadResponse(
                "the GCE vTPM part is defined for SEV-SNP evidence only".into(),
            ));
        };
        snp.cloud_vtpm = Some(self.vtpm_part(report_data)?);
        Ok(evidence)
    }
}
