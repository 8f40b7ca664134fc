//! The simulated DCAP PKI, shaped like Intel's (ECDSA P-256, ECDSA-SHA256 throughout, the only
//! algorithm dcap-qvl accepts): a self-signed root CA, a PCK platform CA and a PCK leaf carrying
//! the SGX extension (OID 1.2.840.113741.1.13.1), a TCB signing certificate issued directly by
//! the root, and CRLs for the root and the PCK CA. Every name says plainly that it is not Intel.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509Crl, X509CrlBuilder, X509Extension, X509Name, X509};

use crate::sim::ca::Identity;
use crate::sim::tdx::der;
use crate::tdx::roots::SIMULATED_SGX_ROOT_CN;

/// Subject CN of the simulated PCK platform CA.
pub(crate) const PCK_CA_CN: &str = "ConfidentialDVM SIMULATED SGX PCK Platform CA";
/// Subject CN of the simulated PCK leaf.
pub(crate) const PCK_CN: &str = "ConfidentialDVM SIMULATED SGX PCK Certificate";
/// Subject CN of the simulated TCB (and QE identity) signing certificate.
pub(crate) const TCB_SIGNER_CN: &str = "ConfidentialDVM SIMULATED SGX TCB Signing";

const DAY: i64 = 86_400;
const VALIDITY_DAYS: i64 = 3650;

/// The platform the simulated PCK certificate describes (what the TCB info must match).
pub(crate) struct Platform {
    /// FMSPC: the platform model.
    pub fmspc: [u8; 6],
    /// PCE-ID.
    pub pce_id: [u8; 2],
    /// CPUSVN: the 16 SGX TCB components.
    pub cpu_svn: [u8; 16],
    /// PCESVN.
    pub pce_svn: u16,
}

/// The one simulated platform. Its FMSPC is no Intel platform model's (Intel's start with 00
/// and are listed by PCS), so collateral for it can never be confused with Intel's.
pub(crate) const PLATFORM: Platform = Platform {
    fmspc: [0x5E, 0x1A, 0x7D, 0xC0, 0x00, 0x00],
    pce_id: [0x00, 0x00],
    cpu_svn: [2, 2, 2, 2, 4, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0],
    pce_svn: 13,
};

/// The generated PKI: root, PCK CA, PCK leaf, TCB signer.
pub(crate) struct Pki {
    pub root: Identity,
    pub pck_ca: Identity,
    pub pck: Identity,
    pub tcb_signer: Identity,
}

/// A fresh P-256 key (the DCAP PKI's only curve).
pub(crate) fn new_key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn name(cn: &str) -> Result<X509Name, ErrorStack> {
    let mut b = X509Name::builder()?;
    // Says plainly, to anyone reading the certificate, that this is not Intel.
    b.append_entry_by_nid(
        Nid::ORGANIZATIONNAME,
        "ConfidentialDVM development - NOT INTEL",
    )?;
    b.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    Ok(b.build())
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Which certificate [`issue`] makes.
enum Role {
    Ca,
    Leaf,
}

fn issue(
    subject: &X509Name,
    subject_key: &PKey<Private>,
    issuer: Option<&Identity>,
    role: Role,
    extra: Option<X509Extension>,
) -> Result<X509, ErrorStack> {
    let now = unix_now();
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer.map_or(subject, |i| i.cert.subject_name()))?;
    b.set_pubkey(subject_key)?;
    // Backdated a day so that small clock skew between provider and client does not matter.
    let not_before = Asn1Time::from_unix((now - DAY) as _)?;
    let not_after = Asn1Time::from_unix((now + VALIDITY_DAYS * DAY) as _)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    match role {
        Role::Ca => {
            b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            // cRLSign: webpki refuses a CRL whose issuer's key usage lacks it.
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()?,
            )?;
        }
        Role::Leaf => {
            b.append_extension(BasicConstraints::new().critical().build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .non_repudiation()
                    .build()?,
            )?;
        }
    }
    // The subject key id names the key in the CRLs' authority key identifier.
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    if let Some(ext) = extra {
        b.append_extension(ext)?;
    }
    let signer = issuer.map_or(subject_key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256())?;
    Ok(b.build())
}

/// Generates a fresh PKI.
pub(crate) fn generate() -> Result<Pki, ErrorStack> {
    let root_key = new_key()?;
    let root_cert = issue(
        &name(SIMULATED_SGX_ROOT_CN)?,
        &root_key,
        None,
        Role::Ca,
        None,
    )?;
    let root = Identity {
        key: root_key,
        cert: root_cert,
    };
    let ca_key = new_key()?;
    let ca_cert = issue(&name(PCK_CA_CN)?, &ca_key, Some(&root), Role::Ca, None)?;
    let pck_ca = Identity {
        key: ca_key,
        cert: ca_cert,
    };
    let pck_key = new_key()?;
    let mut ppid = [0u8; 16];
    openssl::rand::rand_bytes(&mut ppid)?;
    let sgx = sgx_extension(&PLATFORM, &ppid)?;
    let pck_cert = issue(
        &name(PCK_CN)?,
        &pck_key,
        Some(&pck_ca),
        Role::Leaf,
        Some(sgx),
    )?;
    let pck = Identity {
        key: pck_key,
        cert: pck_cert,
    };
    let tcb_key = new_key()?;
    let tcb_cert = issue(
        &name(TCB_SIGNER_CN)?,
        &tcb_key,
        Some(&root),
        Role::Leaf,
        None,
    )?;
    Ok(Pki {
        root,
        pck_ca,
        pck,
        tcb_signer: Identity {
            key: tcb_key,
            cert: tcb_cert,
        },
    })
}

/// OID 1.2.840.113741.1.13.1 and its arcs, as DER content bytes.
const SGX_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x01, 0x0D, 0x01];

fn sgx_oid(arcs: &[u8]) -> Vec<u8> {
    let mut oid = SGX_OID.to_vec();
    oid.extend_from_slice(arcs);
    der::oid(&oid)
}

fn entry(arcs: &[u8], value: Vec<u8>) -> Vec<u8> {
    der::sequence(&[sgx_oid(arcs), value])
}

/// The SGX extension of a platform-CA PCK certificate (Intel's "PCK Certificate and CRL
/// Profile"): PPID, TCB (16 SGX components, PCESVN, CPUSVN), PCE-ID, FMSPC, SGX type, platform
/// instance id and the configuration flags. Non-critical, like Intel's.
fn sgx_extension(p: &Platform, ppid: &[u8; 16]) -> Result<X509Extension, ErrorStack> {
    let mut tcb: Vec<Vec<u8>> = (1u8..=16)
        .zip(p.cpu_svn)
        .map(|(arc, svn)| entry(&[0x02, arc], der::integer(u64::from(svn))))
        .collect();
    tcb.push(entry(&[0x02, 17], der::integer(u64::from(p.pce_svn))));
    tcb.push(entry(&[0x02, 18], der::octet_string(&p.cpu_svn)));
    let config = der::sequence(&[
        entry(&[0x07, 0x01], der::boolean(false)),
        entry(&[0x07, 0x02], der::boolean(true)),
        entry(&[0x07, 0x03], der::boolean(true)),
    ]);
    let mut instance = [0u8; 16];
    openssl::rand::rand_bytes(&mut instance)?;
    let value = der::sequence(&[
        entry(&[0x01], der::octet_string(ppid)),
        entry(&[0x02], der::sequence(&tcb)),
        entry(&[0x03], der::octet_string(&p.pce_id)),
        entry(&[0x04], der::octet_string(&p.fmspc)),
        // SGX type: 1 = Scalable (what TDX platforms report).
        entry(&[0x05], der::enumerated(1)),
        entry(&[0x06], der::octet_string(&instance)),
        entry(&[0x07], config),
    ]);
    extension("1.2.840.113741.1.13.1", &value)
}

/// An empty CRL (v2, with CRL number and authority key identifier) by `issuer`, valid from a
/// day before `now` until `next_update`.
pub(crate) fn crl(issuer: &Identity, now: i64, next_update: i64) -> Result<X509Crl, ErrorStack> {
    let mut b = X509CrlBuilder::new()?;
    b.set_issuer_name(issuer.cert.subject_name())?;
    let last = Asn1Time::from_unix((now - DAY) as _)?;
    let next = Asn1Time::from_unix(next_update as _)?;
    b.set_last_update(&last)?;
    b.set_next_update(&next)?;
    let key_id = issuer
        .cert
        .subject_key_id()
        .map(|k| k.as_slice().to_vec())
        .unwrap_or_default();
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
    let aki = der::tlv(0x30, &der::tlv(0x80, &key_id));
    b.append_extension(extension("2.5.29.35", &aki)?)?;
    // A CRL number that increases like a real CA's: minutes since 1970 (fits the 4 bytes
    // dcap-qvl reads for centuries).
    let number = der::integer(u64::try_from(now / 60).unwrap_or(0));
    b.append_extension(extension("2.5.29.20", &number)?)?;
    b.sign(&issuer.key, MessageDigest::sha256())?;
    b.build()
}

/// A non-critical extension with DER value `value`.
fn extension(oid: &str, value: &[u8]) -> Result<X509Extension, ErrorStack> {
    let oid = Asn1Object::from_str(oid)?;
    let value = Asn1OctetString::new_from_bytes(value)?;
    X509Extension::new_from_der(&oid, false, &value)
}
