//! Persistence of the simulated chain, so its root (and thus a development policy's fingerprint)
//! stays the same across restarts. One PEM file, mode 0600: three private keys then three
//! certificates, ARK, ASK, VCEK in that order.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use openssl::pkey::PKey;
use openssl::x509::X509;

use crate::sim::ca::Identity;
use crate::sim::SimError;

/// File holding the keys and certificates.
pub const KEY_FILE: &str = "sim-sp-keys.pem";
/// The simulated ARK certificate alone, for people and tools that want to inspect the root.
pub const ARK_FILE: &str = "sim-ark.pem";

const HEADER: &str =
    "# ConfidentialDVM SIMULATED secure processor keys: development only, NOT AMD.\n";

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Serializes the chain.
fn to_pem(ids: &[Identity; 3]) -> Result<Vec<u8>, SimError> {
    let mut out = HEADER.as_bytes().to_vec();
    for id in ids {
        out.extend(id.key.private_key_to_pem_pkcs8()?);
    }
    for id in ids {
        out.extend(id.cert.to_pem()?);
    }
    Ok(out)
}

/// The PEM blocks of a text, each with its BEGIN and END lines.
pub(crate) fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
        if line.starts_with("-----END ") {
            blocks.extend(current.take());
        }
    }
    blocks
}

/// Parses and checks a stored chain: keys match certificates and each link verifies.
fn from_pem(text: &str, path: &Path) -> Result<[Identity; 3], SimError> {
    let bad = |reason: String| SimError::BadKeyStore {
        path: path.display().to_string(),
        reason,
    };
    let blocks = pem_blocks(text);
    let (keys, certs): (Vec<&String>, Vec<&String>) =
        blocks.iter().partition(|b| b.contains("PRIVATE KEY-----"));
    let (Ok::<[_; 3], _>(keys), Ok::<[_; 3], _>(certs)) = (keys.try_into(), certs.try_into())
    else {
        return Err(bad(
            "expected three private keys and three certificates".into()
        ));
    };
    let mut ids = Vec::with_capacity(3);
    for (k, c) in keys.iter().zip(certs.iter()) {
        let key = PKey::private_key_from_pem(k.as_bytes())
            .map_err(|e| bad(format!("private key: {e}")))?;
        let cert = X509::from_pem(c.as_bytes()).map_err(|e| bad(format!("certificate: {e}")))?;
        if !cert.public_key()?.public_eq(&key) {
            return Err(bad("a private key does not match its certificate".into()));
        }
        ids.push(Identity { key, cert });
    }
    let ids: [Identity; 3] = ids
        .try_into()
        .map_err(|_| bad("expected three identities".into()))?;
    let [ark, ask, vcek] = &ids;
    for (cert, issuer) in [(ark, ark), (ask, ark), (vcek, ask)] {
        if !cert.cert.verify(&issuer.key)? {
            return Err(bad("the stored chain does not verify".into()));
        }
    }
    Ok(ids)
}

/// Loads the chain from `dir`, or generates and stores a new one. Creation is race-free: the new
/// file is written aside and hard-linked into place, so a concurrent creator's chain wins whole.
pub(crate) fn load_or_create(dir: &Path) -> Result<[Identity; 3], SimError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(KEY_FILE);
    let ids = match load(&path)? {
        Some(ids) => ids,
        None => create(dir, &path)?,
    };
    write_ark(dir, &ids[0])?;
    Ok(ids)
}

fn load(path: &Path) -> Result<Option<[Identity; 3]>, SimError> {
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

fn create(dir: &Path, path: &Path) -> Result<[Identity; 3], SimError> {
    let ids = crate::sim::ca::generate_chain()?;
    let tmp = temp_path(dir, KEY_FILE);
    write_new(&tmp, &to_pem(&ids)?, 0o600)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(ids),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            load(path)?.ok_or_else(|| SimError::BadKeyStore {
                path: path.display().to_string(),
                reason: "vanished while being created".into(),
            })
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

fn write_ark(dir: &Path, ark: &Identity) -> Result<(), SimError> {
    let path = dir.join(ARK_FILE);
    let pem = ark.cert.to_pem()?;
    if fs::read(&path).ok().as_deref() == Some(pem.as_slice()) {
        return Ok(());
    }
    let tmp = temp_path(dir, ARK_FILE);
    write_new(&tmp, &pem, 0o644)?;
    fs::rename(&tmp, &path).map_err(io_err(&path))
}

pub(crate) fn temp_path(dir: &Path, name: &str) -> PathBuf {
    let mut nonce = [0u8; 8];
    // A failed RNG only makes a name collision (and thus an error) possible, never a wrong key.
    let _ = openssl::rand::rand_bytes(&mut nonce);
    dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        hex::encode(nonce)
    ))
}

pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SimError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}
