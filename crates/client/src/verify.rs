//! Verification entry points shared by the live job and `cdvm verify` (offline).

use std::time::SystemTime;

use cdvm_attestation::snp::vcek::{product_of, VcekResolver};
use cdvm_attestation::snp::AttestationReport;
use cdvm_attestation::{AnyVerifier, Claims, Evidence, Policy, Verifier, VerifyError};
use cdvm_protocol::nostr::Event;
use cdvm_protocol::AttestationEvent;

use crate::ClientError;

/// Verifies evidence with the verifier of its TEE family, then any GPU evidence bound to it.
pub fn verify_evidence(
    evidence: &Evidence,
    expected: &cdvm_attestation::ReportData,
    policy: &Policy,
    now: SystemTime,
) -> Result<Claims, VerifyError> {
    AnyVerifier.verify(evidence, expected, policy, now)
}

/// Verifies a whole attestation event: its signature, then the evidence against
/// `report_data(request, event author)` and the policy. Works offline on a saved event.
pub fn verify_attestation_event(
    event: &Event,
    policy: &Policy,
    now: SystemTime,
) -> Result<(AttestationEvent, Claims), ClientError> {
    verify_attestation_event_with(event, policy, now, None)
}

/// Like [`verify_attestation_event`]; SEV-SNP evidence without a certificate chain (the host
/// supplied none, docs/protocol.md §5.3) gets its VCEK from `vcek` (cache, then AMD KDS when the
/// resolver may fetch) and the pinned ASK/ARK of the report's product.
pub fn verify_attestation_event_with(
    event: &Event,
    policy: &Policy,
    now: SystemTime,
    vcek: Option<&VcekResolver>,
) -> Result<(AttestationEvent, Claims), ClientError> {
    let attestation =
        AttestationEvent::from_event(event).map_err(ClientError::BadAttestationEvent)?;
    let expected = cdvm_protocol::report_data(&attestation.request_id, &attestation.guest);
    let evidence = complete_chain(&attestation.payload.evidence, vcek)?;
    let claims = verify_evidence(&evidence, &expected, policy, now)
        .map_err(ClientError::AttestationRefused)?;
    check_models(&attestation, policy)?;
    Ok((attestation, claims))
}

/// Every model hash the policy requires must be named by the attestation (its `model` tags,
/// docs/protocol.md §5.9). The tags are the measured image's own words: this pins the model a
/// user wants in addition to the image measurement that covers it.
fn check_models(attestation: &AttestationEvent, policy: &Policy) -> Result<(), ClientError> {
    for required in &policy.models {
        if !attestation.models.iter().any(|m| &m.sha256 == required) {
            let carried = attestation
                .models
                .iter()
                .map(|m| format!("{} {}", m.name, m.sha256))
                .collect::<Vec<_>>();
            return Err(ClientError::AttestationRefused(
                VerifyError::ModelNotCarried {
                    model: required.clone(),
                    carried: if carried.is_empty() {
                        "no models".to_owned()
                    } else {
                        carried.join(", ")
                    },
                    policy: policy.name.clone(),
                },
            ));
        }
    }
    Ok(())
}

/// Fills in the chain of chain-less SNP evidence; other evidence is returned as is.
fn complete_chain(
    evidence: &Evidence,
    vcek: Option<&VcekResolver>,
) -> Result<Evidence, ClientError> {
    let (Evidence::SevSnp(snp), Some(resolver)) = (evidence, vcek) else {
        return Ok(evidence.clone());
    };
    if snp.chain.is_some() {
        return Ok(evidence.clone());
    }
    let refuse = |reason: String| ClientError::AttestationRefused(VerifyError::Malformed(reason));
    let report = AttestationReport::parse(&snp.report).map_err(ClientError::AttestationRefused)?;
    let product = product_of(&report).ok_or_else(|| {
        refuse("chain-less evidence from an AMD product this client cannot tell".into())
    })?;
    let (chain, source) = resolver.chain(&report, product).map_err(|e| {
        refuse(format!(
            "the evidence carries no chain and the VCEK could not be resolved: {e}"
        ))
    })?;
    tracing::info!(?source, "resolved the VCEK of chain-less SEV-SNP evidence");
    Ok(Evidence::SevSnp(snp.clone().with_chain(chain)))
}
