//! The HCL report Azure's paravisor writes to vTPM NV index 0x01400001: a 32-byte header, the
//! hardware report slot, then the runtime data (a 20-byte header and the runtime-claims JSON).
//!
//! Layout as in Microsoft's IGVM attestation structures (`IGVM_ATTEST_REQUEST_HEADER` /
//! `IGVM_REQUEST_DATA`), all integers little-endian. Every length is bounds-checked: any input
//! parses or is refused, never panics.

use super::AzureError;

/// `HCLA`, the header's signature.
pub const HCL_SIGNATURE: [u8; 4] = *b"HCLA";
/// Size of the HCL header (signature, version, report size, request type, status, 3 reserved).
pub const HCL_HEADER_LEN: usize = 32;
/// Size of the hardware-report slot: an SNP `ATTESTATION_REPORT`, or a TDX TDREPORT padded.
pub const HW_REPORT_LEN: usize = 1184;
/// Size of a TDX TDREPORT (the start of the hardware-report slot on TDX).
pub const TDREPORT_LEN: usize = 1024;
/// REPORTDATA in a TDREPORT (after REPORTMACSTRUCT's type, reserved, CPUSVN and two hashes).
pub const TDREPORT_REPORTDATA: std::ops::Range<usize> = 128..192;
/// MRTD in a TDREPORT (TDINFO at 512: ATTRIBUTES, XFAM, then MRTD).
pub const TDREPORT_MRTD: std::ops::Range<usize> = 528..576;
/// Size of the runtime-data header (data size, version, report type, hash type, variable size).
pub const RUNTIME_HEADER_LEN: usize = 20;
/// Runtime-data hash type SHA-256 (the only one this verifier accepts: REPORT_DATA[0..32]).
pub const HASH_TYPE_SHA256: u32 = 1;

/// Which hardware report the HCL report carries (`IGVM_REPORT_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HclReportType {
    /// AMD SEV-SNP `ATTESTATION_REPORT` (type 2).
    Snp,
    /// Intel TDX TDREPORT (type 4).
    Tdx,
}

impl HclReportType {
    fn from_u32(v: u32) -> Option<Self> {
        match v {
            2 => Some(Self::Snp),
            4 => Some(Self::Tdx),
            _ => None,
        }
    }
}

/// A parsed HCL report, borrowing from its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HclReport<'a> {
    /// Header version (1 and 2 are known).
    pub version: u32,
    /// The hardware report type (from the runtime-data header, checked against the header's).
    pub report_type: HclReportType,
    /// The hardware report: 1184 bytes (SNP) or the 1024-byte TDREPORT (TDX).
    pub hw_report: &'a [u8],
    /// The runtime-claims JSON, exactly the bytes whose SHA-256 the hardware report carries.
    pub runtime_data: &'a [u8],
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, AzureError> {
    let end = off.checked_add(4).ok_or_else(|| hcl("offset overflow"))?;
    let s = b
        .get(off..end)
        .ok_or_else(|| hcl(format!("truncated at byte {off}")))?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Ok(u32::from_le_bytes(a))
}

fn hcl(reason: impl Into<String>) -> AzureError {
    AzureError::MalformedHcl(reason.into())
}

impl<'a> HclReport<'a> {
    /// Parses and checks the structure (signature, versions, types, lengths). Bytes after the
    /// runtime data (the NV index is zero-padded) must be zero.
    pub fn parse(b: &'a [u8]) -> Result<Self, AzureError> {
        if b.get(0..4) != Some(&HCL_SIGNATURE[..]) {
            return Err(hcl("signature is not HCLA"));
        }
        let version = u32_at(b, 4)?;
        if !(1..=2).contains(&version) {
            return Err(hcl(format!("header version {version} is not 1 or 2")));
        }
        let report_size = u32_at(b, 8)? as usize;
        let request_type = u32_at(b, 12)?;
        let hw_start = HCL_HEADER_LEN;
        let rt_start = hw_start + HW_REPORT_LEN;
        let data_size = u32_at(b, rt_start)? as usize;
        let rt_version = u32_at(b, rt_start + 4)?;
        let report_type = u32_at(b, rt_start + 8)?;
        let hash_type = u32_at(b, rt_start + 12)?;
        let var_size = u32_at(b, rt_start + 16)? as usize;
        if rt_version != 1 {
            return Err(hcl(format!("runtime data version {rt_version} is not 1")));
        }
        let report_type = HclReportType::from_u32(report_type).ok_or_else(|| {
            hcl(format!(
                "report type {report_type} is neither SNP (2) nor TDX (4)"
            ))
        })?;
        // The header's request type is 2 (key release) on the reports Azure produces; it does
        // not name the hardware, so it is only required to be non-zero.
        if request_type == 0 {
            return Err(hcl("request type 0 (invalid)"));
        }
        if hash_type != HASH_TYPE_SHA256 {
            return Err(hcl(format!(
                "runtime data hash type {hash_type} is not SHA-256 (1)"
            )));
        }
        if Some(data_size) != var_size.checked_add(RUNTIME_HEADER_LEN) {
            return Err(hcl(format!(
                "runtime data size {data_size} is not 20 + variable size {var_size}"
            )));
        }
        let var_start = rt_start + RUNTIME_HEADER_LEN;
        let var_end = var_start
            .checked_add(var_size)
            .ok_or_else(|| hcl("variable data size overflows"))?;
        if Some(report_size) != rt_start.checked_add(data_size) {
            return Err(hcl(format!(
                "report size {report_size} is not 32 + 1184 + runtime data size {data_size}"
            )));
        }
        let runtime_data = b
            .get(var_start..var_end)
            .ok_or_else(|| hcl(format!("runtime data ends at {var_end}, past {}", b.len())))?;
        if let Some(i) = b[var_end..].iter().position(|&x| x != 0) {
            return Err(hcl(format!(
                "non-zero byte at {} after the runtime data",
                var_end + i
            )));
        }
        let hw_len = match report_type {
            HclReportType::Snp => HW_REPORT_LEN,
            HclReportType::Tdx => TDREPORT_LEN,
        };
        Ok(Self {
            version,
            report_type,
            hw_report: &b[hw_start..hw_start + hw_len],
            runtime_data,
        })
    }
}
