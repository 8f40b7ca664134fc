//! Key and certificate generation for the simulated ARK → ASK → VCEK chain (ECDSA P-384,
//! ECDSA-SHA384 signatures), shaped like AMD's: CA certificates for ARK and ASK, a leaf VCEK.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509Name, X509};

use crate::snp::SIMULATED_ARK_CN;

/// Subject CN of the simulated ASK.
pub(crate) const SIM_ASK_CN: &str = "CDVM-SIMULATED-ASK";
/// Subject CN of the simulated VCEK.
pub(crate) const SIM_VCEK_CN: &str = "CDVM-SIMULATED-VCEK";

const DAY: i64 = 86_400;
const VALIDITY_DAYS: i64 = 3650;

/// A key with its certificate.
#[derive(Debug)]
pub(crate) struct Identity {
    pub key: PKey<Private>,
    pub cert: X509,
}

/// Generates a fresh chain: ARK (self-signed), ASK, VCEK.
pub(crate) fn generate_chain() -> Result<[Identity; 3], ErrorStack> {
    let ark_key = new_key()?;
    let ark_name = name(SIMULATED_ARK_CN)?;
    let ark = issue(&ark_name, &ark_key, &ark_name, &ark_key, true)?;
    let ask_key = new_key()?;
    let ask_name = name(SIM_ASK_CN)?;
    let ask = issue(&ask_name, &ask_key, &ark_name, &ark_key, true)?;
    let vcek_key = new_key()?;
    let vcek = issue(&name(SIM_VCEK_CN)?, &vcek_key, &ask_name, &ask_key, false)?;
    Ok([
        Identity {
            key: ark_key,
            cert: ark,
        },
        Identity {
            key: ask_key,
            cert: ask,
        },
        Identity {
            key: vcek_key,
            cert: vcek,
        },
    ])
}

fn new_key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::SECP384R1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn name(cn: &str) -> Result<X509Name, ErrorStack> {
    let mut b = X509Name::builder()?;
    // Says plainly, to anyone reading the certificate, that this is not AMD.
    b.append_entry_by_nid(
        Nid::ORGANIZATIONNAME,
        "ConfidentialDVM development - NOT AMD",
    )?;
    b.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    Ok(b.build())
}

fn issue(
    subject: &X509Name,
    subject_key: &PKey<Private>,
    issuer: &X509Name,
    issuer_key: &PKey<Private>,
    ca: bool,
) -> Result<X509, ErrorStack> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer)?;
    b.set_pubkey(subject_key)?;
    // Backdated a day so that small clock skew between provider and client does not matter.
    let not_before = Asn1Time::from_unix((now - DAY) as _)?;
    let not_after = Asn1Time::from_unix((now + VALIDITY_DAYS * DAY) as _)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
    } else {
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    }
    b.sign(issuer_key, MessageDigest::sha384())?;
    Ok(b.build())
}
