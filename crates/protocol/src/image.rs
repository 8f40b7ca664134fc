//! The image names guests report in their attestation (`image.name`) and operators announce
//! (`cdvm.image`). A claim, not a proof: the measurement inside the signed report is what counts.

/// The agent run as a process (process provider, the cloud emulator's guests): it reports this.
pub const PROCESS_AGENT_IMAGE: &str = "cdvm-agent (process)";
/// The measured guest image (`scripts/build-image`) whose PID 1 is the agent.
pub const GUEST_IMAGE: &str = "cdvm-guest (qemu)";
