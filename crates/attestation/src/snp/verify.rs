//! The SEV-SNP verifier: evidence + expected REPORT_DATA + policy + time → claims, or the first
//! failed check. The order is fixed (docs/attestation.md) so each failure is reported precisely.

use std::time::SystemTime;

use crate::claims::CheckLog as Log;
use crate::policy::{AllowedMeasurement, MinTcb, Policy};
use crate::snp::binding::check_binding;
use crate::snp::chain::{select_root, verify_links, ChainCache, Root, VerifiedChain};
use crate::snp::fields::SigningKey;
use crate::snp::signature::verify_report_signature;
use crate::snp::AttestationReport;
use crate::{Claims, Evidence, ReportData, SnpEvidence, Verifier, VerifyError};

/// Verifies [`Evidence::SevSnp`] against pinned AMD roots (or a policy-named simulated root).
#[derive(Clone, Copy, Debug, Default)]
pub struct SnpVerifier;

impl Verifier for SnpVerifier {
    fn verify(
        &self,
        evidence: &Evidence,
        expected: &ReportData,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        if evidence.tee() != policy.tee {
            return Err(VerifyError::TeeMismatch {
                evidence: evidence.tee().to_string(),
                expected: policy.tee.to_string(),
                policy: policy.name.clone(),
            });
        }
        match evidence {
            Evidence::SevSnp(snp) => verify_snp(snp, expected, policy, now, &|c, role| {
                verify_links(c, role).map(std::sync::Arc::new)
            }),
            Evidence::AzureSevSnpVtpm(_) => Err(VerifyError::Malformed(
                "Azure vTPM evidence: verify it with AzureVtpmVerifier (or AnyVerifier)".into(),
            )),
            Evidence::Tdx(_) | Evidence::AzureTdxVtpm(_) => Err(VerifyError::TeeMismatch {
                evidence: evidence.tee().to_string(),
                expected: "sev-snp".into(),
                policy: policy.name.clone(),
            }),
        }
    }
}

/// An [`SnpVerifier`] that remembers chains whose signatures it already checked (keyed by the
/// exact certificate bytes), so a repeat verification against the same VCEK skips the three
/// certificate signature checks. Validity periods, the report signature and every policy check
/// still run each time.
#[derive(Debug, Default)]
pub struct CachingSnpVerifier {
    cache: ChainCache,
}

impl Verifier for CachingSnpVerifier {
    fn verify(
        &self,
        evidence: &Evidence,
        expected: &ReportData,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        if evidence.tee() != policy.tee {
            return SnpVerifier.verify(evidence, expected, policy, now);
        }
        match evidence {
            Evidence::SevSnp(snp) => verify_snp(snp, expected, policy, now, &|c, role| {
                self.cache.get_or_verify(c, role)
            }),
            other => SnpVerifier.verify(other, expected, policy, now),
        }
    }
}

/// The SNP checks on a bare report + chain (used inside Azure vTPM evidence).
#[cfg(feature = "azure")]
pub(crate) fn verify_report(
    ev: &SnpEvidence,
    expected: &ReportData,
    policy: &Policy,
    now: SystemTime,
) -> Result<Claims, VerifyError> {
    verify_snp(ev, expected, policy, now, &|c, role| {
        verify_links(c, role).map(std::sync::Arc::new)
    })
}

type LinkCheck<'a> =
    &'a dyn Fn(&crate::SnpCertChain, &str) -> Result<std::sync::Arc<VerifiedChain>, VerifyError>;

fn verify_snp(
    ev: &SnpEvidence,
    expected: &ReportData,
    policy: &Policy,
    now: SystemTime,
    links: LinkCheck<'_>,
) -> Result<Claims, VerifyError> {
    let mut log = Log::default();
    log.pass(
        "tee",
        format!("sev-snp evidence, policy `{}` is for sev-snp", policy.name),
    );

    let report = AttestationReport::parse(&ev.report)?;
    // Before the signature: bytes 0x2A0.. are not signed, and a signed reserved byte that is not
    // zero means a layout we would misread. Either way the precise reason is the reserved field.
    report.check_reserved()?;
    let leaf_role = match report.signing_key() {
        SigningKey::Vcek => "VCEK",
        SigningKey::Vlek => "VLEK",
        other => {
            return Err(VerifyError::Malformed(format!(
                "report signing key is {}: no endorsed key signed it",
                other.name()
            )))
        }
    };
    log.pass(
        "report",
        format!(
            "ATTESTATION_REPORT v{}, {} bytes, reserved fields as the ABI requires, signed by {leaf_role}",
            report.version,
            ev.report.len()
        ),
    );

    let cert_chain = ev.chain.as_ref().ok_or(VerifyError::MissingChain)?;
    let root = select_root(&cert_chain.ark, policy)?;
    log.pass(
        "root",
        format!("{} is trusted by policy `{}`", root.name(), policy.name),
    );

    let chain = links(cert_chain, leaf_role)?;
    log.pass("chain", chain.path.clone());
    log.pass("validity", chain.check_validity(now)?);

    verify_report_signature(&report, chain.report_key.as_ref(), leaf_role)?;
    log.pass(
        "signature",
        format!("ECDSA P-384/SHA-384 over bytes 0x000..0x2A0 verifies with the {leaf_role}"),
    );

    let simulated = matches!(root, Root::Simulated { .. });
    log.pass(
        "vcek-binding",
        check_binding(&report, &cert_chain.vcek, leaf_role, simulated)?,
    );

    let floor = match &root {
        Root::Vendor(product) => policy.snp_tcb_floor(*product),
        Root::Simulated { .. } => &policy.min_tcb,
    };
    check_policy(&report, expected, policy, floor, &mut log)?;
    let image_identity =
        crate::cloud_vtpm::check(ev.cloud_vtpm.as_ref(), expected, policy, now, &mut log)?;

    Ok(Claims {
        image_identity,
        tee: crate::TeeKind::SevSnp,
        measurement: report.measurement,
        root: root.name(),
        simulated,
        policy: policy.name.clone(),
        checks: log.0,
    })
}

/// REPORT_DATA, measurement, and the policy's guest-policy, VMPL and TCB rules, in that order.
fn check_policy(
    report: &AttestationReport,
    expected: &ReportData,
    policy: &Policy,
    floor: &MinTcb,
    log: &mut Log,
) -> Result<(), VerifyError> {
    let name = || policy.name.clone();
    if report.report_data != *expected {
        return Err(VerifyError::ReportDataMismatch {
            expected: expected.to_string(),
            found: report.report_data.to_string(),
        });
    }
    log.pass("report-data", "REPORT_DATA equals the expected binding");

    match AllowedMeasurement::find(&policy.measurements, &report.measurement) {
        Some(allowed) => log.pass(
            "measurement",
            format!("{} ({})", report.measurement, allowed.source),
        ),
        // Only with the policy's explicit trust_cloud_firmware and no measurement pinned: the
        // measurement is then the cloud's firmware, trusted like the cloud's vTPM.
        None if crate::cloud_vtpm::firmware_unpinned(policy) => log.pass(
            "measurement",
            format!(
                "{} NOT PINNED: the cloud's firmware is trusted (cloud_vtpm.trust_cloud_firmware)",
                report.measurement
            ),
        ),
        None => {
            return Err(VerifyError::MeasurementNotAllowed {
                measurement: report.measurement.to_string(),
                policy: name(),
            })
        }
    }

    let gp = report.policy;
    if gp.debug() && !policy.allow_debug {
        return Err(VerifyError::DebugAllowed { policy: name() });
    }
    log.pass(
        "debug",
        if gp.debug() {
            format!(
                "guest policy {:#x} ALLOWS DEBUG; accepted because allow_debug is set",
                gp.bits()
            )
        } else {
            format!("guest policy {:#x}: debugging disabled", gp.bits())
        },
    );
    if gp.migrate_ma() && !policy.allow_migration_agent {
        return Err(VerifyError::MigrationAgentAllowed { policy: name() });
    }
    log.pass(
        "migration-agent",
        if gp.migrate_ma() {
            "migration agent allowed; accepted because allow_migration_agent is set"
        } else {
            "no migration agent"
        },
    );
    if report.vmpl > policy.max_vmpl {
        return Err(VerifyError::VmplTooHigh {
            vmpl: report.vmpl,
            max: policy.max_vmpl,
            policy: name(),
        });
    }
    log.pass(
        "vmpl",
        format!("VMPL {} ≤ {}", report.vmpl, policy.max_vmpl),
    );
    check_tcb(report, floor, &name())?;
    let m = floor;
    log.pass(
        "tcb",
        format!(
            "TCB {} ≥ policy minimum bl={} tee={} snp={} ucode={}",
            report.reported_tcb, m.bootloader, m.tee, m.snp, m.microcode
        ),
    );
    Ok(())
}

fn check_tcb(report: &AttestationReport, min: &MinTcb, policy: &str) -> Result<(), VerifyError> {
    let t = report.reported_tcb;
    for (component, found, minimum) in [
        ("bootloader", t.bootloader, min.bootloader),
        ("tee", t.tee, min.tee),
        ("snp", t.snp, min.snp),
        ("microcode", t.microcode, min.microcode),
    ] {
        if found < minimum {
            return Err(VerifyError::TcbTooLow {
                component: component.to_string(),
                found,
                minimum,
                policy: policy.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::policy::{AllowedMeasurement, TrustedRoot};
    use crate::snp::GuestPolicy;
    use crate::TeeKind;

    const REPORT: &[u8] = include_bytes!("../../tests/fixtures/snp/trustee_milan/test-report.bin");

    /// The policy half of verification, on a real report whose fields we then edit (the
    /// signature is not involved here; the integration tests cover it).
    fn setup() -> (AttestationReport, Policy) {
        let report = AttestationReport::parse(REPORT).unwrap();
        let policy = Policy {
            name: "unit".into(),
            tee: TeeKind::SevSnp,
            roots: vec![TrustedRoot::AmdMilan],
            measurements: vec![AllowedMeasurement {
                measurement: report.measurement.to_string(),
                source: "fixture".into(),
            }],
            min_tcb: MinTcb::default(),
            min_tcb_by_product: Default::default(),
            allow_debug: false,
            allow_migration_agent: false,
            max_vmpl: 0,
            tdx: None,
            gpu: None,
            azure_vtpm: None,
            image_binding: Default::default(),
            cloud_vtpm: None,
            models: Vec::new(),
        };
        (report, policy)
    }

    fn run(report: &AttestationReport, policy: &Policy) -> Result<(), VerifyError> {
        check_policy(
            report,
            &report.report_data,
            policy,
            &policy.min_tcb,
            &mut Log::default(),
        )
    }

    #[test]
    fn migration_agent_is_refused_unless_allowed() {
        let (mut report, mut policy) = setup();
        report.policy = GuestPolicy(report.policy.bits() | GuestPolicy::MIGRATE_MA);
        assert_eq!(
            run(&report, &policy),
            Err(VerifyError::MigrationAgentAllowed {
                policy: "unit".into()
            })
        );
        policy.allow_migration_agent = true;
        run(&report, &policy).unwrap();
    }

    #[test]
    fn vmpl_above_maximum_is_refused() {
        let (mut report, mut policy) = setup();
        report.vmpl = 2;
        policy.max_vmpl = 1;
        assert_eq!(
            run(&report, &policy),
            Err(VerifyError::VmplTooHigh {
                vmpl: 2,
                max: 1,
                policy: "unit".into()
            })
        );
    }

    #[test]
    fn policy_checks_run_in_the_documented_order() {
        // A report failing every policy rule reports the first: debug, then migration agent,
        // VMPL, TCB.
        let (mut report, mut policy) = setup();
        report.policy = GuestPolicy(GuestPolicy::DEBUG | GuestPolicy::MIGRATE_MA);
        report.vmpl = 3;
        policy.min_tcb.snp = 200;
        assert!(matches!(
            run(&report, &policy),
            Err(VerifyError::DebugAllowed { .. })
        ));
        policy.allow_debug = true;
        assert!(matches!(
            run(&report, &policy),
            Err(VerifyError::MigrationAgentAllowed { .. })
        ));
        policy.allow_migration_agent = true;
        assert!(matches!(
            run(&report, &policy),
            Err(VerifyError::VmplTooHigh { .. })
        ));
        policy.max_vmpl = 3;
        assert!(matches!(
            run(&report, &policy),
            Err(VerifyError::TcbTooLow { .. })
        ));
    }

    #[test]
    fn invalid_measurement_entries_match_nothing() {
        let (report, mut policy) = setup();
        policy.measurements[0].measurement = "not hex".into();
        assert!(matches!(
            run(&report, &policy),
            Err(VerifyError::MeasurementNotAllowed { .. })
        ));
    }
}
