//! Google Compute Engine backend: confidential instances through google-cloud-compute-v1.
#![deny(missing_docs)]
