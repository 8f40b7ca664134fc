//! An emulated GCE Shielded VM vTPM for development and tests: swtpm provisioned as GCE
//! provisions its vTPM, with the RSA attestation key's `TPMT_PUBLIC` template in NV 0x01c10001
//! and the certificate of the key that template gives in NV 0x01c10000, issued by a SIMULATED
//! "GCE AK CA" kept in the folder (a policy must pin it, as a real one pins Google's). Nothing
//! here is Google's: the certificate proves only that this simulator made the key.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::BasicConstraints;
use openssl::x509::{X509Name, X509};

use super::{NV_GCE_AK_CERT_RSA, NV_GCE_AK_TEMPLATE_RSA};
use crate::azure::paravisor_sim::{io_step, ParavisorError};
use crate::azure::swtpm::Swtpm;
use crate::azure::tpm_client::{
    SocketTransport, Tpm, TPMA_NV_NO_DA, TPMA_NV_OWNERREAD, TPMA_NV_OWNERWRITE, TPM_RH_ENDORSEMENT,
};

/// A running emulated GCE vTPM. Dropping it stops swtpm.
#[derive(Debug)]
pub struct GceVtpmSim {
    swtpm: Swtpm,
    ca_pem: String,
}

/// A certificate for `subject` with `key`, issued by `issuer` (self-signed when `None`), valid
/// from now for ten years.
fn certificate(
    subject: &str,
    key: &PKey<impl openssl::pkey::HasPublic>,
    issuer: Option<(&X509, &PKey<Private>)>,
    signer: &PKey<Private>,
    serial: u32,
) -> Result<X509, ErrorStack> {
    let mut name = X509Name::builder()?;
    name.append_entry_by_text("CN", subject)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = BigNum::from_u32(serial)?.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    match issuer {
        Some((ca, _)) => b.set_issuer_name(ca.subject_name())?,
        None => {
            b.set_issuer_name(&name)?;
            b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        }
    }
    b.set_pubkey(key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(3650)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    b.sign(issuer.map_or(signer, |(_, k)| k), MessageDigest::sha256())?;
    Ok(b.build())
}

fn openssl_err(step: &str) -> impl FnOnce(ErrorStack) -> ParavisorError + '_ {
    move |e| ParavisorError::Io {
        step: step.to_string(),
        source: std::io::Error::other(e),
    }
}

/// The simulated CA: its key and certificate, created once in `dir` and reused.
fn load_or_create_ca(dir: &Path) -> Result<(PKey<Private>, X509), ParavisorError> {
    let (key_path, cert_path) = (dir.join("gce-ak-ca.key.pem"), dir.join("gce-ak-ca.pem"));
    if let (Ok(k), Ok(c)) = (std::fs::read(&key_path), std::fs::read(&cert_path)) {
        let key = PKey::private_key_from_pem(&k).map_err(openssl_err("read the CA key"))?;
        let cert = X509::from_pem(&c).map_err(openssl_err("read the CA certificate"))?;
        return Ok((key, cert));
    }
    let step = "create the simulated GCE AK CA";
    let made = (|| {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let cert = certificate(
            "SIMULATED GCE vTPM AK CA (cdvm, not Google)",
            &key,
            None,
            &key,
            1,
        )?;
        Ok::<_, ErrorStack>((key.private_key_to_pem_pkcs8()?, cert.to_pem()?, key, cert))
    })()
    .map_err(openssl_err(step))?;
    std::fs::write(&key_path, &made.0).map_err(io_step(format!("write {}", key_path.display())))?;
    std::fs::write(&cert_path, &made.1)
        .map_err(io_step(format!("write {}", cert_path.display())))?;
    Ok((made.2, made.3))
}

/// The AK certificate (DER) for the RSA key `(n, e)`, issued by the CA.
fn ak_certificate(
    ca: &(PKey<Private>, X509),
    modulus: &[u8],
    e: u32,
) -> Result<Vec<u8>, ParavisorError> {
    (|| {
        let rsa = Rsa::from_public_components(BigNum::from_slice(modulus)?, BigNum::from_u32(e)?)?;
        let key = PKey::from_rsa(rsa)?;
        certificate(
            "SIMULATED GCE vTPM attestation key",
            &key,
            Some((&ca.1, &ca.0)),
            &ca.0,
            2,
        )?
        .to_der()
    })()
    .map_err(openssl_err("issue the simulated AK certificate"))
}

/// Defines `index` (owner read/write, no dictionary-attack lockout) sized to `data` and writes it.
fn nv_put(tpm: &mut Tpm<SocketTransport>, index: u32, data: &[u8]) -> Result<(), ParavisorError> {
    let size = u16::try_from(data.len()).map_err(|_| {
        ParavisorError::SwtpmStart(format!("{} bytes do not fit an NV index", data.len()))
    })?;
    tpm.nv_define_space(
        index,
        size,
        TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_NO_DA,
    )?;
    tpm.nv_write(index, data)?;
    Ok(())
}

impl GceVtpmSim {
    /// Starts swtpm in `dir` and, on a new state, provisions the AK template and certificate.
    pub fn start(dir: &Path) -> Result<Self, ParavisorError> {
        std::fs::create_dir_all(dir).map_err(io_step(format!("create {}", dir.display())))?;
        let swtpm = Swtpm::start(dir)?;
        let ca = load_or_create_ca(dir)?;
        let mut tpm = swtpm.tpm();
        match tpm.nv_read_public(NV_GCE_AK_CERT_RSA) {
            Ok(_) => {}
            Err(e) if e.is_missing_handle() => {
                let template = Tpm::<SocketTransport>::ak_template();
                nv_put(&mut tpm, NV_GCE_AK_TEMPLATE_RSA, &template)?;
                let ak =
                    tpm.create_primary("CreatePrimary GCE AK", TPM_RH_ENDORSEMENT, &template)?;
                let public = tpm.read_public(ak);
                tpm.flush_context(ak)?;
                let public = public?;
                let cert = ak_certificate(&ca, &public.modulus, public.public_exponent())?;
                nv_put(&mut tpm, NV_GCE_AK_CERT_RSA, &cert)?;
            }
            Err(e) => return Err(e.into()),
        }
        drop(tpm); // swtpm serves one connection at a time.
        let ca_pem =
            ca.1.to_pem()
                .ok()
                .and_then(|p| String::from_utf8(p).ok())
                .unwrap_or_default();
        Ok(Self { swtpm, ca_pem })
    }

    /// The TPM command socket a guest's transport connects to.
    pub fn socket(&self) -> PathBuf {
        self.swtpm.socket().to_path_buf()
    }

    /// A transport to the vTPM.
    pub fn transport(&self) -> SocketTransport {
        SocketTransport::unix(self.swtpm.socket())
    }

    /// The simulated AK CA's certificate (PEM), for `cloud_vtpm.vtpm_roots` of a dev policy.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Test hook: runs `f` on the TPM (e.g. to extend a PCR or overwrite an NV index).
    pub fn with_tpm<R>(&self, f: impl FnOnce(&mut Tpm<SocketTransport>) -> R) -> R {
        f(&mut self.swtpm.tpm())
    }
}
