//! What a successful verification established.

use serde::Serialize;

use crate::{Measurement, TeeKind};

/// One check the verifier performed, for display (`cdvm verify`) and audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name, e.g. `chain`, `signature`, `report-data`, `measurement`, `tcb`, `debug`.
    pub name: String,
    /// What was found, e.g. `ARK-Milan → SEV-Milan → VCEK`.
    pub detail: String,
}

/// Verified facts about a guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The TEE family.
    pub tee: TeeKind,
    /// The launch measurement.
    pub measurement: Measurement,
    /// Human name of the trusted root the chain ended in, e.g. `AMD ARK-Milan`.
    pub root: String,
    /// True when the root is the simulated secure processor: no confidentiality at all.
    pub simulated: bool,
    /// Name of the policy that accepted the evidence.
    pub policy: String,
    /// Every check performed, in order.
    pub checks: Vec<Check>,
    /// Who vouched for the image: the hardware, or a cloud's vTPM (shown by the client).
    pub image_identity: crate::ImageIdentity,
}

/// Collects the checks that passed, in order (used by every verifier).
#[cfg(any(feature = "snp", feature = "tdx"))]
#[derive(Debug, Default)]
pub(crate) struct CheckLog(pub Vec<Check>);

#[cfg(any(feature = "snp", feature = "tdx"))]
impl CheckLog {
    /// Records a passed check.
    pub(crate) fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.0.push(Check {
            name: name.to_string(),
            detail: detail.into(),
        });
    }
}
