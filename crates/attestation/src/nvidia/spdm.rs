//! The GPU's attestation report: an SPDM 1.1 `GET_MEASUREMENTS` request followed by the signed
//! `MEASUREMENTS` response (DMTF DSP0274 1.1), as NVIDIA's driver returns it for Hopper
//! confidential computing. A typed parser that never panics: every read is bounds-checked and
//! every length field is checked against what is really there.
//!
//! Layout (all integers little-endian):
//!
//! | offset | field | size |
//! |---|---|---|
//! | 0 | request: SPDMVersion (0x11), code 0xE0, Param1, Param2 | 4 |
//! | 4 | request: Nonce | 32 |
//! | 36 | request: SlotIDParam | 1 |
//! | 37 | response: SPDMVersion (0x11), code 0x60, Param1, Param2 | 4 |
//! | 41 | response: NumberOfBlocks | 1 |
//! | 42 | response: MeasurementRecordLength L1 | 3 |
//! | 45 | response: MeasurementRecord (measurement blocks) | L1 |
//! | 45+L1 | response: Nonce (the responder's) | 32 |
//! | 77+L1 | response: OpaqueLength L2 | 2 |
//! | 79+L1 | response: OpaqueData (NVIDIA type/length/value fields) | L2 |
//! | 79+L1+L2 | response: Signature (ECDSA P-384 r‖s, big-endian) | 96 |
//!
//! The signature covers SHA-384 of every byte before it (request ‖ response up to the
//! signature). One extra byte after the signature is tolerated, as trustee does: NVIDIA's own
//! sample `hopper_coco_report1` (a real H100 from a CoCo CI run) carries one trailing byte that is
//! not part of the SPDM structure. It is outside the signature, so it carries nothing trusted; it
//! is reported in [`GpuReport::trailing`]. Two or more extra bytes are refused.

use std::fmt;

/// Length of the GET_MEASUREMENTS request NVIDIA's driver sends (signature requested).
pub const REQUEST_LEN: usize = 37;
/// Length of the responder's ECDSA P-384 signature (r ‖ s, 48 bytes each).
pub const SIGNATURE_LEN: usize = 96;
/// Length of an SPDM nonce.
pub const NONCE_LEN: usize = 32;
/// SPDM version byte for 1.1, the only version Hopper firmware speaks here.
pub const SPDM_VERSION_11: u8 = 0x11;
/// Request code of GET_MEASUREMENTS.
pub const GET_MEASUREMENTS: u8 = 0xE0;
/// Response code of MEASUREMENTS.
pub const MEASUREMENTS: u8 = 0x60;
/// MeasurementSpecification bit 0: DMTF measurement blocks, the only layout defined.
pub const SPEC_DMTF: u8 = 0x01;
/// Request Param1 bit 0: the requester asked for a signed response.
pub const PARAM1_SIGNATURE_REQUESTED: u8 = 0x01;
/// Bytes tolerated after the signature (see the module documentation).
pub const MAX_TRAILING: usize = 1;

/// Why the bytes are not a GPU attestation report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} (at byte {offset})")]
pub struct SpdmError {
    /// Byte offset in the report where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub what: String,
}

/// The GET_MEASUREMENTS request, as the GPU saw it (it is covered by the signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetMeasurements {
    /// SPDMVersion (0x11).
    pub version: u8,
    /// Param1 (bit 0: signature requested).
    pub param1: u8,
    /// Param2: the measurement index requested (0xFF: all).
    pub param2: u8,
    /// The requester's nonce: this is what binds the report to a job (`ReportData::gpu_nonce`).
    pub nonce: [u8; NONCE_LEN],
    /// SlotIDParam: which certificate slot signs.
    pub slot_id: u8,
}

/// One DMTF measurement block of the measurement record.
#[derive(Clone, PartialEq, Eq)]
pub struct MeasurementBlock {
    /// Measurement index (1-based on Hopper: 1..=64).
    pub index: u8,
    /// DMTFSpecMeasurementValueType: bit 7 set = raw bit stream, clear = digest; bits 6..0 the
    /// kind (0 immutable ROM, 1 mutable firmware, 2 hardware configuration, 3 firmware
    /// configuration, 4 measurement manifest).
    pub value_type: u8,
    /// DMTFSpecMeasurementValue (on Hopper: a 48-byte SHA-384 digest).
    pub value: Vec<u8>,
}

impl fmt::Debug for MeasurementBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MeasurementBlock {{ index: {}, value_type: {:#04x}, value: {} }}",
            self.index,
            self.value_type,
            hex::encode(&self.value)
        )
    }
}

/// One NVIDIA opaque-data field (type, value) from the signed opaque data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpaqueField {
    /// The field type (see [`opaque`] for the known ones).
    pub kind: u16,
    /// The raw value.
    pub value: Vec<u8>,
}

/// NVIDIA opaque-data field types (nvtrust `OpaqueDataType`; trustee `spdm_response.rs`).
pub mod opaque {
    /// Driver version, NUL-terminated ASCII (e.g. `550.90.07`).
    pub const DRIVER_VERSION: u16 = 3;
    /// GPU info (8 bytes).
    pub const GPU_INFO: u16 = 4;
    /// VBIOS version (8 bytes; shown as `96.00.9f.00.01`).
    pub const VBIOS_VERSION: u16 = 6;
    /// NVDEC0 status (1 byte: 0xAA enabled, 0x55 disabled).
    pub const NVDEC0_STATUS: u16 = 11;
    /// Per-index measurement counts (4-byte little-endian each).
    pub const MEASUREMENT_COUNT: u16 = 12;
    /// Board id.
    pub const BOARD_ID: u16 = 14;
    /// Chip SKU, NUL-padded ASCII.
    pub const CHIP_SKU: u16 = 15;
    /// Project, NUL-padded ASCII.
    pub const PROJECT: u16 = 17;
    /// Project SKU, NUL-padded ASCII.
    pub const PROJECT_SKU: u16 = 18;
    /// FWID: SHA-384 of the firmware, equal to the FWID in the leaf certificate.
    pub const FWID: u16 = 20;
    /// Protected PCIe status (1 byte).
    pub const PROTECTED_PCIE_STATUS: u16 = 21;
    /// Version of the opaque-data layout.
    pub const OPAQUE_DATA_VERSION: u16 = 34;
    /// Feature flag (little-endian integer: 0 single-GPU passthrough, 1 multi-GPU passthrough,
    /// 2 protected PCIe).
    pub const FEATURE_FLAG: u16 = 36;
}

/// A parsed GPU attestation report (request + signed MEASUREMENTS response).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuReport {
    /// The request the GPU answered.
    pub request: GetMeasurements,
    /// Response SPDMVersion.
    pub version: u8,
    /// Response Param1.
    pub param1: u8,
    /// Response Param2 (SlotIDParam in SPDM 1.1).
    pub param2: u8,
    /// The measurement blocks, in record order; indices are unique.
    pub blocks: Vec<MeasurementBlock>,
    /// The responder's nonce (freshness from the GPU's side; not the binding).
    pub response_nonce: [u8; NONCE_LEN],
    /// The raw opaque data.
    pub opaque_data: Vec<u8>,
    /// The opaque data split into NVIDIA fields, in order; types are unique.
    pub opaque_fields: Vec<OpaqueField>,
    /// The signature, r ‖ s, big-endian.
    pub signature: [u8; SIGNATURE_LEN],
    /// How many leading bytes of the input the signature covers.
    pub signed_len: usize,
    /// Bytes after the signature (0, or 1 as in `hopper_coco_report1`); not signed.
    pub trailing: usize,
}

/// A bounds-checked reader over the report.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: impl Into<String>) -> SpdmError {
        SpdmError {
            offset: self.pos,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], SpdmError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.err("overflow"))?;
        let out = self.bytes.get(self.pos..end).ok_or_else(|| {
            self.err(format!(
                "truncated: {field} needs {n} bytes, {} left",
                self.bytes.len().saturating_sub(self.pos)
            ))
        })?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, field: &str) -> Result<u8, SpdmError> {
        Ok(self.take(1, field)?.first().copied().unwrap_or_default())
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], SpdmError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u16(&mut self, field: &str) -> Result<u16, SpdmError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    fn u24(&mut self, field: &str) -> Result<usize, SpdmError> {
        let [a, b, c] = self.array(field)?;
        Ok(usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16)
    }

    fn expect(&mut self, field: &str, want: u8) -> Result<u8, SpdmError> {
        let at = self.pos;
        let got = self.u8(field)?;
        if got != want {
            return Err(SpdmError {
                offset: at,
                what: format!("{field} is {got:#04x}, expected {want:#04x}"),
            });
        }
        Ok(got)
    }
}

impl GpuReport {
    /// Parses request ‖ response. Refuses anything but SPDM 1.1 GET_MEASUREMENTS with a signature
    /// requested, DMTF measurement blocks that exactly fill the record, well-formed NVIDIA opaque
    /// fields, and at most [`MAX_TRAILING`] bytes after the signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, SpdmError> {
        let mut r = Reader { bytes, pos: 0 };
        let request = Self::parse_request(&mut r)?;

        let version = r.expect("response SPDMVersion", SPDM_VERSION_11)?;
        r.expect("response code (MEASUREMENTS)", MEASUREMENTS)?;
        let param1 = r.u8("response Param1")?;
        let param2 = r.u8("response Param2")?;
        let number_of_blocks = r.u8("NumberOfBlocks")?;
        let record_len = r.u24("MeasurementRecordLength")?;
        let record_at = r.pos;
        let record = r.take(record_len, "MeasurementRecord")?;
        let blocks = parse_record(record, record_at, number_of_blocks)?;
        let response_nonce = r.array("response Nonce")?;
        let opaque_len = r.u16("OpaqueLength")?;
        let opaque_at = r.pos;
        let opaque_data = r.take(usize::from(opaque_len), "OpaqueData")?.to_vec();
        let opaque_fields = parse_opaque(&opaque_data, opaque_at)?;
        let signed_len = r.pos;
        let signature = r.array("Signature")?;
        let trailing = bytes.len().saturating_sub(r.pos);
        if trailing > MAX_TRAILING {
            return Err(r.err(format!(
                "{trailing} bytes after the signature (at most {MAX_TRAILING} tolerated)"
            )));
        }
        Ok(GpuReport {
            request,
            version,
            param1,
            param2,
            blocks,
            response_nonce,
            opaque_data,
            opaque_fields,
            signature,
            signed_len,
            trailing,
        })
    }

    fn parse_request(r: &mut Reader<'_>) -> Result<GetMeasurements, SpdmError> {
        let version = r.expect("request SPDMVersion", SPDM_VERSION_11)?;
        r.expect("request code (GET_MEASUREMENTS)", GET_MEASUREMENTS)?;
        let at = r.pos;
        let param1 = r.u8("request Param1")?;
        if param1 & PARAM1_SIGNATURE_REQUESTED == 0 {
            return Err(SpdmError {
                offset: at,
                what: "the request did not ask for a signature (Param1 bit 0 clear)".into(),
            });
        }
        let param2 = r.u8("request Param2")?;
        let nonce = r.array("request Nonce")?;
        let slot_id = r.u8("request SlotIDParam")?;
        debug_assert_eq!(r.pos, REQUEST_LEN);
        Ok(GetMeasurements {
            version,
            param1,
            param2,
            nonce,
            slot_id,
        })
    }

    /// The bytes the signature covers: a prefix of the `bytes` this report was parsed from.
    /// `None` if `bytes` is not that input (too short).
    pub fn signed_bytes<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        bytes.get(..self.signed_len)
    }

    /// The value of measurement block `index`, if present.
    pub fn measurement(&self, index: u8) -> Option<&[u8]> {
        self.blocks
            .iter()
            .find(|b| b.index == index)
            .map(|b| b.value.as_slice())
    }

    /// The raw value of opaque field `kind`, if present.
    pub fn opaque(&self, kind: u16) -> Option<&[u8]> {
        self.opaque_fields
            .iter()
            .find(|f| f.kind == kind)
            .map(|f| f.value.as_slice())
    }

    /// The FWID the GPU reports (opaque field 20), hex.
    pub fn fwid_hex(&self) -> Option<String> {
        self.opaque(opaque::FWID).map(hex::encode)
    }

    /// The driver version the GPU reports, e.g. `550.90.07`.
    pub fn driver_version(&self) -> Option<String> {
        self.opaque(opaque::DRIVER_VERSION).map(nul_terminated)
    }

    /// The VBIOS version, formatted as nvtrust does (`96.00.9f.00.01`): the first half of the
    /// 8 bytes reversed, then the first byte of the second half.
    pub fn vbios_version(&self) -> Option<String> {
        let raw = self.opaque(opaque::VBIOS_VERSION)?;
        let (head, tail) = raw.split_at_checked(raw.len() / 2)?;
        let mut parts: Vec<String> = head.iter().rev().map(|b| format!("{b:02x}")).collect();
        parts.push(format!("{:02x}", tail.first()?));
        Some(parts.join("."))
    }

    /// The feature flag (opaque field 36), if present: `SPT`, `MPT`, `PPCIE` or `unknown(n)`.
    pub fn feature_flag(&self) -> Option<String> {
        let raw = self.opaque(opaque::FEATURE_FLAG)?;
        if raw.len() > 8 {
            return Some(format!("unknown({})", hex::encode(raw)));
        }
        let mut le = [0u8; 8];
        le.get_mut(..raw.len())?.copy_from_slice(raw);
        Some(match u64::from_le_bytes(le) {
            0 => "SPT".to_string(),
            1 => "MPT".to_string(),
            2 => "PPCIE".to_string(),
            n => format!("unknown({n})"),
        })
    }
}

fn nul_terminated(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned()
}

/// Splits the measurement record into exactly `count` DMTF blocks that fill it.
fn parse_record(record: &[u8], base: usize, count: u8) -> Result<Vec<MeasurementBlock>, SpdmError> {
    let mut r = Reader {
        bytes: record,
        pos: 0,
    };
    let at = |r: &Reader<'_>| base + r.pos;
    let mut blocks: Vec<MeasurementBlock> = Vec::with_capacity(usize::from(count));
    for n in 0..count {
        let start = at(&r);
        let index = r
            .u8("measurement block Index")
            .map_err(|e| shift(e, base))?;
        let spec = r
            .u8("MeasurementSpecification")
            .map_err(|e| shift(e, base))?;
        if spec != SPEC_DMTF {
            return Err(SpdmError {
                offset: start + 1,
                what: format!(
                    "block {n} (index {index}): MeasurementSpecification {spec:#04x} is not DMTF"
                ),
            });
        }
        let size = r.u16("MeasurementSize").map_err(|e| shift(e, base))?;
        let body = r
            .take(usize::from(size), "Measurement")
            .map_err(|e| shift(e, base))?;
        let mut m = Reader {
            bytes: body,
            pos: 0,
        };
        let inner = |e: SpdmError| shift(e, start + 4);
        let value_type = m.u8("DMTFSpecMeasurementValueType").map_err(inner)?;
        let value_size = m.u16("DMTFSpecMeasurementValueSize").map_err(inner)?;
        let value = m
            .take(usize::from(value_size), "DMTF value")
            .map_err(inner)?;
        if m.pos != body.len() {
            return Err(SpdmError {
                offset: start + 4 + m.pos,
                what: format!(
                    "block {n} (index {index}): MeasurementSize {size} but the DMTF value ends \
                     after {} bytes",
                    m.pos
                ),
            });
        }
        if blocks.iter().any(|b| b.index == index) {
            return Err(SpdmError {
                offset: start,
                what: format!("measurement index {index} appears twice"),
            });
        }
        blocks.push(MeasurementBlock {
            index,
            value_type,
            value: value.to_vec(),
        });
    }
    if r.pos != record.len() {
        return Err(SpdmError {
            offset: at(&r),
            what: format!(
                "{} bytes of MeasurementRecord left after {count} blocks",
                record.len() - r.pos
            ),
        });
    }
    Ok(blocks)
}

/// Splits NVIDIA opaque data into (type u16, length u16, value) fields that fill it exactly.
/// Unknown types are kept (newer firmware adds fields; they are signed like the rest).
fn parse_opaque(data: &[u8], base: usize) -> Result<Vec<OpaqueField>, SpdmError> {
    let mut r = Reader {
        bytes: data,
        pos: 0,
    };
    let mut fields: Vec<OpaqueField> = Vec::new();
    while r.pos < data.len() {
        let start = base + r.pos;
        let kind = r.u16("opaque field type").map_err(|e| shift(e, base))?;
        let len = r.u16("opaque field length").map_err(|e| shift(e, base))?;
        let value = r
            .take(usize::from(len), "opaque field value")
            .map_err(|e| shift(e, base))?;
        if fields.iter().any(|f| f.kind == kind) {
            return Err(SpdmError {
                offset: start,
                what: format!("opaque field type {kind} appears twice"),
            });
        }
        fields.push(OpaqueField {
            kind,
            value: value.to_vec(),
        });
    }
    Ok(fields)
}

/// Re-bases an error from a sub-reader to an offset in the whole report.
fn shift(mut e: SpdmError, base: usize) -> SpdmError {
    e.offset = e.offset.saturating_add(base);
    e
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A minimal well-formed report: two blocks, one opaque field, zero signature.
    fn synthetic() -> Vec<u8> {
        let mut b = vec![SPDM_VERSION_11, GET_MEASUREMENTS, 0x01, 0xFF];
        b.extend([7u8; 32]);
        b.push(0);
        let mut record = Vec::new();
        for index in [1u8, 2] {
            record.extend([index, SPEC_DMTF, 7, 0, 0x01, 4, 0]);
            record.extend([index; 4]);
        }
        b.extend([SPDM_VERSION_11, MEASUREMENTS, 0, 0, 2]);
        b.extend(&(record.len() as u32).to_le_bytes()[..3]);
        b.extend(&record);
        b.extend([9u8; 32]);
        b.extend(6u16.to_le_bytes());
        b.extend(20u16.to_le_bytes());
        b.extend(2u16.to_le_bytes());
        b.extend([0xAB, 0xCD]);
        b.extend([0u8; SIGNATURE_LEN]);
        b
    }

    #[test]
    fn synthetic_report_parses() {
        let bytes = synthetic();
        let r = GpuReport::parse(&bytes).unwrap();
        assert_eq!(r.request.nonce, [7; 32]);
        assert_eq!(r.response_nonce, [9; 32]);
        assert_eq!(r.measurement(2), Some(&[2u8; 4][..]));
        assert_eq!(r.measurement(3), None);
        assert_eq!(r.fwid_hex().as_deref(), Some("abcd"));
        assert_eq!(r.signed_len, bytes.len() - SIGNATURE_LEN);
        assert_eq!(r.trailing, 0);
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = synthetic();
        for len in 0..bytes.len() {
            assert!(GpuReport::parse(&bytes[..len]).is_err(), "prefix {len}");
        }
        let mut one = bytes.clone();
        one.push(0);
        assert_eq!(GpuReport::parse(&one).unwrap().trailing, 1);
        one.push(0);
        assert!(GpuReport::parse(&one).is_err());
    }

    #[test]
    fn structural_lies_are_refused() {
        let base = synthetic();
        let block0 = REQUEST_LEN + 8;
        let cases: [(usize, u8, &str); 7] = [
            (0, 0x10, "request SPDMVersion"),
            (2, 0x00, "did not ask for a signature"),
            (REQUEST_LEN + 1, 0x61, "response code"),
            (REQUEST_LEN + 4, 3, "measurement block Index"), // 3 blocks claimed, 2 there
            (REQUEST_LEN + 4, 1, "left after 1 blocks"),
            (block0 + 1, 0x02, "not DMTF"),
            (block0 + 11, 1, "appears twice"), // second block's index := 1
        ];
        for (offset, value, want) in cases {
            let mut b = base.clone();
            b[offset] = value;
            let e = GpuReport::parse(&b).unwrap_err();
            assert!(e.what.contains(want), "{offset}: {e}");
        }
        // DMTF value shorter than the block claims.
        let mut b = base.clone();
        b[block0 + 5] = 3;
        assert!(GpuReport::parse(&b)
            .unwrap_err()
            .what
            .contains("DMTF value ends"));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        };
        let base = synthetic();
        for round in 0..2000 {
            let mut b = base.clone();
            for _ in 0..(round % 5 + 1) {
                let i = usize::from(next()) * 7 % b.len();
                b[i] = next();
            }
            let _ = GpuReport::parse(&b);
        }
    }

    #[test]
    fn version_strings() {
        let mut r = GpuReport::parse(&synthetic()).unwrap();
        r.opaque_fields = vec![
            OpaqueField {
                kind: opaque::VBIOS_VERSION,
                value: vec![0x00, 0x9f, 0x00, 0x96, 0x01, 0, 0, 0],
            },
            OpaqueField {
                kind: opaque::DRIVER_VERSION,
                value: b"550.90.07\0".to_vec(),
            },
            OpaqueField {
                kind: opaque::FEATURE_FLAG,
                value: vec![2, 0],
            },
        ];
        assert_eq!(r.vbios_version().as_deref(), Some("96.00.9f.00.01"));
        assert_eq!(r.driver_version().as_deref(), Some("550.90.07"));
        assert_eq!(r.feature_flag().as_deref(), Some("PPCIE"));
    }
}
