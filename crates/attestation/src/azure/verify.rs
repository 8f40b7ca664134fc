//! The Azure SEV-SNP vTPM verifier. Order (docs/attestation.md, "Azure confidential VMs"):
//! policy TEE (sev-snp) and opt-in, HCL structure, the SNP report through the SNP verifier with
//! REPORT_DATA = SHA-256(runtime data) ‖ 0³², user-data = report data, quote signature by the
//! attested AK, quote nonce, PCR digest, PCR policy.

use std::time::SystemTime;

use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use sha2::{Digest, Sha256};

use super::{
    check_pcr_digest, first_disallowed_pcr, quote_nonce, AzureError, AzureSnpEvidence, HclReport,
    HclReportType, QuoteAttest, RuntimeClaims,
};
use crate::claims::CheckLog as Log;
use crate::{Claims, Evidence, Policy, ReportData, SnpEvidence, Verifier, VerifyError};

/// Verifies [`Evidence::AzureSevSnpVtpm`] with the binding of [`super::quote_nonce`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AzureVtpmVerifier;

impl Verifier for AzureVtpmVerifier {
    fn verify(
        &self,
        evidence: &Evidence,
        expected: &ReportData,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        let Evidence::AzureSevSnpVtpm(ev) = evidence else {
            return Err(VerifyError::Malformed(format!(
                "{} evidence is not Azure vTPM evidence",
                evidence.tee()
            )));
        };
        verify_with_nonce(ev, expected, &quote_nonce(expected), policy, now)
    }
}

/// Verifies with an explicit quote nonce: for evidence bound another way than ours (trustee's
/// test evidence carries its own nonce). Clients use [`AzureVtpmVerifier`].
pub fn verify_with_nonce(
    ev: &AzureSnpEvidence,
    user_data: &ReportData,
    nonce: &[u8],
    policy: &Policy,
    now: SystemTime,
) -> Result<Claims, VerifyError> {
    if policy.tee != crate::TeeKind::SevSnp {
        return Err(VerifyError::TeeMismatch {
            evidence: "azure-sev-snp-vtpm".into(),
            expected: policy.tee.to_string(),
            policy: policy.name.clone(),
        });
    }
    let Some(vtpm_policy) = &policy.azure_vtpm else {
        return Err(AzureError::NotAccepted {
            policy: policy.name.clone(),
        }
        .into());
    };
    let hcl = HclReport::parse(&ev.hcl_report)?;
    if hcl.report_type != HclReportType::Snp {
        return Err(AzureError::WrongReportType {
            found: "TDX",
            expected: "SEV-SNP",
        }
        .into());
    }

    // The hardware half: every SNP check, with the REPORT_DATA Azure's paravisor sets.
    let mut bound = [0u8; 64];
    bound[..32].copy_from_slice(&Sha256::digest(hcl.runtime_data));
    let snp = SnpEvidence {
        report: hcl.hw_report.to_vec(),
        chain: Some(ev.chain.clone()),
        gpus: Vec::new(),
        cloud_vtpm: None,
    };
    let mut claims =
        crate::snp::verify_report(&snp, &ReportData(bound), policy, now).map_err(|e| match e {
            VerifyError::ReportDataMismatch { expected, found } => {
                AzureError::RuntimeDataNotBound { expected, found }.into()
            }
            other => other,
        })?;
    let mut log = Log(std::mem::take(&mut claims.checks));
    for c in &mut log.0 {
        if c.name == "report-data" {
            c.name = "runtime-data".into();
            c.detail = "REPORT_DATA = SHA-256(HCL runtime data) ‖ 32 zero bytes".into();
        }
    }

    vtpm_checks(
        hcl.runtime_data,
        &ev.tpm_quote,
        user_data,
        nonce,
        vtpm_policy,
        &policy.name,
        &mut log,
    )?;
    claims.checks = log.0;
    Ok(claims)
}

/// The vTPM half, shared by SNP and TDX: `user-data` = the binding, quote signed by HCLAkPub,
/// extraData = nonce, PCR digest, PCR policy.
pub(super) fn vtpm_checks(
    runtime_data: &[u8],
    tpm_quote: &super::TpmQuote,
    user_data: &ReportData,
    nonce: &[u8],
    vtpm_policy: &super::AzureVtpmPolicy,
    policy_name: &str,
    log: &mut Log,
) -> Result<(), VerifyError> {
    let runtime = RuntimeClaims::parse(runtime_data)?;
    if runtime.user_data != *user_data {
        return Err(VerifyError::ReportDataMismatch {
            expected: user_data.to_string(),
            found: runtime.user_data.to_string(),
        });
    }
    log.pass(
        "report-data",
        "runtime data user-data equals the expected binding",
    );

    let key = RsaPublicKeyComponents {
        n: runtime.ak.n.as_slice(),
        e: runtime.ak.e.as_slice(),
    };
    key.verify(
        &RSA_PKCS1_2048_8192_SHA256,
        &tpm_quote.message,
        &tpm_quote.signature,
    )
    .map_err(|_| AzureError::QuoteSignatureInvalid)?;
    let quote = QuoteAttest::parse(&tpm_quote.message)?;
    log.pass(
        "tpm-quote",
        format!(
            "TPMS_ATTEST quote signed (RSASSA/SHA-256) by HCLAkPub ({} bits) from the runtime data",
            runtime.ak.n.len() * 8
        ),
    );

    if quote.extra_data != nonce {
        return Err(AzureError::NonceMismatch {
            expected: hex::encode(nonce),
            found: hex::encode(&quote.extra_data),
        }
        .into());
    }
    log.pass("tpm-nonce", "quote extraData equals the expected nonce");

    let pcrs = check_pcr_digest(&quote, &tpm_quote.pcrs)?;
    log.pass(
        "pcr-digest",
        format!("SHA-256 of PCRs {pcrs:?} equals the quoted pcrDigest"),
    );

    if let Some((index, value)) = first_disallowed_pcr(&vtpm_policy.pcrs, &pcrs, &tpm_quote.pcrs) {
        return Err(AzureError::PcrNotAllowed {
            index,
            value,
            policy: policy_name.to_string(),
        }
        .into());
    }
    log.pass(
        "pcr-policy",
        format!(
            "PCRs {:?} hold allowed values",
            vtpm_policy.pcrs.keys().collect::<Vec<_>>()
        ),
    );
    Ok(())
}
