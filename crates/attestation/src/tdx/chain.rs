//! The PCK certificate chain carried in the quote: decoding, the root check, and the links and
//! validity periods, checked with OpenSSL before dcap-qvl re-verifies the whole chain with
//! Intel's CRLs. Doing it here first gives a precise error for a broken or expired chain.

use std::cmp::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::asn1::Asn1Time;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::x509::{X509NameRef, X509};
use sha2::{Digest, Sha256};

use crate::policy::{Policy, TrustedRoot};
use crate::tdx::roots::{intel_sgx_root_der, INTEL_SGX_ROOT_NAME, SIMULATED_SGX_ROOT_CN};
use crate::tdx::TdxError;
use crate::VerifyError;

/// Intel DCAP chains are leaf → (one intermediate) → root; allow a little slack, no more.
const MAX_CERTS: usize = 6;

const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const END: &[u8] = b"-----END CERTIFICATE-----";

/// Splits the type-5 certification data into DER certificates, leaf first. The data is a PEM
/// chain (the DCAP format, possibly NUL-terminated); concatenated DER is accepted too (Intel's
/// QVL test quotes use it), so that such a chain is judged by its root rather than its encoding.
pub(crate) fn decode_chain(data: &[u8]) -> Result<Vec<Vec<u8>>, TdxError> {
    let data = trim_end(data);
    let certs = if data.starts_with(BEGIN) {
        decode_pem(data)?
    } else {
        decode_der_concat(data)?
    };
    if certs.len() < 2 {
        return Err(TdxError::PckChainMalformed(format!(
            "{} certificate(s); a PCK chain needs at least the leaf and its issuer",
            certs.len()
        )));
    }
    if certs.len() > MAX_CERTS {
        return Err(TdxError::PckChainMalformed(format!(
            "{} certificates (at most {MAX_CERTS})",
            certs.len()
        )));
    }
    Ok(certs)
}

fn trim_end(mut data: &[u8]) -> &[u8] {
    while let [rest @ .., last] = data {
        if *last == 0 || last.is_ascii_whitespace() {
            data = rest;
        } else {
            break;
        }
    }
    data
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn decode_pem(mut data: &[u8]) -> Result<Vec<Vec<u8>>, TdxError> {
    let mut certs = Vec::new();
    loop {
        data = data.trim_ascii_start();
        if data.is_empty() {
            return Ok(certs);
        }
        let Some(body) = data.strip_prefix(BEGIN) else {
            return Err(TdxError::PckChainMalformed(format!(
                "certificate {}: expected a PEM BEGIN line",
                certs.len()
            )));
        };
        let Some(end) = find(body, END) else {
            return Err(TdxError::PckChainMalformed(format!(
                "certificate {}: no PEM END line",
                certs.len()
            )));
        };
        let b64: Vec<u8> = body
            .get(..end)
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let der = STANDARD.decode(&b64).map_err(|e| {
            TdxError::PckChainMalformed(format!("certificate {}: base64: {e}", certs.len()))
        })?;
        certs.push(der);
        if certs.len() > MAX_CERTS {
            return Ok(certs);
        }
        data = body
            .get(end.saturating_add(END.len())..)
            .unwrap_or_default();
    }
}

/// Length of the DER TLV at the start of `data` (a SEQUENCE with a definite length).
fn der_len(data: &[u8]) -> Option<usize> {
    let (&tag, rest) = data.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2usize)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, n.checked_add(2)?)
    };
    len.checked_add(header)
}

fn decode_der_concat(mut data: &[u8]) -> Result<Vec<Vec<u8>>, TdxError> {
    let mut certs = Vec::new();
    while !data.is_empty() && certs.len() <= MAX_CERTS {
        let cert = der_len(data)
            .and_then(|len| data.get(..len))
            .ok_or_else(|| {
                TdxError::PckChainMalformed(format!(
                    "certificate {}: neither PEM nor a DER certificate",
                    certs.len()
                ))
            })?;
        certs.push(cert.to_vec());
        data = data.get(cert.len()..).unwrap_or_default();
    }
    Ok(certs)
}

/// The root a PCK chain ends in, once the policy accepted it: the anchor dcap-qvl is given.
#[derive(Debug)]
pub(crate) struct DcapRoot<'a> {
    /// Display name, as shown in claims.
    pub name: String,
    /// The root certificate's DER: the pinned Intel root, or the policy-named simulated one.
    pub der: &'a [u8],
    /// True for a development (simulated) root: the claims say so.
    pub simulated: bool,
}

/// The root step. Trust comes only from (a) the policy trusting Intel's SGX Root CA and the
/// chain ending in exactly that certificate (byte for byte), or (b) the policy naming the
/// SHA-256 of the chain's root as a `simulated` root (development only; never Intel's root).
/// A chain ending in the simulator's root under a policy that trusts no simulated root is
/// refused as [`VerifyError::SimulatedNotAllowed`], so a shipped policy's refusal reads as such.
pub(crate) fn check_root<'a>(
    chain: &'a [Vec<u8>],
    policy: &Policy,
) -> Result<DcapRoot<'a>, VerifyError> {
    let root = chain.last().map(Vec::as_slice).unwrap_or_default();
    let pinned = intel_sgx_root_der();
    let is_intel = pinned == Some(root);
    if is_intel && policy.roots.contains(&TrustedRoot::IntelSgxRoot) {
        if let Some(der) = pinned {
            return Ok(DcapRoot {
                name: INTEL_SGX_ROOT_NAME.to_string(),
                der,
                simulated: false,
            });
        }
    }
    let fingerprint = hex::encode(Sha256::digest(root));
    let listed = policy.roots.iter().any(|r| match r {
        TrustedRoot::Simulated { ark_sha256 } => ark_sha256.eq_ignore_ascii_case(&fingerprint),
        _ => false,
    });
    if listed && !is_intel {
        return Ok(DcapRoot {
            name: format!("SIMULATED DCAP root CA (sha256 {fingerprint})"),
            der: root,
            simulated: true,
        });
    }
    let looks_simulated =
        X509::from_der(root).is_ok_and(|c| cn(c.subject_name()) == SIMULATED_SGX_ROOT_CN);
    if looks_simulated && !policy.trusts_simulated() {
        return Err(VerifyError::SimulatedNotAllowed {
            policy: policy.name.clone(),
        });
    }
    Err(VerifyError::UntrustedRoot {
        fingerprint,
        policy: policy.name.clone(),
        trusted: trusted_list(policy),
    })
}

fn trusted_list(policy: &Policy) -> String {
    let names: Vec<String> = policy
        .roots
        .iter()
        .map(|r| match r {
            TrustedRoot::AmdMilan => "amd-milan".to_string(),
            TrustedRoot::AmdGenoa => "amd-genoa".to_string(),
            TrustedRoot::AmdTurin => "amd-turin".to_string(),
            TrustedRoot::IntelSgxRoot => "intel-sgx-root".to_string(),
            TrustedRoot::Simulated { ark_sha256 } => format!("simulated {ark_sha256}"),
        })
        .collect();
    names.join(", ")
}

/// The verified links of the chain: the PCK leaf's public key (signs the QE report).
pub(crate) struct PckChain {
    /// The PCK leaf key.
    pub leaf_key: PKey<Public>,
}

fn cn(name: &X509NameRef) -> String {
    name.entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_else(|| "(no CN)".to_string())
}

/// Each certificate is signed by the next and names it as issuer; the root is self-signed; all
/// are within their validity period at `now`.
pub(crate) fn verify_chain(chain: &[Vec<u8>], now: SystemTime) -> Result<PckChain, VerifyError> {
    let certs = chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509::from_der(der).map_err(|e| {
                TdxError::PckChainMalformed(format!("certificate {i} is not X.509: {e}"))
            })
        })
        .collect::<Result<Vec<X509>, TdxError>>()?;
    let names: Vec<String> = certs.iter().map(|c| cn(c.subject_name())).collect();
    let name_at = |i: usize| names.get(i).cloned().unwrap_or_default();
    for (i, pair) in certs.windows(2).enumerate() {
        let [cert, issuer] = pair else { continue };
        let broken = || TdxError::PckChainInvalid {
            cert: name_at(i),
            issuer: name_at(i.saturating_add(1)),
        };
        let issuer_key = issuer.public_key().map_err(|_| broken())?;
        let names_match = matches!(
            cert.issuer_name().try_cmp(issuer.subject_name()),
            Ok(Ordering::Equal)
        );
        if !names_match || !matches!(cert.verify(&issuer_key), Ok(true)) {
            return Err(broken().into());
        }
    }
    let last = certs.len().saturating_sub(1);
    if let Some(root) = certs.last() {
        let self_signed = root
            .public_key()
            .ok()
            .is_some_and(|k| matches!(root.verify(&k), Ok(true)));
        if !self_signed {
            return Err(TdxError::PckChainInvalid {
                cert: name_at(last),
                issuer: name_at(last),
            }
            .into());
        }
    }
    let at = asn1_time(now)?;
    for (i, cert) in certs.iter().enumerate() {
        if !crate::x509time::valid_at(cert, &at) {
            return Err(TdxError::PckCertificateExpired { cert: name_at(i) }.into());
        }
    }
    let leaf = certs
        .first()
        .ok_or_else(|| TdxError::PckChainMalformed("empty chain".into()))?;
    let leaf_key = leaf
        .public_key()
        .map_err(|e| TdxError::PckChainMalformed(format!("PCK leaf public key unreadable: {e}")))?;
    Ok(PckChain { leaf_key })
}

pub(crate) fn unix_secs(now: SystemTime) -> Result<u64, VerifyError> {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| VerifyError::Malformed("verification time is before 1970".into()))
}

fn asn1_time(now: SystemTime) -> Result<Asn1Time, VerifyError> {
    unix_secs(now)?
        .try_into()
        .ok()
        .and_then(|t| Asn1Time::from_unix(t).ok())
        .ok_or_else(|| VerifyError::Malformed("verification time out of range".into()))
}
