//! AWS EC2 backend: SEV-SNP instances (m6a/c6a/r6a) through aws-sdk-ec2.
#![deny(missing_docs)]
