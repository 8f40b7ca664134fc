//! The certificate chain ARK → ASK → VCEK: which root it ends in (pinned AMD ARK or a
//! policy-named simulated root), each link's signature, and each certificate's validity period.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::ParsedPublicKey;
use sha2::{Digest, Sha256};

use crate::policy::{Policy, TrustedRoot};
use crate::snp::roots::{pinned_product, AmdProduct, SIMULATED_ARK_CN};
use crate::x509::{Cert, PublicKey, SignatureError};
use crate::{SnpCertChain, VerifyError};

/// The root a chain ends in, once the policy accepted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Root {
    /// A pinned AMD ARK.
    Vendor(AmdProduct),
    /// A simulated secure processor's ARK, named by fingerprint in the policy.
    Simulated {
        /// Hex SHA-256 of the ARK's DER.
        fingerprint: String,
    },
}

impl Root {
    pub(crate) fn name(&self) -> String {
        match self {
            Root::Vendor(p) => p.root_name().to_string(),
            Root::Simulated { fingerprint } => {
                format!("SIMULATED secure processor (ARK sha256 {fingerprint})")
            }
        }
    }
}

/// Hex SHA-256 of DER bytes (how policies name roots).
pub(crate) fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Decides whether the policy trusts the evidence's ARK. Trust comes only from exact DER equality
/// with a pinned ARK the policy lists, or from a fingerprint the policy lists.
pub(crate) fn select_root(ark_der: &[u8], policy: &Policy) -> Result<Root, VerifyError> {
    if let Some(product) = pinned_product(ark_der) {
        if policy.roots.contains(&product.trusted_root()) {
            return Ok(Root::Vendor(product));
        }
    }
    let fp = fingerprint(ark_der);
    let listed = policy.roots.iter().any(|r| {
        matches!(r, TrustedRoot::Simulated { ark_sha256 } if ark_sha256.eq_ignore_ascii_case(&fp))
    });
    if listed {
        return Ok(Root::Simulated { fingerprint: fp });
    }
    // Refused. Say "simulated" when that is plainly the reason, so a shipped policy's refusal reads
    // as such; a policy that trusts some other simulated root just gets "untrusted root".
    let looks_simulated = Cert::parse(ark_der).is_ok_and(|c| c.common_name() == SIMULATED_ARK_CN);
    if looks_simulated && !policy.trusts_simulated() {
        return Err(VerifyError::SimulatedNotAllowed {
            policy: policy.name.clone(),
        });
    }
    Err(VerifyError::UntrustedRoot {
        fingerprint: fp,
        policy: policy.name.clone(),
        trusted: describe_roots(&policy.roots),
    })
}

fn describe_roots(roots: &[TrustedRoot]) -> String {
    let names: Vec<String> = roots
        .iter()
        .map(|r| match r {
            TrustedRoot::AmdMilan => AmdProduct::Milan.root_name().to_string(),
            TrustedRoot::AmdGenoa => AmdProduct::Genoa.root_name().to_string(),
            TrustedRoot::AmdTurin => AmdProduct::Turin.root_name().to_string(),
            TrustedRoot::IntelSgxRoot => "Intel SGX Root CA".to_string(),
            TrustedRoot::Simulated { ark_sha256 } => format!("simulated {ark_sha256}"),
        })
        .collect();
    names.join(", ")
}

/// A chain whose links verified, with labels for claims and errors.
#[derive(Debug)]
pub(crate) struct VerifiedChain {
    /// The leaf's key as the report's signer; `None` if it is not an EC P-384 key, which the
    /// signature step reports.
    pub report_key: Option<ParsedPublicKey>,
    /// E.g. `ARK-Milan → SEV-Milan → VCEK`.
    pub path: String,
    /// ARK, ASK, leaf.
    certs: [std::sync::Arc<Cert>; 3],
    labels: [String; 3],
}

fn parse(der: &[u8], role: &str) -> Result<Cert, VerifyError> {
    Cert::parse(der).map_err(|reason| VerifyError::BadCertificate {
        cert: role.to_string(),
        reason,
    })
}

fn label(role: &str, cert: &Cert) -> String {
    format!("{role} ({})", cert.common_name())
}

fn issuer_key(issuer: &Cert, issuer_label: &str) -> Result<PublicKey, VerifyError> {
    issuer
        .public_key()
        .map_err(|reason| VerifyError::BadCertificate {
            cert: issuer_label.to_string(),
            reason,
        })
}

/// Checks that `cert` names `issuer` as its issuer and carries its valid signature (AMD's
/// RSASSA-PSS or the simulator's ECDSA; see [`crate::x509`]).
fn check_link(
    cert: &Cert,
    cert_label: &str,
    issuer: &Cert,
    issuer_label: &str,
    key: &PublicKey,
) -> Result<(), VerifyError> {
    let broken = || VerifyError::ChainInvalid {
        cert: cert_label.to_string(),
        issuer: issuer_label.to_string(),
    };
    if !cert.names_issuer(issuer) {
        return Err(broken());
    }
    match cert.signed_by(key) {
        Ok(()) => Ok(()),
        Err(SignatureError::Invalid) => Err(broken()),
        Err(SignatureError::Unsupported(reason)) => Err(VerifyError::BadCertificate {
            cert: cert_label.to_string(),
            reason,
        }),
    }
}

/// A pinned ARK with one of its pinned intermediates (ASK or ASVK). Both are compiled-in
/// constants, so their links (ARK self-signature, intermediate by ARK) are verified by this
/// module's tests, not per process; a process parses a pair only when a chain presents that exact
/// intermediate, once. Only the leaf varies per report.
struct PinnedPair {
    product: AmdProduct,
    ask_der: Vec<u8>,
    parsed: std::sync::OnceLock<Option<ParsedPair>>,
}

struct ParsedPair {
    ark: std::sync::Arc<Cert>,
    ask: std::sync::Arc<Cert>,
    ask_key: PublicKey,
}

impl PinnedPair {
    fn parsed(&self) -> Option<&ParsedPair> {
        self.parsed
            .get_or_init(|| {
                let ark = Cert::parse(self.product.ark_der()?).ok()?;
                let ask = Cert::parse(&self.ask_der).ok()?;
                let ask_key = ask.public_key().ok()?;
                Some(ParsedPair {
                    ark: std::sync::Arc::new(ark),
                    ask: std::sync::Arc::new(ask),
                    ask_key,
                })
            })
            .as_ref()
    }
}

/// The pinned pairs of one product (DER only until used).
fn pinned_pairs(product: AmdProduct) -> &'static [PinnedPair] {
    static PAIRS: [std::sync::OnceLock<Vec<PinnedPair>>; 3] = [
        std::sync::OnceLock::new(),
        std::sync::OnceLock::new(),
        std::sync::OnceLock::new(),
    ];
    let index = AmdProduct::ALL
        .iter()
        .position(|&p| p == product)
        .unwrap_or(0);
    PAIRS[index].get_or_init(|| {
        crate::snp::vcek::pinned_intermediates_der(product)
            .into_iter()
            .filter(|der| Some(der.as_slice()) != product.ark_der())
            .map(|ask_der| PinnedPair {
                product,
                ask_der,
                parsed: std::sync::OnceLock::new(),
            })
            .collect()
    })
}

/// Verifies ARK self-signature, ASK by ARK, leaf by ASK; `leaf_role` is `VCEK` or `VLEK`.
pub(crate) fn verify_links(
    chain: &SnpCertChain,
    leaf_role: &str,
) -> Result<VerifiedChain, VerifyError> {
    let pinned = pinned_product(&chain.ark).and_then(|product| {
        pinned_pairs(product)
            .iter()
            .find(|p| p.ask_der == chain.ask)
            .and_then(PinnedPair::parsed)
    });
    if let Some(p) = pinned {
        let leaf = parse(&chain.vcek, leaf_role)?;
        let labels = [
            label("ARK", &p.ark),
            label("ASK", &p.ask),
            label(leaf_role, &leaf),
        ];
        check_link(&leaf, &labels[2], &p.ask, &labels[1], &p.ask_key)?;
        let certs = [p.ark.clone(), p.ask.clone(), std::sync::Arc::new(leaf)];
        return Ok(finish(certs, labels, leaf_role));
    }
    let ark = parse(&chain.ark, "ARK")?;
    let ask = parse(&chain.ask, "ASK")?;
    let leaf = parse(&chain.vcek, leaf_role)?;
    let labels = [
        label("ARK", &ark),
        label("ASK", &ask),
        label(leaf_role, &leaf),
    ];
    let ark_key = issuer_key(&ark, &labels[0])?;
    check_link(&ark, &labels[0], &ark, &labels[0], &ark_key)?;
    check_link(&ask, &labels[1], &ark, &labels[0], &ark_key)?;
    check_link(
        &leaf,
        &labels[2],
        &ask,
        &labels[1],
        &issuer_key(&ask, &labels[1])?,
    )?;
    let certs = [ark, ask, leaf].map(std::sync::Arc::new);
    Ok(finish(certs, labels, leaf_role))
}

fn finish(certs: [std::sync::Arc<Cert>; 3], labels: [String; 3], leaf_role: &str) -> VerifiedChain {
    let [ark, ask, leaf] = &certs;
    VerifiedChain {
        report_key: leaf.report_signing_key(),
        path: format!(
            "{} → {} → {leaf_role}",
            ark.common_name(),
            ask.common_name()
        ),
        certs,
        labels,
    }
}

impl VerifiedChain {
    /// Each certificate must be inside its validity period at `now`.
    pub(crate) fn check_validity(&self, now: SystemTime) -> Result<String, VerifyError> {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| VerifyError::Malformed("verification time is before 1970".into()))?
            .as_secs();
        for (cert, label) in self.certs.iter().zip(&self.labels) {
            if !cert.valid_at(secs) {
                return Err(VerifyError::CertificateExpired {
                    cert: label.clone(),
                });
            }
        }
        let [_, _, leaf] = &self.certs;
        Ok(format!(
            "ARK, ASK and leaf valid at the verification time (leaf until {})",
            leaf.not_after()
        ))
    }
}

/// Chains whose link signatures verified, by SHA-256 of their three DER certificates. Bounded:
/// cleared when full, so hostile input cannot grow it without limit.
#[derive(Debug, Default)]
pub(crate) struct ChainCache {
    inner: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::sync::Arc<VerifiedChain>>>,
}

const CHAIN_CACHE_MAX: usize = 256;

impl ChainCache {
    pub(crate) fn get_or_verify(
        &self,
        chain: &SnpCertChain,
        leaf_role: &str,
    ) -> Result<std::sync::Arc<VerifiedChain>, VerifyError> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for der in [&chain.ark, &chain.ask, &chain.vcek] {
            h.update((der.len() as u64).to_le_bytes());
            h.update(der);
        }
        h.update(leaf_role.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let hit = self.lock().get(&key).cloned();
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let verified = std::sync::Arc::new(verify_links(chain, leaf_role)?);
        let mut map = self.lock();
        if map.len() >= CHAIN_CACHE_MAX {
            map.clear();
        }
        map.insert(key, std::sync::Arc::clone(&verified));
        Ok(verified)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], std::sync::Arc<VerifiedChain>>>
    {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a process no longer re-checks at run time: every pinned intermediate is signed by its
    /// product's pinned ARK, which signs itself.
    #[test]
    fn every_pinned_pair_links_to_its_ark() {
        for product in AmdProduct::ALL {
            let pairs = pinned_pairs(product);
            assert!(
                pairs.len() >= 2,
                "{product:?}: an ASK and an ASVK are pinned"
            );
            for pair in pairs {
                let p = pair.parsed().expect("pinned certificates parse");
                let ark_key = p.ark.public_key().expect("ARK key");
                check_link(&p.ark, "ARK", &p.ark, "ARK", &ark_key).expect("ARK self-signed");
                check_link(&p.ask, "ASK", &p.ark, "ARK", &ark_key)
                    .expect("intermediate signed by the ARK");
            }
        }
    }
}
