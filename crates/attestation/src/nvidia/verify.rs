//! The GPU verifier: each GPU's evidence + the expected nonce (from the CPU evidence's report
//! data, or given for standalone verification) + the `gpu` policy + time → checks, or the first
//! failed one. The order is fixed (docs/attestation.md, "NVIDIA GPUs") so each failure is reported
//! precisely.

use std::time::SystemTime;

use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::sha::sha384;
use openssl::x509::X509;

use super::chain::{common_name, verify_chain, VerifiedChain};
use super::spdm::{GpuReport, NONCE_LEN, SIGNATURE_LEN};
use super::{DeviceClass, GpuError, GpuEvidence, GpuPolicy};
use crate::Check;

/// The nonce every GPU must have signed, and where it comes from (for the check's detail).
pub(crate) struct Nonce {
    /// The 32 bytes.
    pub value: [u8; NONCE_LEN],
    /// E.g. `the first half of the expected report data`.
    pub source: &'static str,
}

/// Collects the checks that passed, in order, each named `gpu<N>-<step>`.
struct Log<'a> {
    gpu: usize,
    checks: &'a mut Vec<Check>,
}

impl Log<'_> {
    fn pass(&mut self, step: &str, detail: impl Into<String>) {
        self.checks.push(Check {
            name: format!("gpu{}-{step}", self.gpu),
            detail: detail.into(),
        });
    }
}

/// Verifies each GPU (its evidence and the architecture its file declared, if any) in order,
/// then that no device is presented twice.
pub(crate) fn verify_all(
    gpus: &[(&GpuEvidence, Option<&str>)],
    nonce: &Nonce,
    policy: &GpuPolicy,
    now: SystemTime,
) -> Result<Vec<Check>, GpuError> {
    let mut checks = Vec::new();
    let mut leaves: Vec<&[u8]> = Vec::new();
    for (gpu, &(ev, arch)) in gpus.iter().enumerate() {
        let mut log = Log {
            gpu,
            checks: &mut checks,
        };
        verify_one(gpu, ev, arch, nonce, policy, now, &mut log)?;
        // verify_one succeeded, so the chain has a leaf.
        let leaf = ev.certs.first().map(|c| c.0.as_slice()).unwrap_or_default();
        if let Some(first) = leaves.iter().position(|l| *l == leaf) {
            return Err(GpuError::Duplicate { first, second: gpu });
        }
        leaves.push(leaf);
    }
    Ok(checks)
}

fn verify_one(
    gpu: usize,
    ev: &GpuEvidence,
    arch: Option<&str>,
    nonce: &Nonce,
    policy: &GpuPolicy,
    now: SystemTime,
    log: &mut Log<'_>,
) -> Result<(), GpuError> {
    log.pass("device", check_device(gpu, ev, arch)?);

    let report = GpuReport::parse(&ev.report).map_err(|e| GpuError::Malformed {
        gpu,
        reason: e.to_string(),
    })?;
    log.pass(
        "report",
        format!(
            "SPDM 1.1 GET_MEASUREMENTS + MEASUREMENTS, {} blocks, {} bytes signed{}",
            report.blocks.len(),
            report.signed_len,
            if report.trailing > 0 {
                format!(", {} unsigned trailing byte(s) ignored", report.trailing)
            } else {
                String::new()
            }
        ),
    );

    let chain = verify_chain(gpu, &ev.certs, &policy.simulated_roots, now)?;
    log.pass("chain", chain.path.clone());
    log.pass("validity", chain.validity.clone());
    log.pass(
        "leaf",
        format!(
            "{} is the attestation leaf, FWID {}",
            chain.leaf_label,
            hex::encode(chain.leaf_fwid)
        ),
    );

    verify_signature(gpu, &report, &ev.report, &chain)?;
    log.pass(
        "signature",
        format!(
            "ECDSA P-384/SHA-384 over request ‖ response (bytes 0..{}) verifies with {}",
            report.signed_len, chain.leaf_label
        ),
    );

    let reported = report.fwid_hex();
    let certified = hex::encode(chain.leaf_fwid);
    if reported.as_deref() != Some(certified.as_str()) {
        return Err(GpuError::FwidMismatch {
            gpu,
            certificate: certified,
            report: reported.unwrap_or_else(|| "absent".into()),
        });
    }
    log.pass(
        "fwid",
        "the report's FWID equals the leaf certificate's".to_string(),
    );

    if report.request.nonce != nonce.value {
        return Err(GpuError::NonceMismatch {
            gpu,
            expected: hex::encode(nonce.value),
            found: hex::encode(report.request.nonce),
        });
    }
    log.pass(
        "nonce",
        format!("SPDM request nonce equals {}", nonce.source),
    );

    check_policy(gpu, &report, policy, log)
}

/// The device class, before any other check (docs/attestation.md, "Device classes"): the declared
/// `arch`, if any, then the chip name in the leaf certificate must both say Hopper GPU. A chain too
/// short to hold a device certificate and the root, or a leaf that does not parse, is left to the
/// chain checks, which refuse it: an accepted device has always passed this check.
fn check_device(gpu: usize, ev: &GpuEvidence, arch: Option<&str>) -> Result<String, GpuError> {
    let declared = match arch {
        Some(arch) => {
            let class = DeviceClass::from_arch(arch);
            if !class.is_supported() {
                return Err(GpuError::UnsupportedDeviceClass {
                    gpu,
                    found: class,
                    indicator: format!("the evidence file declares arch {arch:?}"),
                });
            }
            format!("; the file declares arch {arch:?}")
        }
        None => String::new(),
    };
    let leaf = match ev.certs.as_slice() {
        [leaf, _, ..] => X509::from_der(&leaf.0).ok(),
        _ => None,
    };
    let Some(leaf) = leaf else {
        return Ok(format!(
            "no readable leaf certificate to name the device{declared} (the chain checks decide)"
        ));
    };
    let name = common_name(&leaf);
    let class = DeviceClass::from_certificate_name(&name);
    if !class.is_supported() {
        return Err(GpuError::UnsupportedDeviceClass {
            gpu,
            found: class,
            indicator: format!("leaf certificate {name:?}"),
        });
    }
    Ok(format!("{class}: leaf certificate `{name}`{declared}"))
}

fn verify_signature(
    gpu: usize,
    report: &GpuReport,
    bytes: &[u8],
    chain: &VerifiedChain,
) -> Result<(), GpuError> {
    let bad_key = |reason: String| GpuError::BadCertificate {
        gpu,
        cert: chain.leaf_label.clone(),
        reason,
    };
    let key = chain
        .leaf_key
        .ec_key()
        .map_err(|e| bad_key(format!("not an EC key ({e})")))?;
    if key.group().curve_name() != Some(Nid::SECP384R1) {
        return Err(bad_key("not a P-384 key".into()));
    }
    let signed = report
        .signed_bytes(bytes)
        .ok_or(GpuError::SignatureInvalid { gpu })?;
    let (r, s) = report.signature.split_at(SIGNATURE_LEN / 2);
    let sig = BigNum::from_slice(r)
        .and_then(|r| BigNum::from_slice(s).map(|s| (r, s)))
        .and_then(|(r, s)| EcdsaSig::from_private_components(r, s))
        .map_err(|_| GpuError::SignatureInvalid { gpu })?;
    match sig.verify(&sha384(signed), &key) {
        Ok(true) => Ok(()),
        _ => Err(GpuError::SignatureInvalid { gpu }),
    }
}

/// Measurements and versions against the policy, in that order.
fn check_policy(
    gpu: usize,
    report: &GpuReport,
    policy: &GpuPolicy,
    log: &mut Log<'_>,
) -> Result<(), GpuError> {
    if policy.measurements.is_empty() {
        log.pass(
            "measurements",
            format!(
                "{} measurements NOT judged: the policy lists none (no RIM comparison)",
                report.blocks.len()
            ),
        );
    } else {
        for allowed in &policy.measurements {
            let index = allowed.index;
            let value = report
                .measurement(index)
                .ok_or(GpuError::MeasurementMissing { gpu, index })?;
            let ok = allowed
                .values
                .iter()
                .any(|v| hex::decode(v.trim()).ok().as_deref() == Some(value));
            if !ok {
                return Err(GpuError::MeasurementNotAllowed {
                    gpu,
                    index,
                    found: hex::encode(value),
                });
            }
        }
        let sources: Vec<String> = policy
            .measurements
            .iter()
            .map(|m| format!("{} ({})", m.index, m.source))
            .collect();
        log.pass(
            "measurements",
            format!(
                "{} of {} indices match the policy: {}; the others are not judged",
                policy.measurements.len(),
                report.blocks.len(),
                sources.join(", ")
            ),
        );
    }

    let driver = report.driver_version();
    let vbios = report.vbios_version();
    for (what, found, allowed) in [
        ("driver version", &driver, &policy.driver_versions),
        ("VBIOS version", &vbios, &policy.vbios_versions),
    ] {
        if allowed.is_empty() {
            continue;
        }
        if !found.as_ref().is_some_and(|f| allowed.contains(f)) {
            return Err(GpuError::VersionNotAllowed {
                gpu,
                what,
                found: found.clone().unwrap_or_else(|| "absent".into()),
            });
        }
    }
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".into());
    let judged = |list: &Vec<String>| {
        if list.is_empty() {
            "not checked"
        } else {
            "allowed by the policy"
        }
    };
    log.pass(
        "versions",
        format!(
            "driver {} ({}), VBIOS {} ({}){}",
            shown(&driver),
            judged(&policy.driver_versions),
            shown(&vbios),
            judged(&policy.vbios_versions),
            report
                .feature_flag()
                .map(|f| format!(", mode {f}"))
                .unwrap_or_default()
        ),
    );
    Ok(())
}
