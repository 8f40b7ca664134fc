//! The pinned AMD root keys (ARK), embedded at build time: trust never depends on the network.
//! Provenance: `roots/SOURCES.md`.

use std::sync::OnceLock;

use crate::policy::TrustedRoot;

/// Subject CN of the simulated secure processor's root. The verifier uses it only to say plainly
/// "simulated evidence refused" instead of "unknown root"; trust comes from fingerprints alone.
pub const SIMULATED_ARK_CN: &str = "CDVM-SIMULATED-ARK";

const ARK_MILAN_PEM: &str = include_str!("../../roots/ark_milan.pem");
const ARK_GENOA_PEM: &str = include_str!("../../roots/ark_genoa.pem");
const ARK_TURIN_PEM: &str = include_str!("../../roots/ark_turin.pem");

/// SHA-256 of the DER of each pinned ARK, as recorded in `roots/SOURCES.md`.
pub const ARK_MILAN_SHA256: &str =
    "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd";
/// See [`ARK_MILAN_SHA256`].
pub const ARK_GENOA_SHA256: &str =
    "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1";
/// See [`ARK_MILAN_SHA256`].
pub const ARK_TURIN_SHA256: &str =
    "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a";

/// An AMD product line with a pinned root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AmdProduct {
    /// EPYC 7003.
    Milan,
    /// EPYC 9004/8004.
    Genoa,
    /// EPYC 9005.
    Turin,
}

impl AmdProduct {
    /// All product lines with a pinned ARK.
    pub const ALL: [AmdProduct; 3] = [AmdProduct::Milan, AmdProduct::Genoa, AmdProduct::Turin];

    /// The policy root that names this product's ARK.
    pub fn trusted_root(self) -> TrustedRoot {
        match self {
            AmdProduct::Milan => TrustedRoot::AmdMilan,
            AmdProduct::Genoa => TrustedRoot::AmdGenoa,
            AmdProduct::Turin => TrustedRoot::AmdTurin,
        }
    }

    /// Display name of the root, e.g. `AMD ARK-Milan`.
    pub fn root_name(self) -> &'static str {
        match self {
            AmdProduct::Milan => "AMD ARK-Milan",
            AmdProduct::Genoa => "AMD ARK-Genoa",
            AmdProduct::Turin => "AMD ARK-Turin",
        }
    }

    fn pem(self) -> &'static str {
        match self {
            AmdProduct::Milan => ARK_MILAN_PEM,
            AmdProduct::Genoa => ARK_GENOA_PEM,
            AmdProduct::Turin => ARK_TURIN_PEM,
        }
    }

    /// The pinned ARK's DER. `None` only if the embedded PEM were corrupt, in which case nothing
    /// matches it and verification fails closed.
    pub fn ark_der(self) -> Option<&'static [u8]> {
        // Decoded once per process: every verification compares against these.
        static DERS: OnceLock<[Option<Vec<u8>>; 3]> = OnceLock::new();
        // Base64 of the PEM body, not an X.509 parse: parsing costs milliseconds per process.
        let ders = DERS.get_or_init(|| AmdProduct::ALL.map(|p| pem_body_der(p.pem())));
        let index = AmdProduct::ALL.iter().position(|&p| p == self)?;
        ders.get(index)?.as_deref()
    }
}

/// The DER inside a single-certificate PEM.
fn pem_body_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The pinned product whose ARK is exactly `der`, if any.
pub fn pinned_product(der: &[u8]) -> Option<AmdProduct> {
    AmdProduct::ALL
        .into_iter()
        .find(|p| p.ark_der() == Some(der))
}

impl crate::Policy {
    /// The SNP TCB floor for a product line: its own if the policy sets one, else `min_tcb`.
    pub fn snp_tcb_floor(&self, product: AmdProduct) -> &crate::policy::MinTcb {
        let own = match product {
            AmdProduct::Milan => &self.min_tcb_by_product.milan,
            AmdProduct::Genoa => &self.min_tcb_by_product.genoa,
            AmdProduct::Turin => &self.min_tcb_by_product.turin,
        };
        own.as_ref().unwrap_or(&self.min_tcb)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn pinned_fingerprints_match_sources() {
        for (p, fp) in [
            (AmdProduct::Milan, ARK_MILAN_SHA256),
            (AmdProduct::Genoa, ARK_GENOA_SHA256),
            (AmdProduct::Turin, ARK_TURIN_SHA256),
        ] {
            let der = p.ark_der().unwrap();
            assert_eq!(hex::encode(Sha256::digest(der)), fp, "{p:?}");
            assert_eq!(pinned_product(der), Some(p));
        }
        assert_eq!(pinned_product(b"not a cert"), None);
    }
}
