//! `cdvm-image`: the ConfidentialDVM guest image recipe and its expected launch measurement.
//!
//! The guest is Debian's bookworm kernel plus an initramfs whose `/init` is the static guest agent
//! (`cdvm-agent`), with the few kernel modules it needs, and the RAG job's model files in
//! `/models/` ([`models`]). The recipe ([`recipe::build`]) is deterministic: the same kernel
//! package, agent binary, OVMF package and model files give the same bytes, and
//! `manifest.json` records every input and output with its SHA-256. [`measure`] computes the
//! SEV-SNP launch digest QEMU's direct boot of that image produces with the AMD-SEV OVMF, which the
//! generated `policies/image-snp.yaml` pins. See docs/image.md.

#![deny(missing_docs)]

pub mod authenticode;
pub mod cpio;
pub mod deb;
pub mod disk;
pub mod esp;
pub mod expected;
pub mod gce_tar;
pub mod gpt;
pub mod initramfs;
pub mod inputs;
pub mod lock;
pub mod manifest;
pub mod measure;
pub mod models;
pub mod modules;
pub mod pcr;
pub mod pe;
pub mod platform_policy;
pub mod policy;
pub mod recipe;
pub mod tdvf;
pub mod tdx_direct;
pub mod uki;
pub mod vhd;

pub use measure::{snp_launch_digest, CpuModel, Firmware, MeasureError, GUEST_FEATURES};
pub use recipe::{build, BuildConfig, BuildError, BuildOutcome, CMDLINE};

/// An error and its sources on one line (`a: b: c`), for reports that are not `anyhow`'s.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
