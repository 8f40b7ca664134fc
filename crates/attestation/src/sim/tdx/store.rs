//! Persistence of the simulated DCAP PKI, so its root (and thus a development policy's
//! fingerprint) stays the same across restarts. One PEM file, mode 0600: five private keys (root,
//! PCK CA, PCK, TCB signer, QE attestation key) then four certificates (root, PCK CA, PCK, TCB
//! signer), in that order. Same load-or-create pattern as the SEV-SNP simulator's store.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::sim::ca::Identity;
use crate::sim::store::{io_err, pem_blocks, temp_path, write_new};
use crate::sim::tdx::pki::{self, Pki};
use crate::sim::SimError;

/// File holding the simulated DCAP keys and certificates.
pub const TDX_KEY_FILE: &str = "sim-tdx-keys.pem";
/// The simulated root CA certificate alone, for people and tools that want to inspect it.
pub const TDX_ROOT_FILE: &str = "sim-tdx-root.pem";

const HEADER: &str =
    "# ConfidentialDVM SIMULATED DCAP PKI (TDX): development only, NOT INTEL. Root, PCK CA, PCK,\n\
     # TCB signer, QE attestation key.\n";

/// The stored state: the PKI and the quoting enclave's attestation key.
pub(crate) struct Stored {
    pub pki: Pki,
    pub attestation_key: PKey<Private>,
}

fn to_pem(s: &Stored) -> Result<Vec<u8>, SimError> {
    let mut out = HEADER.as_bytes().to_vec();
    let ids = [&s.pki.root, &s.pki.pck_ca, &s.pki.pck, &s.pki.tcb_signer];
    for id in ids {
        out.extend(id.key.private_key_to_pem_pkcs8()?);
    }
    out.extend(s.attestation_key.private_key_to_pem_pkcs8()?);
    for id in ids {
        out.extend(id.cert.to_pem()?);
    }
    Ok(out)
}

/// Parses and checks a stored PKI: keys match certificates and each link verifies.
fn from_pem(text: &str, path: &Path) -> Result<Stored, SimError> {
    let bad = |reason: String| SimError::BadKeyStore {
        path: path.display().to_string(),
        reason,
    };
    let blocks = pem_blocks(text);
    let (keys, certs): (Vec<&String>, Vec<&String>) =
        blocks.iter().partition(|b| b.contains("PRIVATE KEY-----"));
    let (Ok::<[_; 5], _>(keys), Ok::<[_; 4], _>(certs)) = (keys.try_into(), certs.try_into())
    else {
        return Err(bad(
            "expected five private keys and four certificates".into()
        ));
    };
    let parse_key = |k: &String| {
        PKey::private_key_from_pem(k.as_bytes()).map_err(|e| bad(format!("private key: {e}")))
    };
    let [k_root, k_ca, k_pck, k_tcb, k_att] = keys;
    let mut ids = Vec::with_capacity(4);
    for (k, c) in [k_root, k_ca, k_pck, k_tcb].iter().zip(certs.iter()) {
        let key = parse_key(k)?;
        let cert = X509::from_pem(c.as_bytes()).map_err(|e| bad(format!("certificate: {e}")))?;
        if !cert.public_key()?.public_eq(&key) {
            return Err(bad("a private key does not match its certificate".into()));
        }
        ids.push(cert_and_key(key, cert));
    }
    let Ok::<[Identity; 4], _>([root, pck_ca, pck, tcb_signer]) = ids.try_into() else {
        return Err(bad("expected four identities".into()));
    };
    for (cert, issuer) in [
        (&root, &root),
        (&pck_ca, &root),
        (&pck, &pck_ca),
        (&tcb_signer, &root),
    ] {
        if !cert.cert.verify(&issuer.key)? {
            return Err(bad("the stored chain does not verify".into()));
        }
    }
    Ok(Stored {
        pki: Pki {
            root,
            pck_ca,
            pck,
            tcb_signer,
        },
        attestation_key: parse_key(k_att)?,
    })
}

fn cert_and_key(key: PKey<Private>, cert: X509) -> Identity {
    Identity { key, cert }
}

/// Loads the PKI from `dir`, or generates and stores a new one. Creation is race-free: the new
/// file is written aside and hard-linked into place, so a concurrent creator's PKI wins whole.
pub(crate) fn load_or_create(dir: &Path) -> Result<Stored, SimError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(TDX_KEY_FILE);
    let stored = match load(&path)? {
        Some(s) => s,
        None => create(dir, &path)?,
    };
    write_root(dir, &stored.pki.root)?;
    Ok(stored)
}

fn load(path: &Path) -> Result<Option<Stored>, SimError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SimError::InsecurePermissions {
            path: path.display().to_string(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    from_pem(&text, path).map(Some)
}

fn create(dir: &Path, path: &Path) -> Result<Stored, SimError> {
    let stored = Stored {
        pki: pki::generate()?,
        attestation_key: pki::new_key()?,
    };
    let tmp = temp_path(dir, TDX_KEY_FILE);
    write_new(&tmp, &to_pem(&stored)?, 0o600)?;
    let linked = fs::hard_link(&tmp, path);
    // The temporary name is only a staging copy; a failed removal leaves a harmless file.
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(stored),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            load(path)?.ok_or_else(|| SimError::BadKeyStore {
                path: path.display().to_string(),
                reason: "vanished while being created".into(),
            })
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

fn write_root(dir: &Path, root: &Identity) -> Result<(), SimError> {
    let path = dir.join(TDX_ROOT_FILE);
    let pem = root.cert.to_pem()?;
    if fs::read(&path).ok().as_deref() == Some(pem.as_slice()) {
        return Ok(());
    }
    let tmp = temp_path(dir, TDX_ROOT_FILE);
    write_new(&tmp, &pem, 0o644)?;
    fs::rename(&tmp, &path).map_err(io_err(&path))
}
