//! VCEK ↔ report binding: the certificate must be the one for this chip (hwID == CHIP_ID) and for
//! this REPORTED_TCB (its SPL extensions). Vendor chains must carry these extensions; only a
//! policy-trusted simulated root may omit them.

use crate::snp::amd_ext::{AmdExt, AmdExtensions};
use crate::snp::fields::TcbLayout;
use crate::snp::AttestationReport;
use crate::VerifyError;

/// Checks hwID and TCB SPLs; returns a readable summary of what was compared.
pub(crate) fn check_binding(
    report: &AttestationReport,
    leaf_der: &[u8],
    leaf_role: &str,
    simulated_root: bool,
) -> Result<String, VerifyError> {
    let mismatch = VerifyError::VcekMismatch;
    let exts = AmdExtensions::from_der(leaf_der)
        .ok_or_else(|| mismatch(format!("{leaf_role} extensions are unreadable")))?;
    let hw = check_hw_id(report, &exts, leaf_role, simulated_root)?;
    let tcb = check_tcb(report, &exts, leaf_role, simulated_root)?;
    Ok(format!("{hw}; {tcb}"))
}

fn check_hw_id(
    report: &AttestationReport,
    exts: &AmdExtensions<'_>,
    role: &str,
    simulated_root: bool,
) -> Result<String, VerifyError> {
    if report.chip_id_masked() {
        return Ok("CHIP_ID masked, hwID not compared".into());
    }
    let Some(hw) = exts.hw_id() else {
        return if simulated_root {
            Ok("simulated VCEK has no hwID (skipped)".into())
        } else {
            Err(VerifyError::VcekMismatch(format!(
                "{role} lacks the {} extension",
                AmdExt::HwId.oid()
            )))
        };
    };
    // Milan/Genoa hwID is the whole 64-byte CHIP_ID; Turin's is its first 8 bytes.
    let same = match hw.len() {
        64 => hw == report.chip_id.as_slice(),
        8 => report.chip_id.starts_with(hw),
        _ => false,
    };
    if same {
        Ok(format!(
            "hwID = CHIP_ID {}…",
            hex::encode(&report.chip_id[..8])
        ))
    } else {
        Err(VerifyError::VcekMismatch(format!(
            "{role} hwID {} is not the report's CHIP_ID {}",
            hex::encode(hw),
            hex::encode(report.chip_id)
        )))
    }
}

fn check_tcb(
    report: &AttestationReport,
    exts: &AmdExtensions<'_>,
    role: &str,
    simulated_root: bool,
) -> Result<String, VerifyError> {
    let t = report.reported_tcb;
    let mut wanted = vec![
        (AmdExt::BootloaderSpl, t.bootloader),
        (AmdExt::TeeSpl, t.tee),
        (AmdExt::SnpSpl, t.snp),
        (AmdExt::MicrocodeSpl, t.microcode),
    ];
    let fmc_in_cert = exts
        .spl(AmdExt::FmcSpl)
        .map_err(|_| unreadable(role, AmdExt::FmcSpl))?;
    match (report.tcb_layout(), report.reported_fmc()) {
        (TcbLayout::Turin, Some(fmc)) => wanted.push((AmdExt::FmcSpl, fmc)),
        // A Turin certificate read against a Milan/Genoa layout would compare the wrong bytes.
        _ if fmc_in_cert.is_some() => {
            return Err(VerifyError::VcekMismatch(format!(
                "{role} is for the Turin TCB layout, the report uses the Milan/Genoa layout"
            )))
        }
        _ => {}
    }
    for (ext, reported) in wanted {
        match exts.spl(ext).map_err(|_| unreadable(role, ext))? {
            Some(v) if v == reported => {}
            Some(v) => {
                return Err(VerifyError::VcekMismatch(format!(
                    "{role} {} is {v}, the report's REPORTED_TCB has {reported}",
                    ext.oid()
                )))
            }
            None if simulated_root => {
                return Ok("simulated VCEK has no TCB extensions (skipped)".into())
            }
            None => {
                return Err(VerifyError::VcekMismatch(format!(
                    "{role} lacks the {} extension",
                    ext.oid()
                )))
            }
        }
    }
    Ok(format!("{role} TCB = REPORTED_TCB {t}"))
}

fn unreadable(role: &str, ext: AmdExt) -> VerifyError {
    VerifyError::VcekMismatch(format!("{role} {} is not a small INTEGER", ext.oid()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const REPORT: &[u8] = include_bytes!("../../tests/fixtures/snp/trustee_milan/test-report.bin");
    const VCEK: &[u8] = include_bytes!("../../tests/fixtures/snp/trustee_milan/test-vcek.der");
    const TURIN_VCEK: &[u8] =
        include_bytes!("../../tests/fixtures/snp/virtee_turin/vcek_turin.der");
    const ASK_PEM: &[u8] =
        include_bytes!("../../tests/fixtures/snp/amd_roots/virtee_milan_ask.pem");

    fn report() -> AttestationReport {
        AttestationReport::parse(REPORT).unwrap()
    }

    /// A real AMD certificate without the VCEK extensions (the ASK).
    fn no_extensions() -> Vec<u8> {
        openssl::x509::X509::from_pem(ASK_PEM)
            .unwrap()
            .to_der()
            .unwrap()
    }

    fn is_mismatch(r: Result<String, VerifyError>, needle: &str) {
        match r {
            Err(VerifyError::VcekMismatch(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn real_pair_binds() {
        let detail = check_binding(&report(), VCEK, "VCEK", false).unwrap();
        assert!(detail.contains("hwID = CHIP_ID"), "{detail}");
    }

    #[test]
    fn other_chip_id_is_a_mismatch() {
        let mut r = report();
        r.chip_id[5] ^= 1;
        is_mismatch(check_binding(&r, VCEK, "VCEK", false), "hwID");
    }

    #[test]
    fn other_reported_tcb_is_a_mismatch() {
        // trustee's negative: REPORTED_TCB.bootloader + 1 no longer matches the VCEK's blSPL.
        let mut r = report();
        r.reported_tcb.bootloader += 1;
        is_mismatch(check_binding(&r, VCEK, "VCEK", false), "blSPL");
        let mut r = report();
        r.reported_tcb.microcode = 206; // the CURRENT_TCB value: the VCEK is for REPORTED_TCB
        is_mismatch(check_binding(&r, VCEK, "VCEK", false), "ucodeSPL");
    }

    #[test]
    fn masked_chip_id_skips_only_the_hwid() {
        let mut r = report();
        r.chip_id = [0; 64];
        let detail = check_binding(&r, VCEK, "VCEK", false).unwrap();
        assert!(detail.contains("CHIP_ID masked"), "{detail}");
        r.reported_tcb.snp += 1;
        is_mismatch(check_binding(&r, VCEK, "VCEK", false), "snpSPL");
    }

    #[test]
    fn vendor_leaf_without_extensions_is_a_mismatch() {
        is_mismatch(
            check_binding(&report(), &no_extensions(), "VCEK", false),
            "lacks",
        );
        let mut r = report();
        r.chip_id = [0; 64];
        is_mismatch(check_binding(&r, &no_extensions(), "VCEK", false), "lacks");
    }

    #[test]
    fn simulated_leaf_without_extensions_is_skipped() {
        let detail = check_binding(&report(), &no_extensions(), "VCEK", true).unwrap();
        assert!(detail.contains("skipped"), "{detail}");
    }

    #[test]
    fn simulated_leaf_with_wrong_extensions_is_still_checked() {
        let mut r = report();
        r.reported_tcb.tee = 7;
        is_mismatch(check_binding(&r, VCEK, "VCEK", true), "teeSPL");
    }

    #[test]
    fn turin_vcek_against_milan_layout_is_a_mismatch() {
        let mut r = report();
        r.chip_id = [0; 64];
        is_mismatch(check_binding(&r, TURIN_VCEK, "VCEK", false), "Turin");
    }

    /// A Turin-layout report carrying exactly the Turin VCEK's hwID and SPLs
    /// (fmc=0 bl=0 tee=0 snp=0 ucode=9, hwID 1e550a8ee5cf9f4d).
    fn turin_report(fmc: u8, ucode: u8) -> AttestationReport {
        let mut b = [0u8; crate::snp::REPORT_LEN];
        b[0..4].copy_from_slice(&3u32.to_le_bytes());
        b[0x188] = 0x1A;
        b[0x180..0x188].copy_from_slice(&[fmc, 0, 0, 0, 0, 0, 0, ucode]);
        b[0x1A0..0x1A8].copy_from_slice(&hex::decode("1e550a8ee5cf9f4d").unwrap());
        AttestationReport::parse(&b).unwrap()
    }

    #[test]
    fn turin_vcek_binds_with_8_byte_hwid_and_fmc() {
        let detail = check_binding(&turin_report(0, 9), TURIN_VCEK, "VCEK", false).unwrap();
        assert!(
            detail.contains("hwID = CHIP_ID 1e550a8ee5cf9f4d"),
            "{detail}"
        );
        is_mismatch(
            check_binding(&turin_report(1, 9), TURIN_VCEK, "VCEK", false),
            "fmcSPL",
        );
        is_mismatch(
            check_binding(&turin_report(0, 10), TURIN_VCEK, "VCEK", false),
            "ucodeSPL",
        );
    }
}
