//! The GPU certificate chain, leaf first: `GH100 A01 GSP FMC LF` → `GH100 A01 GSP BROM` →
//! `NVIDIA GH100 Provisioner ICA 1` → `NVIDIA GH100 Identity` → `NVIDIA Device Identity CA`.
//! The root must be the pinned one; then the X.509 path as a whole (OpenSSL, which checks every
//! link's signature), each validity period and the leaf's role. A refused path is explained by
//! checking each link and validity period in order (docs/attestation.md, GPU steps).

use std::cmp::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509Ref, X509StoreContext, X509};
use sha2::{Digest, Sha256};

use super::der;
use super::roots::{device_identity_ca, device_identity_ca_der};
use super::{GpuCert, GpuError};

/// A chain whose checks passed.
#[derive(Debug)]
pub(crate) struct VerifiedChain {
    /// The leaf's public key (signs the report).
    pub leaf_key: PKey<Public>,
    /// The leaf's label (its CN).
    pub leaf_label: String,
    /// The FWID in the leaf's DICE TcbInfo extension.
    pub leaf_fwid: [u8; der::FWID_LEN],
    /// E.g. `NVIDIA Device Identity CA → … → GH100 A01 GSP FMC LF`.
    pub path: String,
    /// The validity check's summary.
    pub validity: String,
}

/// The subject CN (empty if absent or not UTF-8).
pub(crate) fn common_name(cert: &X509Ref) -> String {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_default()
}

fn label(index: usize, cert: &X509Ref) -> String {
    match common_name(cert) {
        cn if cn.is_empty() => format!("certificate #{index}"),
        cn => cn,
    }
}

/// Runs the chain checks (docs/attestation.md, GPU steps 6–12) for GPU number `gpu`. The root
/// must be NVIDIA's pinned one, or (development policies only) a certificate whose DER has one of
/// the SHA-256s in `simulated_roots`.
pub(crate) fn verify_chain(
    gpu: usize,
    certs: &[GpuCert],
    simulated_roots: &[String],
    now: SystemTime,
) -> Result<VerifiedChain, GpuError> {
    if certs.len() < 2 {
        return Err(GpuError::ChainIncomplete {
            gpu,
            found: certs.len(),
        });
    }
    let parsed = certs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            X509::from_der(&c.0).map_err(|e| GpuError::BadCertificate {
                gpu,
                cert: format!("certificate #{i}"),
                reason: format!("not a DER X.509 certificate ({e})"),
            })
        })
        .collect::<Result<Vec<X509>, GpuError>>()?;
    let labels: Vec<String> = parsed
        .iter()
        .enumerate()
        .map(|(i, c)| label(i, c))
        .collect();
    let (Some(root), Some(root_der), Some(root_label)) =
        (parsed.last(), certs.last(), labels.last())
    else {
        return Err(GpuError::ChainIncomplete { gpu, found: 0 });
    };

    // The root: byte-for-byte the pinned NVIDIA Device Identity CA, or a simulated root the
    // (development) policy names by fingerprint.
    let pinned = device_identity_ca_der();
    let fingerprint = hex::encode(Sha256::digest(&root_der.0));
    let (anchor, simulated) = if pinned.is_some() && pinned == Some(root_der.0.as_slice()) {
        (device_identity_ca(), false)
    } else if simulated_roots
        .iter()
        .any(|r| r.eq_ignore_ascii_case(&fingerprint))
    {
        (Some(root), true)
    } else {
        return Err(GpuError::UntrustedRoot {
            gpu,
            cert: root_label.clone(),
            fingerprint,
        });
    };
    let Some(anchor) = anchor else {
        return Err(GpuError::UntrustedRoot {
            gpu,
            cert: root_label.clone(),
            fingerprint,
        });
    };

    // OpenSSL's path validation first: it checks every link's name and signature as well as the
    // constraints. Only when it refuses are the links and validity periods checked one by one,
    // in order, to name the precise failure (its own reason stands if they all pass). The
    // success path so verifies each signature once, not twice. The pinned root's
    // self-signature is not re-checked per report: the root is compared byte for byte above,
    // and a unit test verifies that it signs itself.
    let path = check_path(gpu, &parsed, anchor, now);
    if let Err(rejected) = path {
        for (i, pair) in parsed.windows(2).enumerate() {
            if let [cert, issuer] = pair {
                check_link(gpu, cert, issuer, &labels, i)?;
            }
        }
        check_link(gpu, root, root, &labels, parsed.len() - 1)?;
        check_validity(gpu, &parsed, &labels, now)?;
        return Err(rejected);
    }
    let validity = check_validity(gpu, &parsed, &labels, now)?;

    let (leaf, leaf_label) = match (parsed.first(), labels.first()) {
        (Some(c), Some(l)) => (c, l.clone()),
        _ => return Err(GpuError::ChainIncomplete { gpu, found: 0 }),
    };
    let leaf_fwid = check_leaf(gpu, &certs[0].0, &leaf_label)?;
    let leaf_key = leaf.public_key().map_err(|e| GpuError::BadCertificate {
        gpu,
        cert: leaf_label.clone(),
        reason: format!("unreadable public key ({e})"),
    })?;
    let mut names: Vec<&str> = labels.iter().map(String::as_str).collect();
    names.reverse();
    let mut path = names.join(" → ");
    if simulated {
        path.push_str(&format!(
            " (SIMULATED root sha256 {fingerprint}, trusted only by a development policy)"
        ));
    }
    Ok(VerifiedChain {
        leaf_key,
        leaf_label,
        leaf_fwid,
        path,
        validity,
    })
}

/// `cert` names `issuer` as its issuer and carries its valid signature.
fn check_link(
    gpu: usize,
    cert: &X509Ref,
    issuer: &X509Ref,
    labels: &[String],
    index: usize,
) -> Result<(), GpuError> {
    let name = |i: usize| {
        labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("certificate #{i}"))
    };
    let issuer_index = (index + 1).min(labels.len().saturating_sub(1));
    let key = issuer.public_key().map_err(|e| GpuError::BadCertificate {
        gpu,
        cert: name(issuer_index),
        reason: format!("unreadable public key ({e})"),
    })?;
    let names_match = matches!(
        cert.issuer_name().try_cmp(issuer.subject_name()),
        Ok(Ordering::Equal)
    );
    let signed = cert.verify(&key).unwrap_or(false);
    if names_match && signed {
        Ok(())
    } else {
        Err(GpuError::ChainInvalid {
            gpu,
            cert: name(index),
            issuer: name(issuer_index),
        })
    }
}

fn unix_secs(now: SystemTime) -> Option<i64> {
    now.duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs()
        .try_into()
        .ok()
}

/// Each certificate, leaf to root, inside its validity period at `now`.
fn check_validity(
    gpu: usize,
    certs: &[X509],
    labels: &[String],
    now: SystemTime,
) -> Result<String, GpuError> {
    let at = unix_secs(now)
        .and_then(|t| Asn1Time::from_unix(t).ok())
        .ok_or_else(|| GpuError::Malformed {
            gpu,
            reason: "verification time out of range".into(),
        })?;
    for (cert, label) in certs.iter().zip(labels) {
        if !crate::x509time::valid_at(cert, &at) {
            return Err(GpuError::CertificateExpired {
                gpu,
                cert: label.clone(),
            });
        }
    }
    let until = certs
        .iter()
        .map(|c| c.not_after())
        .min_by(|a, b| a.compare(b).unwrap_or(Ordering::Equal))
        .map(|t| t.to_string())
        .unwrap_or_default();
    Ok(format!(
        "all {} certificates valid at the verification time (earliest end {until})",
        certs.len()
    ))
}

/// OpenSSL's RFC 5280 path validation with `root` (the pinned root, or the simulated root the
/// policy named) as the only trust anchor, at `now`: adds the basicConstraints, keyUsage and
/// path-length rules the per-link checks do not cover.
fn check_path(gpu: usize, certs: &[X509], root: &X509, now: SystemTime) -> Result<(), GpuError> {
    let rejected = |reason: String| GpuError::PathRejected { gpu, reason };
    let crypto = |e: openssl::error::ErrorStack| rejected(format!("OpenSSL failure ({e})"));
    let Some(leaf) = certs.first() else {
        return Err(rejected("no leaf".into()));
    };
    let mut store = X509StoreBuilder::new().map_err(crypto)?;
    store.add_cert(root.clone()).map_err(crypto)?;
    let mut param = X509VerifyParam::new().map_err(crypto)?;
    let secs = unix_secs(now).ok_or_else(|| rejected("verification time out of range".into()))?;
    // `time_t` is i64 here but i32 on some 32-bit targets: keep the checked conversion.
    #[allow(clippy::useless_conversion)]
    let secs = secs
        .try_into()
        .map_err(|_| rejected("verification time out of range".into()))?;
    param.set_time(secs);
    store.set_param(&param).map_err(crypto)?;
    let store = store.build();
    let mut untrusted = Stack::new().map_err(crypto)?;
    for cert in certs.iter().skip(1).take(certs.len().saturating_sub(2)) {
        untrusted.push(cert.clone()).map_err(crypto)?;
    }
    let mut ctx = X509StoreContext::new().map_err(crypto)?;
    let (ok, reason) = ctx
        .init(&store, leaf, &untrusted, |c| {
            if !c.verify_cert()? {
                return Ok((false, c.error().error_string().to_string()));
            }
            // OpenSSL may build its path from the given certificates in another order; accept
            // only the chain exactly as given, so that each adjacent pair was a verified link.
            let as_given = c.chain().is_some_and(|built| {
                built.len() == certs.len() && built.iter().zip(certs).all(|(b, g)| b == g.as_ref())
            });
            Ok((
                as_given,
                "the verified path is not the chain in the order given".to_string(),
            ))
        })
        .map_err(crypto)?;
    if ok {
        Ok(())
    } else {
        Err(rejected(reason))
    }
}

/// The leaf must be the device's attestation key: not a CA, and carrying the DICE TcbInfo
/// extension with its FWID. A chain that starts at the BROM certificate (the signing leaf
/// missing) fails here.
fn check_leaf(gpu: usize, leaf_der: &[u8], label: &str) -> Result<[u8; der::FWID_LEN], GpuError> {
    let not_leaf = |reason: &str| GpuError::NotAttestationLeaf {
        gpu,
        cert: label.to_string(),
        reason: reason.to_string(),
    };
    let exts = der::extensions(leaf_der).ok_or_else(|| GpuError::BadCertificate {
        gpu,
        cert: label.to_string(),
        reason: "unreadable extensions".into(),
    })?;
    if let Some(bc) = der::extension(&exts, der::OID_BASIC_CONSTRAINTS) {
        match der::is_ca(bc) {
            Some(false) => {}
            Some(true) => {
                return Err(not_leaf(
                    "it is a CA certificate: the signing certificate is missing from the chain",
                ))
            }
            None => return Err(not_leaf("unreadable basicConstraints")),
        }
    }
    let tcb_info = der::extension(&exts, der::OID_DICE_TCB_INFO)
        .ok_or_else(|| not_leaf("no FWID extension (2.23.133.5.4.1)"))?;
    der::fwid(tcb_info).ok_or_else(|| not_leaf("FWID extension without exactly one SHA-384 FWID"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    const CASE1: &str =
        include_str!("../../tests/fixtures/nvidia/trustee/hopper_cert_chain_case1.txt");

    fn chain() -> Vec<X509> {
        X509::stack_from_pem(CASE1.as_bytes()).unwrap()
    }

    fn pinned() -> &'static X509 {
        device_identity_ca().unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// What a report no longer re-checks: the pinned root signs itself.
    #[test]
    fn the_pinned_root_is_self_signed() {
        let root = X509::from_der(device_identity_ca_der().unwrap()).unwrap();
        let labels = vec![common_name(&root)];
        check_link(0, &root, &root, &labels, 0).unwrap();
    }

    /// The path validation is independent of the per-link checks: it has its own view of time
    /// and of the issuers, so a gap or a wrong time fails there too (defence in depth).
    #[test]
    fn path_validation_uses_the_pinned_root_and_the_given_time() {
        let certs = chain();
        check_path(0, &certs, pinned(), at(1_767_225_600)).unwrap();
        let early = check_path(0, &certs, pinned(), at(1_577_836_800)).unwrap_err();
        assert!(
            matches!(&early, GpuError::PathRejected { reason, .. } if reason.contains("not yet valid")),
            "{early}"
        );
        let mut gap = chain();
        gap.remove(2);
        assert!(matches!(
            check_path(0, &gap, pinned(), at(1_767_225_600)),
            Err(GpuError::PathRejected { .. })
        ));
        // The BROM CA as "leaf" passes path validation: the leaf-role check catches it.
        check_path(0, &certs[1..], pinned(), at(1_767_225_600)).unwrap();
        // Intermediates swapped: OpenSSL could still build a path from them, but not this one.
        let mut swapped = chain();
        swapped.swap(1, 2);
        assert!(matches!(
            check_path(0, &swapped, pinned(), at(1_767_225_600)),
            Err(GpuError::PathRejected { reason, .. }) if reason.contains("order given")
        ));
    }
}
