//! The cloud vTPM checks, run by the SNP verifier after the report's own checks (so the report
//! data, and with it the job key, is already bound by the CPU). Order: policy and evidence agree
//! on the binding and the cloud, AK chain to a pinned root at `now`, quote signature by the AK,
//! the quote parses, extraData = SHA-256(report data), PCR digest, PCR policy.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::hash::MessageDigest;
use openssl::pkey::Id;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509StoreContext, X509};

use super::{CloudVtpmError as E, CloudVtpmEvidence, CloudVtpmPolicy, ImageBinding, ImageIdentity};
use crate::azure::{check_pcr_digest, first_disallowed_pcr, quote_nonce, QuoteAttest};
use crate::claims::CheckLog as Log;
use crate::{Policy, ReportData};

/// Checks the evidence's vTPM part against the policy's binding; returns who vouched for the
/// image. A hardware policy refuses a vTPM part; a cloud-vtpm policy requires one.
pub(crate) fn check(
    part: Option<&CloudVtpmEvidence>,
    expected: &ReportData,
    policy: &Policy,
    now: SystemTime,
    log: &mut Log,
) -> Result<ImageIdentity, E> {
    let name = || policy.name.clone();
    let rules = match (policy.image_binding, policy.cloud_vtpm.as_ref()) {
        (ImageBinding::Hardware, _) => {
            return match part {
                Some(_) => Err(E::NotAccepted { policy: name() }),
                None => Ok(ImageIdentity::Hardware),
            };
        }
        // Policy loading refuses cloud-vtpm without its section; a hand-built policy too.
        (ImageBinding::CloudVtpm, None) => return Err(E::Missing { policy: name() }),
        (ImageBinding::CloudVtpm, Some(rules)) => rules,
    };
    let Some(ev) = part else {
        return Err(E::Missing { policy: name() });
    };
    if ev.cloud != rules.cloud {
        return Err(E::WrongCloud {
            found: ev.cloud,
            expected: rules.cloud,
            policy: name(),
        });
    }
    log.pass(
        "cloud-vtpm",
        format!(
            "policy `{}` trusts {} for image identity (image_binding: cloud-vtpm)",
            policy.name,
            rules.cloud.vtpm_name()
        ),
    );

    let ak = check_ak_chain(ev, rules, &policy.name, now)?;
    log.pass(
        "ak-chain",
        format!(
            "attestation key certificate chains ({} certificate(s)) to a root pinned in cloud_vtpm.vtpm_roots, valid at the verification time",
            ev.ak_chain.len()
        ),
    );

    let key = ak
        .public_key()
        .map_err(|e| E::AkKeyUnusable(format!("unreadable public key ({e})")))?;
    if key.id() != Id::RSA {
        return Err(E::AkKeyUnusable(format!(
            "{:?} key; the quote signature is RSASSA/SHA-256",
            key.id()
        )));
    }
    let signed = openssl::sign::Verifier::new(MessageDigest::sha256(), &key)
        .and_then(|mut v| v.verify_oneshot(&ev.quote.signature, &ev.quote.message))
        .unwrap_or(false);
    if !signed {
        return Err(E::QuoteSignatureInvalid);
    }
    let quote = QuoteAttest::parse(&ev.quote.message).map_err(|source| E::Quote { source })?;
    log.pass(
        "tpm-quote",
        format!(
            "TPMS_ATTEST quote signed (RSASSA/SHA-256) by the certified attestation key ({} bits)",
            key.bits()
        ),
    );

    let nonce = quote_nonce(expected);
    if quote.extra_data != nonce {
        return Err(E::NonceMismatch {
            expected: hex::encode(nonce),
            found: hex::encode(&quote.extra_data),
        });
    }
    log.pass(
        "tpm-nonce",
        "quote extraData = SHA-256(expected report data): fresh, and bound to the job key",
    );

    let quoted =
        check_pcr_digest(&quote, &ev.quote.pcrs).map_err(|source| E::PcrDigest { source })?;
    log.pass(
        "pcr-digest",
        format!("SHA-256 of PCRs {quoted:?} equals the quoted pcrDigest"),
    );
    if let Some((index, value)) = first_disallowed_pcr(&rules.pcrs, &quoted, &ev.quote.pcrs) {
        return Err(E::PcrNotAllowed {
            index,
            value,
            policy: name(),
        });
    }
    log.pass(
        "pcr-policy",
        format!(
            "PCRs {:?} hold allowed values: the image, as {} reports it",
            rules.pcrs.keys().collect::<Vec<_>>(),
            rules.cloud.vtpm_name()
        ),
    );
    Ok(ImageIdentity::CloudVtpm {
        cloud: rules.cloud,
        firmware_pinned: !firmware_unpinned(policy),
    })
}

/// True when the policy accepts any SNP measurement because it trusts the cloud's firmware.
pub(crate) fn firmware_unpinned(policy: &Policy) -> bool {
    policy.image_binding == ImageBinding::CloudVtpm
        && policy.measurements.is_empty()
        && policy
            .cloud_vtpm
            .as_ref()
            .is_some_and(|c| c.trust_cloud_firmware)
}

/// OpenSSL's path validation of the AK chain (leaf first) with the policy's roots as the only
/// trust anchors, at `now`. Returns the AK's certificate.
fn check_ak_chain(
    ev: &CloudVtpmEvidence,
    rules: &CloudVtpmPolicy,
    policy: &str,
    now: SystemTime,
) -> Result<X509, E> {
    let certs = ev
        .ak_chain
        .iter()
        .enumerate()
        .map(|(index, c)| {
            X509::from_der(&c.0).map_err(|e| E::AkCertificate {
                index,
                reason: format!("not a DER X.509 certificate ({e})"),
            })
        })
        .collect::<Result<Vec<X509>, E>>()?;
    let Some(leaf) = certs.first() else {
        return Err(E::AkCertificate {
            index: 0,
            reason: "the evidence carries no attestation key certificate".into(),
        });
    };
    if rules.vtpm_roots.is_empty() {
        return Err(E::NoRoots {
            policy: policy.to_string(),
        });
    }
    let untrusted = |reason: String| E::AkNotTrusted {
        reason,
        policy: policy.to_string(),
    };
    let crypto = |e: openssl::error::ErrorStack| untrusted(format!("OpenSSL failure ({e})"));
    let mut store = X509StoreBuilder::new().map_err(crypto)?;
    for pem in &rules.vtpm_roots {
        // Validated when the policy was loaded; a hand-built policy's bad root trusts nothing.
        let ders = crate::pem::certificates(pem.as_bytes())
            .map_err(|e| untrusted(format!("policy root: {e}")))?;
        for der in ders {
            let root = X509::from_der(&der).map_err(crypto)?;
            store.add_cert(root).map_err(crypto)?;
        }
    }
    let secs = now
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| untrusted("verification time out of range".into()))?;
    let mut param = X509VerifyParam::new().map_err(crypto)?;
    // `time_t` is i64 here but i32 on some 32-bit targets: keep the checked conversion.
    #[allow(clippy::useless_conversion)]
    let secs = secs
        .try_into()
        .map_err(|_| untrusted("verification time out of range".into()))?;
    param.set_time(secs);
    store.set_param(&param).map_err(crypto)?;
    let store = store.build();
    let mut chain = Stack::new().map_err(crypto)?;
    for cert in certs.iter().skip(1) {
        chain.push(cert.clone()).map_err(crypto)?;
    }
    let mut ctx = X509StoreContext::new().map_err(crypto)?;
    let (ok, reason) = ctx
        .init(&store, leaf, &chain, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error().error_string().to_string()))
        })
        .map_err(crypto)?;
    if ok {
        Ok(leaf.clone())
    } else {
        Err(untrusted(reason))
    }
}
