//! The Azure TDX vTPM verifier. Order (docs/attestation.md, "Azure confidential VMs"): policy
//! TEE (tdx) and opt-in, HCL structure (TDX), the TD quote through the TDX verifier with
//! REPORTDATA = SHA-256(runtime data) ‖ 0³² (collateral as the policy says), the HCL's TD
//! report is the quoted one, then the vTPM half shared with SNP: user-data = report data, quote
//! signature by the attested AK, quote nonce, PCR digest, PCR policy.

use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::verify::vtpm_checks;
use super::{
    quote_nonce, AzureError, AzureTdxEvidence, AzureVtpmPolicy, HclReport, HclReportType,
    TDREPORT_MRTD, TDREPORT_REPORTDATA,
};
use crate::claims::CheckLog as Log;
use crate::tdx::{TdxEvidence, TdxQuote, TdxVerifier};
use crate::{Check, Claims, Evidence, Policy, ReportData, Verifier, VerifyError};

/// Verifies [`Evidence::AzureTdxVtpm`] with the binding of [`quote_nonce`]; the TD quote's
/// collateral comes from the policy (`tdx.collateral` / `tdx.pccs`) or [`Self::new`].
#[derive(Clone, Debug, Default)]
pub struct AzureTdxVtpmVerifier {
    tdx: TdxVerifier,
}

impl AzureTdxVtpmVerifier {
    /// A verifier whose TD-quote check uses `tdx` (e.g. [`TdxVerifier::with_collateral`]).
    pub fn new(tdx: TdxVerifier) -> Self {
        Self { tdx }
    }
}

impl Verifier for AzureTdxVtpmVerifier {
    fn verify(
        &self,
        evidence: &Evidence,
        expected: &ReportData,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        let Evidence::AzureTdxVtpm(ev) = evidence else {
            return Err(VerifyError::Malformed(format!(
                "{} evidence is not Azure TDX vTPM evidence",
                evidence.tee()
            )));
        };
        verify_tdx_with_nonce(ev, expected, &quote_nonce(expected), policy, now, &self.tdx)
    }
}

struct Prelude<'a> {
    hcl: HclReport<'a>,
    vtpm_policy: &'a AzureVtpmPolicy,
    bound: ReportData,
}

fn prelude<'a>(ev: &'a AzureTdxEvidence, policy: &'a Policy) -> Result<Prelude<'a>, VerifyError> {
    if policy.tee != crate::TeeKind::Tdx {
        return Err(VerifyError::TeeMismatch {
            evidence: "azure-tdx-vtpm".into(),
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
    if hcl.report_type != HclReportType::Tdx {
        return Err(AzureError::WrongReportType {
            found: "SEV-SNP",
            expected: "TDX",
        }
        .into());
    }
    let mut bound = [0u8; 64];
    bound[..32].copy_from_slice(&Sha256::digest(hcl.runtime_data));
    Ok(Prelude {
        hcl,
        vtpm_policy,
        bound: ReportData(bound),
    })
}

fn not_bound(e: VerifyError) -> VerifyError {
    match e {
        VerifyError::ReportDataMismatch { expected, found } => {
            AzureError::RuntimeDataNotBound { expected, found }.into()
        }
        other => other,
    }
}

fn rename_binding(checks: &mut [Check]) {
    for c in checks {
        if c.name == "report-data" {
            c.name = "runtime-data".into();
            c.detail = "TD quote REPORTDATA = SHA-256(HCL runtime data) ‖ 32 zero bytes".into();
        }
    }
}

/// The HCL's TD report must be the one quoted: same REPORTDATA and MRTD.
fn td_report_is_quoted(
    hcl: &HclReport<'_>,
    td_quote: &[u8],
    log: &mut Log,
) -> Result<(), VerifyError> {
    let quote = TdxQuote::parse(td_quote)?;
    let td = hcl.hw_report;
    if td.get(TDREPORT_REPORTDATA) != Some(&quote.report.report_data.0[..]) {
        return Err(AzureError::TdReportMismatch {
            field: "REPORTDATA",
        }
        .into());
    }
    if td.get(TDREPORT_MRTD) != Some(&quote.report.mrtd.0[..]) {
        return Err(AzureError::TdReportMismatch { field: "MRTD" }.into());
    }
    log.pass(
        "td-report",
        "the HCL's TD report has the quoted REPORTDATA and MRTD",
    );
    Ok(())
}

/// Verifies with an explicit quote nonce (trustee's evidence carries its own). Clients use
/// [`AzureTdxVtpmVerifier`].
pub fn verify_tdx_with_nonce(
    ev: &AzureTdxEvidence,
    user_data: &ReportData,
    nonce: &[u8],
    policy: &Policy,
    now: SystemTime,
    tdx: &TdxVerifier,
) -> Result<Claims, VerifyError> {
    let p = prelude(ev, policy)?;
    let quote = TdxEvidence {
        quote: ev.td_quote.clone(),
        event_log: None,
        gpus: Vec::new(),
    };
    let mut claims = tdx
        .verify_quote(&quote, &p.bound, policy, now)
        .map_err(not_bound)?;
    rename_binding(&mut claims.checks);
    let mut log = Log(std::mem::take(&mut claims.checks));
    td_report_is_quoted(&p.hcl, &ev.td_quote, &mut log)?;
    vtpm_checks(
        p.hcl.runtime_data,
        &ev.tpm_quote,
        user_data,
        nonce,
        p.vtpm_policy,
        &policy.name,
        &mut log,
    )?;
    claims.checks = log.0;
    Ok(claims)
}

/// Every check of [`verify_tdx_with_nonce`] except Intel's DCAP collateral (TCB info, QE
/// identity, CRLs) and the TCB status: for evidence whose collateral is not at hand, such as
/// trustee's Azure TDX fixture. It returns the checks made, never [`Claims`]: it is not a
/// verdict, and no client path calls it.
pub fn verify_tdx_without_dcap_collateral(
    ev: &AzureTdxEvidence,
    user_data: &ReportData,
    nonce: &[u8],
    policy: &Policy,
    now: SystemTime,
) -> Result<Vec<Check>, VerifyError> {
    let p = prelude(ev, policy)?;
    let quote = TdxEvidence {
        quote: ev.td_quote.clone(),
        event_log: None,
        gpus: Vec::new(),
    };
    let (_, mut checks) =
        crate::tdx::checks_without_collateral(&quote, &p.bound, policy, now).map_err(not_bound)?;
    rename_binding(&mut checks);
    let mut log = Log(checks);
    td_report_is_quoted(&p.hcl, &ev.td_quote, &mut log)?;
    vtpm_checks(
        p.hcl.runtime_data,
        &ev.tpm_quote,
        user_data,
        nonce,
        p.vtpm_policy,
        &policy.name,
        &mut log,
    )?;
    Ok(log.0)
}
