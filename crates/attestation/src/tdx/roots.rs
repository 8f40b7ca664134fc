//! Intel's SGX Root CA, embedded at build time: it anchors every DCAP chain (PCK certificates,
//! TCB info and QE identity signers, CRLs). Provenance: `roots/SOURCES.md`.

use std::sync::OnceLock;

use openssl::x509::X509;

const INTEL_SGX_ROOT_PEM: &str = include_str!("../../roots/intel_sgx_root_ca.pem");

/// SHA-256 of the DER of the pinned Intel SGX Root CA, as recorded in `roots/SOURCES.md` (and
/// identical to dcap-qvl's and go-tdx-guest's embedded root).
pub const INTEL_SGX_ROOT_SHA256: &str =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

/// Subject CN of the development DCAP root that the simulator (`sim::tdx`) generates. Trusted
/// only by a policy naming its SHA-256 as a `simulated` root; a chain ending in a root with this
/// name under any other policy is refused as `SimulatedNotAllowed`.
pub const SIMULATED_SGX_ROOT_CN: &str = "ConfidentialDVM SIMULATED SGX Root CA";

/// Display name of the root, as shown in claims.
pub const INTEL_SGX_ROOT_NAME: &str = "Intel SGX Root CA";

/// The pinned root's DER. `None` only if the embedded PEM were corrupt, in which case nothing
/// matches it and verification fails closed.
pub fn intel_sgx_root_der() -> Option<&'static [u8]> {
    static DER: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    DER.get_or_init(|| {
        X509::from_pem(INTEL_SGX_ROOT_PEM.as_bytes())
            .and_then(|c| c.to_der())
            .ok()
    })
    .as_deref()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn pinned_fingerprint_matches_sources() {
        let der = intel_sgx_root_der().unwrap();
        assert_eq!(hex::encode(Sha256::digest(der)), INTEL_SGX_ROOT_SHA256);
        let cert = X509::from_der(der).unwrap();
        let cn = cert
            .subject_name()
            .entries()
            .next()
            .unwrap()
            .data()
            .to_string()
            .unwrap();
        assert_eq!(cn, INTEL_SGX_ROOT_NAME);
    }
}
