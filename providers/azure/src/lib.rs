//! Azure backend: confidential VMs through azure_core/azure_identity and typed ARM request models.
#![deny(missing_docs)]
