//! `cdvm verify --gpu FILE --nonce HEX`: GPU evidence verified on its own, not attached to CPU
//! evidence, against a nonce the user chose. Reads NVIDIA's evidence JSON (nvtrust, nvattest) or
//! GpuEvidence JSON, and prints every check per GPU as `cdvm verify` does for CPU evidence.

use std::path::Path;
use std::time::SystemTime;

use cdvm_attestation::nvidia::{
    load_gpu_policy, parse_gpu_evidence_file, verify_gpus_standalone, GpuFileFormat, NONCE_LEN,
};
use cdvm_attestation::VerifyError;
use cdvm_client::ClientError;

use crate::cli_verify::{print_refusal, usage};

/// `--nonce`: exactly 64 hex characters (the 32-byte SPDM nonce NVIDIA's tools take).
pub fn parse_nonce(text: &str) -> Result<[u8; NONCE_LEN], String> {
    let mut out = [0u8; NONCE_LEN];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| {
        format!(
            "must be exactly {} hex characters ({NONCE_LEN} bytes), got {} characters",
            2 * NONCE_LEN,
            text.trim().len()
        )
    })?;
    Ok(out)
}

/// Verifies the GPU evidence in `file` against `nonce` and the policy's GPU rules. Input
/// problems (unreadable file, bad JSON or base64, a policy without GPU rules) exit 2; a refusal
/// exits 3.
pub fn run(
    file: &Path,
    nonce: &[u8; NONCE_LEN],
    policy_path: &Path,
    now: SystemTime,
    json: bool,
) -> Result<(), ClientError> {
    let policy = load_gpu_policy(policy_path).map_err(|e| usage(e.to_string()))?;
    let text = std::fs::read_to_string(file).map_err(|source| ClientError::Io {
        path: file.display().to_string(),
        source,
    })?;
    let read = parse_gpu_evidence_file(&text)
        .map_err(|e| usage(format!("{}: not GPU evidence: {e}", file.display())))?;
    let subject = format!(
        "GPU evidence from {} ({}, {} device(s)), nonce {}",
        file.display(),
        match read.format {
            GpuFileFormat::Nvidia => "NVIDIA evidence JSON",
            GpuFileFormat::Cdvm => "GpuEvidence JSON",
        },
        read.gpus.len(),
        hex::encode(nonce)
    );
    match verify_gpus_standalone(&read.gpus, nonce, &policy.gpu, now) {
        Ok(checks) => {
            if json {
                let out = serde_json::json!({
                    "verdict": "accepted",
                    "subject": subject,
                    "policy": policy.name,
                    "checks": checks,
                });
                println!("{out:#}");
            } else {
                println!("{subject}");
                for check in &checks {
                    println!("  ✓ {}: {}", check.name, check.detail);
                }
                println!("verdict: ACCEPTED under policy `{}`", policy.name);
            }
            Ok(())
        }
        Err(e) => {
            let e = VerifyError::Gpu(e);
            if !json {
                println!("{subject}");
            }
            print_refusal(&e, &policy.name, json);
            Err(ClientError::AttestationRefused(e))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nonces() {
        let hex64 = "ab".repeat(32);
        assert_eq!(parse_nonce(&hex64).unwrap(), [0xAB; 32]);
        for bad in [
            "",
            "ab",
            &"ab".repeat(33),
            &"zz".repeat(32),
            &"a".repeat(63),
        ] {
            let err = parse_nonce(bad).unwrap_err();
            assert!(err.contains("exactly 64 hex characters"), "{bad}: {err}");
        }
    }
}
