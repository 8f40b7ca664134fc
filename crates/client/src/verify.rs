//! Verification entry points shared by the live job and `cdvm verify` (offline).

use std::time::SystemTime;

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
    let attestation =
        AttestationEvent::from_event(event).map_err(ClientError::BadAttestationEvent)?;
    let expected = cdvm_protocol::report_data(&attestation.request_id, &attestation.guest);
    let claims = verify_evidence(&attestation.payload.evidence, &expected, policy, now)
        .map_err(ClientError::AttestationRefused)?;
    Ok((attestation, claims))
}
