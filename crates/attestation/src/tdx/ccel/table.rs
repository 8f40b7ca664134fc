//! The ACPI CCEL table (Intel GHCI 1.0 §4.3.3; ACPI 6.5): where the firmware left the log.

use crate::tdx::ccel::CcelError;

/// Length of the CCEL table: the 36-byte ACPI header, CC type, CC subtype, 2 reserved bytes,
/// LAML (u64) and LASA (u64).
pub const CCEL_TABLE_LEN: usize = 56;
/// CC type of an Intel TDX guest (1 is AMD SEV).
pub const CC_TYPE_TDX: u8 = 2;

/// The parsed ACPI CCEL table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CcelTable {
    /// ACPI table revision.
    pub revision: u8,
    /// OEM id (e.g. `INTEL `).
    pub oem_id: [u8; 6],
    /// OEM table id (e.g. `EDK2    `).
    pub oem_table_id: [u8; 8],
    /// CC type: [`CC_TYPE_TDX`].
    pub cc_type: u8,
    /// CC subtype (0 for TDX).
    pub cc_subtype: u8,
    /// LAML: the log area minimum length in bytes.
    pub log_area_min_len: u64,
    /// LASA: the guest-physical start address of the log area (informational).
    pub log_area_start: u64,
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    // Callers only read inside the length checked in `parse`; zeros are never reached.
    let mut out = [0u8; N];
    if let Some(src) = at.checked_add(N).and_then(|end| bytes.get(at..end)) {
        out.copy_from_slice(src);
    }
    out
}

impl CcelTable {
    /// Parses the table (e.g. `/sys/firmware/acpi/tables/CCEL`): signature, length field equal
    /// to the input length, ACPI checksum, and CC type TDX. The table is not signed: what makes
    /// the log trustworthy is its replay against the quote's RTMRs.
    pub fn parse(bytes: &[u8]) -> Result<Self, CcelError> {
        if bytes.len() < CCEL_TABLE_LEN {
            return Err(CcelError::TableMalformed(format!(
                "{} bytes, expected {CCEL_TABLE_LEN}",
                bytes.len()
            )));
        }
        if bytes.get(..4) != Some(b"CCEL".as_slice()) {
            return Err(CcelError::TableMalformed(format!(
                "signature {:?}, expected \"CCEL\"",
                String::from_utf8_lossy(&array::<4>(bytes, 0))
            )));
        }
        let declared = u32::from_le_bytes(array(bytes, 4));
        if usize::try_from(declared).ok() != Some(bytes.len()) {
            return Err(CcelError::TableMalformed(format!(
                "length field {declared}, but {} bytes given",
                bytes.len()
            )));
        }
        // ACPI: all bytes of the table sum to zero (mod 256).
        let sum = bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
        if sum != 0 {
            return Err(CcelError::TableMalformed(format!(
                "checksum: bytes sum to {sum:#04x}, not 0"
            )));
        }
        let [revision] = array::<1>(bytes, 8);
        let [cc_type] = array::<1>(bytes, 36);
        let [cc_subtype] = array::<1>(bytes, 37);
        if cc_type != CC_TYPE_TDX {
            return Err(CcelError::NotTdx { cc_type });
        }
        Ok(Self {
            revision,
            oem_id: array(bytes, 10),
            oem_table_id: array(bytes, 16),
            cc_type,
            cc_subtype,
            log_area_min_len: u64::from_le_bytes(array(bytes, 40)),
            log_area_start: u64::from_le_bytes(array(bytes, 48)),
        })
    }

    /// Checks that `log` fits the log area this table declares: the firmware's log area is
    /// LAML bytes, so a longer "log" has bytes the firmware never wrote.
    pub fn check_log_len(&self, log: &[u8]) -> Result<(), CcelError> {
        let fits = u64::try_from(log.len()).is_ok_and(|len| len <= self.log_area_min_len);
        if fits {
            Ok(())
        } else {
            Err(CcelError::LogLargerThanArea {
                len: log.len(),
                laml: self.log_area_min_len,
            })
        }
    }
}
