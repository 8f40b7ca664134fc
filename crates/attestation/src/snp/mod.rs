//! AMD SEV-SNP: the typed attestation report, the pinned AMD roots, and the verifier.
//!
//! References: AMD "SEV Secure Nested Paging Firmware ABI Specification" (report layout, Table 22;
//! guest policy, Table 9; TCB_VERSION, Table 3) and AMD "VCEK Certificate and KDS Interface
//! Specification" (certificate chain and VCEK extensions).

mod amd_ext;
mod binding;
pub mod cert_table;
mod chain;
mod fields;
#[cfg(feature = "sev-guest")]
mod guest_device;
mod report;
mod reserved;
pub mod roots;
mod signature;
pub mod vcek;
mod verify;

pub use fields::{GuestPolicy, KeyInfo, SigningKey, TcbLayout, TcbVersion};
pub use report::{AttestationReport, REPORT_LEN, SIGNED_LEN};
pub use reserved::{reserved_ranges, ReservedRange, SUPPORTED_VERSIONS};
pub use roots::{AmdProduct, SIMULATED_ARK_CN};
pub use signature::SIG_ALGO_ECDSA_P384_SHA384;
#[cfg(feature = "azure")]
pub(crate) use verify::verify_report;
pub use verify::{CachingSnpVerifier, SnpVerifier};

#[cfg(feature = "sim")]
pub(crate) use chain::fingerprint;
#[cfg(feature = "sim")]
pub(crate) use signature::scalar_to_le;

#[cfg(feature = "sev-guest")]
pub use guest_device::{SevGuestAttester, SEV_GUEST_DEVICE};
