//! X.509 certificates of the SEV-SNP chain, read with the pure-Rust `x509-cert` crate (RFC 5280
//! profile, strict DER) and their signatures checked with aws-lc-rs.
//!
//! Why not OpenSSL here: in a one-shot process such as `cdvm verify`, OpenSSL 3's start-up, its
//! key decoders and the DRBG its EC code seeds for blinding cost more than the verification
//! itself, and aws-lc's P-384 verify is about three times faster than OpenSSL 3.0's
//! (docs/benchmarks.md). Only the two signature algorithms an SNP chain uses are accepted:
//! RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt (AMD's ARK, ASK, ASVK, VCEK and VLEK;
//! VCEK spec §2.2) and ECDSA P-384 with SHA-384 (the simulated secure processor's chain).

use std::ops::Range;

use aws_lc_rs::signature::{
    ParsedPublicKey, ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED, RSA_PSS_2048_8192_SHA384,
};
use x509_cert::der::asn1::ObjectIdentifier as Oid;
use x509_cert::der::{Decode, Tagged};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::der::{self, TAG_INTEGER, TAG_OID, TAG_SEQUENCE};

const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
/// DER content of the SHA-384 OID (2.16.840.1.101.3.4.2.2), as RSASSA-PSS-params carry it.
const SHA384_OID_CONTENT: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
/// DER content of the MGF1 OID (1.2.840.113549.1.1.8).
const MGF1_OID_CONTENT: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08];
/// The only salt length AMD uses with SHA-384, and the only one aws-lc's PSS-SHA384 accepts.
const PSS_SALT_LEN: u8 = 48;

/// A parsed certificate and the exact bytes its issuer signed.
pub(crate) struct Cert {
    cert: Certificate,
    der: Vec<u8>,
    tbs: Range<usize>,
}

impl std::fmt::Debug for Cert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cert")
            .field("subject", &self.common_name())
            .finish_non_exhaustive()
    }
}

/// A public key usable for one of the accepted signature algorithms.
pub(crate) enum PublicKey {
    /// RSA, checked with RSASSA-PSS/SHA-384 (2048 to 8192 bits).
    Rsa(ParsedPublicKey),
    /// EC P-384, checked with ECDSA/SHA-384 over DER-encoded signatures.
    EcP384(ParsedPublicKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl PublicKey {
    fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "RSA key",
            PublicKey::EcP384(_) => "EC P-384 key",
        }
    }
}

/// Why a signature on a certificate was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SignatureError {
    /// The algorithm is not one we accept, or does not fit the issuer's key.
    Unsupported(String),
    /// The signature does not verify.
    Invalid,
}

impl Cert {
    /// Parses DER; the error says why in a few words.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, String> {
        let cert =
            Certificate::from_der(der).map_err(|e| format!("not a DER X.509 certificate ({e})"))?;
        let tbs = tbs_range(der).ok_or("not a DER X.509 certificate (no TBSCertificate)")?;
        Ok(Self {
            cert,
            der: der.to_vec(),
            tbs,
        })
    }

    /// The subject CN (empty if absent or unreadable).
    pub(crate) fn common_name(&self) -> String {
        self.cert
            .tbs_certificate()
            .subject()
            .common_name()
            .ok()
            .flatten()
            .map(String::from)
            .unwrap_or_default()
    }

    /// Whether this certificate names `issuer`'s subject as its issuer (DER equality, as
    /// RFC 5280 §7.1 permits and every AMD chain satisfies).
    pub(crate) fn names_issuer(&self, issuer: &Cert) -> bool {
        self.cert.tbs_certificate().issuer() == issuer.cert.tbs_certificate().subject()
    }

    /// Whether `unix_secs` lies within notBefore..=notAfter.
    pub(crate) fn valid_at(&self, unix_secs: u64) -> bool {
        let v = self.cert.tbs_certificate().validity();
        let from = v.not_before.to_unix_duration().as_secs();
        let until = v.not_after.to_unix_duration().as_secs();
        (from..=until).contains(&unix_secs)
    }

    /// notAfter, as `YYYY-MM-DDTHH:MM:SSZ`.
    pub(crate) fn not_after(&self) -> String {
        self.cert
            .tbs_certificate()
            .validity()
            .not_after
            .to_date_time()
            .to_string()
    }

    /// The subject public key, for checking the certificates this one issued.
    pub(crate) fn public_key(&self) -> Result<PublicKey, String> {
        let spki = self.cert.tbs_certificate().subject_public_key_info();
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or("public key is not a whole number of bytes")?;
        let oid = spki.algorithm.oid;
        if oid == RSA_ENCRYPTION || oid == RSASSA_PSS {
            ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA384, bits)
                .map(PublicKey::Rsa)
                .map_err(|e| format!("unusable RSA public key ({e})"))
        } else if self.is_ec_p384() {
            ParsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, bits)
                .map(PublicKey::EcP384)
                .map_err(|e| format!("unusable EC P-384 public key ({e})"))
        } else {
            Err(format!(
                "public key algorithm {oid} is neither RSA nor EC P-384"
            ))
        }
    }

    /// The subject key as the SNP report's signer: EC P-384, for a fixed-width R ‖ S signature
    /// (ABI spec, "Signature formats"). `None` if the key is not an EC P-384 key.
    pub(crate) fn report_signing_key(&self) -> Option<ParsedPublicKey> {
        if !self.is_ec_p384() {
            return None;
        }
        let spki = self.cert.tbs_certificate().subject_public_key_info();
        ParsedPublicKey::new(
            &ECDSA_P384_SHA384_FIXED,
            spki.subject_public_key.as_bytes()?,
        )
        .ok()
    }

    fn is_ec_p384(&self) -> bool {
        let alg = &self
            .cert
            .tbs_certificate()
            .subject_public_key_info()
            .algorithm;
        alg.oid == EC_PUBLIC_KEY
            && alg
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<Oid>().ok())
                == Some(SECP384R1)
    }

    /// Checks this certificate's signature with its issuer's key. The outer signature algorithm
    /// must equal the one inside the signed part (RFC 5280 §4.1.1.2) and fit the key.
    pub(crate) fn signed_by(&self, issuer_key: &PublicKey) -> Result<(), SignatureError> {
        let outer = self.cert.signature_algorithm();
        if outer != self.cert.tbs_certificate().signature() {
            return Err(SignatureError::Unsupported(
                "signatureAlgorithm differs from the TBSCertificate's".into(),
            ));
        }
        let signature = self
            .cert
            .signature()
            .as_bytes()
            .ok_or(SignatureError::Invalid)?;
        let tbs = self
            .der
            .get(self.tbs.clone())
            .ok_or(SignatureError::Invalid)?;
        let key = match issuer_key {
            PublicKey::Rsa(key) if outer.oid == RSASSA_PSS => {
                if !pss_sha384_params(outer) {
                    return Err(SignatureError::Unsupported(
                        "RSASSA-PSS parameters other than SHA-384, MGF1-SHA-384, salt 48".into(),
                    ));
                }
                key
            }
            PublicKey::EcP384(key)
                if outer.oid == ECDSA_WITH_SHA384 && outer.parameters.is_none() =>
            {
                key
            }
            _ => {
                return Err(SignatureError::Unsupported(format!(
                    "signature algorithm {} (with these parameters) does not fit the issuer's {}",
                    outer.oid,
                    issuer_key.kind()
                )))
            }
        };
        key.verify_sig(tbs, signature)
            .map_err(|_| SignatureError::Invalid)
    }
}

/// The byte range of the TBSCertificate element (header included) inside a certificate's DER.
fn tbs_range(der_bytes: &[u8]) -> Option<Range<usize>> {
    let (outer, after) = der::read(der_bytes)?;
    if outer.tag != TAG_SEQUENCE {
        return None;
    }
    // The outer header's length: whatever precedes the content.
    let start = der_bytes
        .len()
        .checked_sub(after.len())?
        .checked_sub(outer.content.len())?;
    let (_, after_tbs) = der::read(outer.content)?;
    let end = start + outer.content.len().checked_sub(after_tbs.len())?;
    Some(start..end)
}

/// RSASSA-PSS-params (RFC 4055 §3.1) of exactly hash SHA-384, MGF1 with SHA-384, salt length 48,
/// trailer field 1 (explicit or default). Defaults for the first three are SHA-1 based: refused.
fn pss_sha384_params(alg: &AlgorithmIdentifierOwned) -> bool {
    let Some(params) = &alg.parameters else {
        return false;
    };
    if params.tag() != x509_cert::der::Tag::Sequence {
        return false;
    }
    let mut rest = params.value();
    let mut field = |tag: u8| -> Option<&[u8]> {
        let (tlv, after) = der::read(rest)?;
        if tlv.tag != tag {
            return None;
        }
        rest = after;
        Some(tlv.content)
    };
    let hash_ok = field(0xA0).is_some_and(is_sha384_alg);
    let mgf_ok = field(0xA1).is_some_and(|c| {
        der::read_exact(c, TAG_SEQUENCE).is_some_and(|seq| {
            der::read(seq).is_some_and(|(oid, hash)| {
                oid.tag == TAG_OID && oid.content == MGF1_OID_CONTENT && is_sha384_alg(hash)
            })
        })
    });
    let salt_ok = field(0xA2)
        .and_then(|c| der::read_exact(c, TAG_INTEGER))
        .is_some_and(|n| n == [PSS_SALT_LEN]);
    if !(hash_ok && mgf_ok && salt_ok) {
        return false;
    }
    // trailerField: absent (default 1) or exactly 1, and nothing after it.
    match der::read(rest) {
        None => rest.is_empty(),
        Some((tlv, after)) => {
            tlv.tag == 0xA3
                && after.is_empty()
                && der::read_exact(tlv.content, TAG_INTEGER) == Some(&[1u8][..])
        }
    }
}

/// An AlgorithmIdentifier (one whole element) for SHA-384, with absent or NULL parameters.
fn is_sha384_alg(element: &[u8]) -> bool {
    let Some(seq) = der::read_exact(element, TAG_SEQUENCE) else {
        return false;
    };
    match der::read(seq) {
        Some((oid, params)) if oid.tag == TAG_OID && oid.content == SHA384_OID_CONTENT => {
            params.is_empty() || params == [0x05, 0x00]
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const VCEK: &[u8] = include_bytes!("../tests/fixtures/snp/trustee_milan/test-vcek.der");

    fn milan_ask() -> Cert {
        let ders = crate::snp::vcek::pinned_intermediates_der(crate::snp::AmdProduct::Milan);
        ders.iter()
            .map(|d| Cert::parse(d).unwrap())
            .find(|c| c.common_name() == "SEV-Milan")
            .unwrap()
    }

    #[test]
    fn a_real_vcek_is_signed_by_its_ask_and_a_flip_breaks_it() {
        let ask = milan_ask();
        let key = ask.public_key().unwrap();
        let vcek = Cert::parse(VCEK).unwrap();
        assert_eq!(vcek.common_name(), "SEV-VCEK");
        assert!(vcek.names_issuer(&ask));
        vcek.signed_by(&key).unwrap();
        assert!(vcek.report_signing_key().is_some());
        assert!(ask.report_signing_key().is_none(), "the ASK is RSA");

        let mut flipped = VCEK.to_vec();
        *flipped.last_mut().unwrap() ^= 1;
        let flipped = Cert::parse(&flipped).unwrap();
        assert_eq!(flipped.signed_by(&key), Err(SignatureError::Invalid));
    }

    #[test]
    fn an_rsa_signed_certificate_against_an_ec_key_is_unsupported_not_invalid() {
        let vcek = Cert::parse(VCEK).unwrap();
        let ec_key = vcek.public_key().unwrap();
        assert!(matches!(ec_key, PublicKey::EcP384(_)));
        match vcek.signed_by(&ec_key) {
            Err(SignatureError::Unsupported(reason)) => {
                assert!(reason.contains("1.2.840.113549.1.1.10") && reason.contains("EC P-384 key"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_tbs_range_is_the_second_element_header_included() {
        let r = tbs_range(VCEK).unwrap();
        assert_eq!(VCEK[r.start], TAG_SEQUENCE);
        let (_, rest) = der::read(&VCEK[r.clone()]).unwrap();
        assert!(rest.is_empty());
        assert!(tbs_range(&VCEK[..3]).is_none());
    }

    #[test]
    fn pss_parameters_other_than_sha384_salt_48_are_unsupported() {
        let vcek = Cert::parse(VCEK).unwrap();
        let alg = vcek.cert.signature_algorithm().clone();
        assert!(pss_sha384_params(&alg));
        // The salt-length INTEGER 48 (0x30) is the last content byte of [2] before any trailer.
        let params = alg.parameters.clone().unwrap();
        let mut value = params.value().to_vec();
        let salt_at = value.iter().rposition(|&b| b == PSS_SALT_LEN).unwrap();
        value[salt_at] = 32;
        let mut other = alg.clone();
        other.parameters = Some(x509_cert::der::Any::new(params.tag(), value).unwrap());
        assert!(!pss_sha384_params(&other));
        other.parameters = None;
        assert!(!pss_sha384_params(&other));
    }

    #[test]
    fn validity_bounds_are_inclusive() {
        let vcek = Cert::parse(VCEK).unwrap();
        let v = vcek.cert.tbs_certificate().validity();
        let from = v.not_before.to_unix_duration().as_secs();
        let until = v.not_after.to_unix_duration().as_secs();
        assert!(vcek.valid_at(from) && vcek.valid_at(until));
        assert!(!vcek.valid_at(from - 1) && !vcek.valid_at(until + 1));
        assert!(vcek.not_after().ends_with('Z'));
    }
}
