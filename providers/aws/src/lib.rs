//! AWS backend: one EC2 instance with AMD SEV-SNP per job, through `aws-sdk-ec2`.
//!
//! Launch: `RunInstances` with `CpuOptions.AmdSevSnp=enabled` on an allowed m6a/c6a/r6a type
//! (others are refused before AWS is called), the configured UEFI AMI, IMDSv2 required, user data
//! = the base64 bootstrap (public data only), `InstanceInitiatedShutdownBehavior=terminate` so a
//! guest that powers off is gone, and the owner and job tags on the instance and its volume.
//! A client token derived from owner and job makes a retried launch return the first instance.
//! Every call is retried with backoff and jitter on throttling and 5xx.
//!
//! AWS signs SNP reports with a VLEK, not a VCEK, and zeroes CHIP_ID: the policy for AWS guests
//! must accept the VLEK chain (docs/operators.md).
#![deny(missing_docs)]

pub mod catalog;
mod config;
mod error;
mod provider;

pub use config::AwsProviderConfig;
pub use error::Ec2Error;
pub use provider::{client_token, AwsProvider, JOB_TAG_KEY};

/// The backend's name in logs and errors.
pub const NAME: &str = "aws";
