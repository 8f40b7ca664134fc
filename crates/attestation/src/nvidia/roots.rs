//! The pinned NVIDIA root for GPU device identities, embedded at build time: trust never depends
//! on the network. Provenance: `roots/SOURCES.md`.

use std::sync::OnceLock;

use openssl::x509::X509;

const DEVICE_IDENTITY_CA_PEM: &str = include_str!("../../roots/nvidia_device_identity_ca.pem");

/// Display name of the pinned root.
pub const DEVICE_IDENTITY_CA_NAME: &str = "NVIDIA Device Identity CA";

/// SHA-256 of the pinned root's DER, as recorded in `roots/SOURCES.md`.
pub const DEVICE_IDENTITY_CA_SHA256: &str =
    "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48";

/// The pinned NVIDIA Device Identity CA certificate. `None` only if the embedded PEM were
/// corrupt, in which case nothing matches it and verification fails closed.
pub fn device_identity_ca() -> Option<&'static X509> {
    static ROOT: OnceLock<Option<X509>> = OnceLock::new();
    ROOT.get_or_init(|| X509::from_pem(DEVICE_IDENTITY_CA_PEM.as_bytes()).ok())
        .as_ref()
}

/// The pinned root's DER.
pub fn device_identity_ca_der() -> Option<&'static [u8]> {
    static DER: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    DER.get_or_init(|| device_identity_ca().and_then(|c| c.to_der().ok()))
        .as_deref()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn pinned_fingerprint_matches_sources() {
        let der = device_identity_ca_der().unwrap();
        assert_eq!(hex::encode(Sha256::digest(der)), DEVICE_IDENTITY_CA_SHA256);
        let cert = device_identity_ca().unwrap();
        assert_eq!(
            crate::nvidia::chain::common_name(cert),
            DEVICE_IDENTITY_CA_NAME
        );
    }
}
