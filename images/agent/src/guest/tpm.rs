//! The boot measurements a vTPM holds, logged once at boot. PCR values are public (a verifier
//! receives them in every quote), and having them on the console is how an operator finds out
//! why a policy's pinned PCRs (docs/image.md, "Expected values per platform") do not match: the
//! UKI's Authenticode digest lands in PCR 4, systemd-stub's section measurements in PCR 11.

use std::path::Path;

/// Where Linux (≥ 5.12) exposes the SHA-256 bank of the first TPM.
pub(crate) const PCR_SHA256: &str = "/sys/class/tpm/tpm0/pcr-sha256";
/// The PCRs the image's expected values cover.
pub(crate) const LOGGED: [u32; 4] = [4, 7, 11, 12];

/// Reads `LOGGED` from `dir`: `None` without a TPM (direct-boot QEMU), otherwise each PCR's hex
/// value or why it could not be read.
pub(crate) fn read(dir: &Path) -> Option<Vec<(u32, Result<String, String>)>> {
    if !dir.is_dir() {
        return None;
    }
    Some(
        LOGGED
            .iter()
            .map(|i| {
                let v = std::fs::read_to_string(dir.join(i.to_string()))
                    .map(|s| s.trim().to_ascii_lowercase())
                    .map_err(|e| e.to_string());
                (*i, v)
            })
            .collect(),
    )
}

/// Logs the PCRs when there is a TPM.
pub(crate) fn log_pcrs() {
    let Some(pcrs) = read(Path::new(PCR_SHA256)) else {
        tracing::info!("no TPM: no PCRs to report");
        return;
    };
    for (index, value) in pcrs {
        match value {
            Ok(v) => tracing::info!(pcr = index, sha256 = %v, "TPM PCR"),
            Err(e) => tracing::warn!(pcr = index, error = %e, "TPM PCR unreadable"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_the_logged_pcrs_and_reports_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&dir.path().join("none")).is_none());
        std::fs::write(dir.path().join("4"), "ABCD\n").unwrap();
        let got = read(dir.path()).unwrap();
        assert_eq!(got[0], (4, Ok("abcd".to_string())));
        assert!(got[1].1.is_err(), "PCR 7 is missing");
    }
}
