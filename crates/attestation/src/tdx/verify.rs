//! The TDX verifier: quote + expected REPORT_DATA + policy + time → claims, or the first failed
//! check. The order is fixed (docs/attestation.md, "TDX") so each failure is reported precisely.

use std::time::SystemTime;

use crate::claims::CheckLog as Log;
use crate::policy::{AllowedMeasurement, Policy};
use crate::tdx::chain::{check_root, decode_chain, unix_secs, verify_chain};
use crate::tdx::pccs::{pck_fmspc, PccsResolver, PckCa};
use crate::tdx::quote::{TdReportKind, TdxQuote, INTEL_QE_VENDOR_ID};
use crate::tdx::signature::{
    verify_attestation_key_binding, verify_qe_report, verify_quote_signature,
};
use crate::tdx::{dcap, TdxCollateral, TdxCollateralSource, TdxError, TdxEvidence, TdxPolicy};
use crate::{Claims, Evidence, ReportData, TeeKind, Verifier, VerifyError};

/// Verifies [`Evidence::Tdx`] against the pinned Intel SGX Root CA with dcap-qvl (or, only under
/// a policy that names its SHA-256 as a `simulated` root, against the development DCAP root of
/// `sim::tdx`, and then the claims say `simulated`), using the
/// collateral the policy names (the file `tdx.collateral`, or `tdx.pccs`: Intel PCS / a PCCS
/// with an on-disk cache, see [`crate::tdx::pccs`]) or the one given with
/// [`TdxVerifier::with_collateral`], which takes precedence.
#[derive(Clone, Debug, Default)]
pub struct TdxVerifier {
    collateral: Option<TdxCollateral>,
}

impl TdxVerifier {
    /// A verifier that uses `collateral` instead of the file the policy names (e.g. collateral
    /// the caller fetched itself). It is verified exactly like a file's.
    pub fn with_collateral(collateral: TdxCollateral) -> Self {
        Self {
            collateral: Some(collateral),
        }
    }
}

impl Verifier for TdxVerifier {
    fn verify(
        &self,
        evidence: &Evidence,
        expected: &ReportData,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        let mismatch = || VerifyError::TeeMismatch {
            evidence: evidence.tee().to_string(),
            expected: policy.tee.to_string(),
            policy: policy.name.clone(),
        };
        if evidence.tee() != policy.tee {
            return Err(mismatch());
        }
        match evidence {
            Evidence::Tdx(tdx) => self.verify_tdx(tdx, expected, policy, now),
            Evidence::AzureTdxVtpm(_) => Err(VerifyError::Malformed(
                "Azure TDX vTPM evidence: verify it with AzureTdxVtpmVerifier (or AnyVerifier)"
                    .into(),
            )),
            Evidence::SevSnp(_) | Evidence::AzureSevSnpVtpm(_) => Err(VerifyError::TeeMismatch {
                evidence: evidence.tee().to_string(),
                expected: TeeKind::Tdx.to_string(),
                policy: policy.name.clone(),
            }),
        }
    }
}

impl TdxVerifier {
    /// The whole TDX check of a bare quote (Azure TDX evidence carries one).
    #[cfg(feature = "azure")]
    pub(crate) fn verify_quote(
        &self,
        ev: &TdxEvidence,
        expected: &ReportData,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        self.verify_tdx(ev, expected, policy, now)
    }

    fn verify_tdx(
        &self,
        ev: &TdxEvidence,
        expected: &ReportData,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        // A policy built in code without a `tdx:` section gets the defaults: no collateral and
        // no MRTD, so it refuses everything.
        let default_rules = TdxPolicy::default();
        let rules = policy.tdx.as_ref().unwrap_or(&default_rules);
        let mut log = Log::default();
        log.pass(
            "tee",
            format!("tdx evidence, policy `{}` is for tdx", policy.name),
        );

        // 1. Structure.
        let quote = TdxQuote::parse(&ev.quote)?;
        if quote.header.qe_vendor_id != INTEL_QE_VENDOR_ID {
            return Err(TdxError::Unsupported(format!(
                "QE vendor {} is not Intel",
                hex::encode(quote.header.qe_vendor_id)
            ))
            .into());
        }
        let body = match quote.report.kind {
            TdReportKind::Td10 => "TDX 1.0 TD report (584 bytes)",
            TdReportKind::Td15 => "TDX 1.5 TD report (648 bytes)",
        };
        log.pass(
            "quote",
            format!(
                "DCAP quote v{}, {body}, {} bytes, ECDSA P-256 attestation key",
                quote.header.version,
                ev.quote.len()
            ),
        );

        // 2. Root: trusted by the policy and byte for byte the pinned Intel root.
        let chain = decode_chain(&quote.signature.pck_cert_data)?;
        let root = check_root(&chain, policy)?;
        log.pass(
            "root",
            format!("{} is trusted by policy `{}`", root.name, policy.name),
        );

        // 3. Collateral for this platform model (cheap checks before any signature): the
        // verifier's, else the policy's file or its PCCS / collateral cache.
        let leaf = chain.first().map(Vec::as_slice).unwrap_or_default();
        let mut fetched_for = None;
        let loaded;
        let collateral = match &self.collateral {
            Some(c) => c,
            None => match rules.collateral_source()? {
                Some(TdxCollateralSource::File(path)) => {
                    loaded = TdxCollateral::load(path)?;
                    &loaded
                }
                Some(TdxCollateralSource::Pccs(config)) => {
                    let fmspc = pck_fmspc(leaf)?;
                    let ca = PckCa::of_pck(leaf)?;
                    loaded = PccsResolver::from_config(config)
                        .and_then(|r| r.collateral(&fmspc, ca, now))
                        .map_err(TdxError::from)?
                        .0;
                    fetched_for = Some(fmspc);
                    &loaded
                }
                None => {
                    return Err(TdxError::NoCollateral {
                        policy: policy.name.clone(),
                    }
                    .into())
                }
            },
        };
        let quote_fmspc = match fetched_for {
            Some(fmspc) => fmspc,
            None => pck_fmspc(leaf)?,
        };
        if quote_fmspc != collateral.fmspc() {
            return Err(TdxError::FmspcMismatch {
                collateral: collateral.fmspc().to_string(),
                quote: quote_fmspc,
            }
            .into());
        }

        // 4. The complete DCAP verification (dcap-qvl): PCK chain and CRLs to the pinned root,
        // QE report and identity, attestation-key binding, quote signature, collateral validity
        // and TCB level. It names failures only in prose, so when it fails we re-run the
        // signature checks ourselves, in order, to report the precise one; its own (classified)
        // error stands only if all of ours pass. The success path pays for dcap-qvl alone.
        let verdict = match dcap::verify(
            &ev.quote,
            collateral,
            &quote_fmspc,
            unix_secs(now)?,
            root.der,
        ) {
            Ok(v) => v,
            Err(dcap_error) => {
                let pck = verify_chain(&chain, now)?;
                verify_qe_report(&quote, &pck.leaf_key)?;
                verify_attestation_key_binding(&quote)?;
                verify_quote_signature(&quote, &ev.quote)?;
                return Err(dcap_error.into());
            }
        };
        // dcap-qvl checked all of the following; they are listed as ours would name them.
        // Named without re-parsing the certificates: OpenSSL's decoders would double the cost.
        // The Intel wording is kept as it was; a simulated root is named as such.
        let anchor = if root.simulated {
            "the policy-named SIMULATED DCAP root CA"
        } else {
            "the pinned Intel SGX Root CA"
        };
        log.pass(
            "chain",
            format!("{} certificates from the PCK up to {anchor}", chain.len()),
        );
        log.pass(
            "validity",
            "PCK chain and CRLs valid at the verification time",
        );
        log.pass(
            "qe-report",
            "QE report signed by the PCK (ECDSA P-256/SHA-256)",
        );
        log.pass(
            "attestation-key",
            "QE REPORT_DATA = SHA-256(attestation key ‖ QE auth data)",
        );
        log.pass(
            "signature",
            format!(
                "ECDSA P-256/SHA-256 over header ‖ TD report ({} bytes) verifies with the \
                 attestation key",
                quote.signed_len
            ),
        );
        log.pass(
            "collateral",
            format!(
                "{} collateral for FMSPC {quote_fmspc}",
                if root.simulated { "SIMULATED" } else { "Intel" }
            ),
        );
        log.pass(
            "dcap",
            if root.simulated {
                "dcap-qvl: collateral signed by the SIMULATED root and valid now, CRLs, PCK \
                 chain, QE identity, quote signature, TCB level, TD attributes"
            } else {
                "dcap-qvl: collateral signed by the Intel root and valid now, CRLs, PCK chain, QE \
                 identity, quote signature, TCB level, TD attributes"
            },
        );

        // 6. TCB status.
        let advisories = if verdict.advisories.is_empty() {
            "none".to_string()
        } else {
            verdict.advisories.join(", ")
        };
        if !rules.allowed_tcb_status.contains(&verdict.status) {
            return Err(TdxError::TcbStatusNotAllowed {
                status: verdict.status,
                advisories,
                allowed: rules.allowed_tcb_status.join(", "),
                policy: policy.name.clone(),
            }
            .into());
        }
        log.pass(
            "tcb",
            format!(
                "TCB status {} (advisories: {advisories}) is allowed by the policy",
                verdict.status
            ),
        );

        check_policy(
            &quote,
            ev.event_log.as_ref(),
            expected,
            policy,
            rules,
            &mut log,
        )?;

        Ok(Claims {
            image_identity: crate::ImageIdentity::Hardware,
            tee: TeeKind::Tdx,
            measurement: quote.report.mrtd,
            root: root.name,
            simulated: root.simulated,
            policy: policy.name.clone(),
            checks: log.0,
        })
    }
}

/// Every check of [`TdxVerifier`] except the DCAP collateral and TCB-status steps: structure,
/// root, PCK chain (our own OpenSSL checks, without CRLs), QE report, attestation-key binding,
/// quote signature, then REPORT_DATA, MRTD, RTMRs, debug and XFAM. For evidence whose Intel
/// collateral is not at hand; it returns checks, never [`Claims`], so it cannot pass as a verdict.
#[cfg(feature = "azure")]
pub(crate) fn checks_without_collateral(
    ev: &TdxEvidence,
    expected: &ReportData,
    policy: &Policy,
    now: SystemTime,
) -> Result<(crate::Measurement, Vec<crate::Check>), VerifyError> {
    let default_rules = TdxPolicy::default();
    let rules = policy.tdx.as_ref().unwrap_or(&default_rules);
    let mut log = Log::default();
    let quote = TdxQuote::parse(&ev.quote)?;
    if quote.header.qe_vendor_id != INTEL_QE_VENDOR_ID {
        return Err(TdxError::Unsupported(format!(
            "QE vendor {} is not Intel",
            hex::encode(quote.header.qe_vendor_id)
        ))
        .into());
    }
    log.pass("quote", format!("DCAP quote v{}", quote.header.version));
    let chain = decode_chain(&quote.signature.pck_cert_data)?;
    let root = check_root(&chain, policy)?;
    log.pass(
        "root",
        format!("{} is trusted by policy `{}`", root.name, policy.name),
    );
    let pck = verify_chain(&chain, now)?;
    log.pass(
        "chain",
        format!(
            "{} certificates from the PCK up to the pinned Intel SGX Root CA (no CRLs)",
            chain.len()
        ),
    );
    verify_qe_report(&quote, &pck.leaf_key)?;
    log.pass(
        "qe-report",
        "QE report signed by the PCK (ECDSA P-256/SHA-256)",
    );
    verify_attestation_key_binding(&quote)?;
    log.pass(
        "attestation-key",
        "QE REPORT_DATA = SHA-256(attestation key ‖ QE auth data)",
    );
    verify_quote_signature(&quote, &ev.quote)?;
    log.pass(
        "signature",
        "quote signature verifies with the attestation key",
    );
    check_policy(
        &quote,
        ev.event_log.as_ref(),
        expected,
        policy,
        rules,
        &mut log,
    )?;
    Ok((quote.report.mrtd, log.0))
}

/// REPORT_DATA, MRTD, RTMRs, the event log, debug and XFAM, in that order.
fn check_policy(
    quote: &TdxQuote,
    event_log: Option<&crate::tdx::CcelEvidence>,
    expected: &ReportData,
    policy: &Policy,
    rules: &TdxPolicy,
    log: &mut Log,
) -> Result<(), VerifyError> {
    let report = &quote.report;
    let name = || policy.name.clone();
    if report.report_data != *expected {
        return Err(VerifyError::ReportDataMismatch {
            expected: expected.to_string(),
            found: report.report_data.to_string(),
        });
    }
    log.pass("report-data", "REPORTDATA equals the expected binding");

    let Some(mrtd) = AllowedMeasurement::find(&rules.mrtd, &report.mrtd) else {
        return Err(VerifyError::MeasurementNotAllowed {
            measurement: report.mrtd.to_string(),
            policy: name(),
        });
    };
    log.pass(
        "measurement",
        format!("MRTD {} ({})", report.mrtd, mrtd.source),
    );

    for (index, (list, value)) in rules.rtmr().into_iter().zip(&report.rtmr).enumerate() {
        let Some(list) = list else { continue };
        let Some(found) = AllowedMeasurement::find(list, value) else {
            return Err(TdxError::RtmrNotAllowed {
                index,
                value: value.to_string(),
                policy: name(),
            }
            .into());
        };
        log.pass(
            &format!("rtmr{index}"),
            format!("{value} ({})", found.source),
        );
    }

    if let Some(expected_events) = &rules.event_log {
        let Some(evidence) = event_log else {
            return Err(TdxError::EventLogMissing { policy: name() }.into());
        };
        let events = check_event_log(evidence, expected_events, &report.rtmr)?;
        log.pass(
            "event-log",
            format!(
                "CC event log of {events} events replays to RTMR0-3 and holds the {} expected \
                 boot events ({})",
                expected_events.events.len(),
                expected_events
                    .events
                    .iter()
                    .map(|m| m.name.clone().unwrap_or_else(|| m.event_type.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }

    let attrs = report.td_attributes;
    if attrs.under_debug() && !rules.allow_debug {
        return Err(VerifyError::DebugAllowed { policy: name() });
    }
    log.pass(
        "debug",
        if attrs.under_debug() {
            format!(
                "TD_ATTRIBUTES {:#018x}: TD UNDER DEBUG; accepted because allow_debug is set",
                attrs.bits()
            )
        } else {
            format!("TD_ATTRIBUTES {:#018x}: not in debug mode", attrs.bits())
        },
    );

    if let Some(list) = &rules.xfam {
        let value = hex::encode(report.xfam);
        if !list.iter().any(|x| x.trim().eq_ignore_ascii_case(&value)) {
            return Err(TdxError::XfamNotAllowed {
                value,
                policy: name(),
            }
            .into());
        }
        log.pass("xfam", format!("XFAM {value} is allowed"));
    }
    Ok(())
}

/// Parses the CCEL table and log, and checks the log replays to the quote's RTMRs and holds every
/// expected event. Returns the number of events.
fn check_event_log(
    evidence: &crate::tdx::CcelEvidence,
    expected: &crate::tdx::ccel::ExpectedEvents,
    rtmrs: &[crate::Measurement; 4],
) -> Result<usize, TdxError> {
    use crate::tdx::ccel::{CcelTable, EventLog};
    let table = CcelTable::parse(&evidence.table)?;
    table.check_log_len(&evidence.log)?;
    let log = EventLog::parse(&evidence.log)?;
    expected.check(&log, rtmrs)?;
    Ok(log.events.len())
}
