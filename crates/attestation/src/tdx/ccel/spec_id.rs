//! The Spec ID event that opens a crypto-agile log (TCG PC Client Platform Firmware Profile,
//! `TCG_EfiSpecIDEvent`), and the bounds-checked reader both parsers share.

use crate::tdx::ccel::{CcelError, EventType};

/// TPM_ALG_SHA384: the algorithm TDX extends RTMRs with.
pub const TPM_ALG_SHA384: u16 = 0x000C;
/// Signature of the Spec ID event of a crypto-agile log.
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";

/// One declared digest algorithm of the Spec ID event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmSize {
    /// TPM algorithm id (0x000C = SHA-384).
    pub alg_id: u16,
    /// Its digest size in bytes.
    pub digest_size: u16,
}

/// The Spec ID event ("Spec ID Event03", `TCG_EfiSpecIDEvent`): the log's format and the
/// digest algorithms every following event carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecIdEvent {
    /// Platform class (0 client, 1 server).
    pub platform_class: u32,
    /// Spec version (major, minor, errata).
    pub spec_version: (u8, u8, u8),
    /// UINTN size in 4-byte units (2 = 64-bit).
    pub uintn_size: u8,
    /// The declared digest algorithms, in order.
    pub algorithms: Vec<AlgorithmSize>,
    /// Vendor-specific information.
    pub vendor_info: Vec<u8>,
}

/// A bounds-checked little-endian reader over the log.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
    pub(super) event: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CcelError> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end));
        let slice = slice.ok_or(CcelError::Truncated {
            what,
            event: self.event,
            offset: self.pos,
            needed: n,
            left: self.left(),
        })?;
        self.pos += n;
        Ok(slice)
    }

    pub(super) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], CcelError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, CcelError> {
        let [b] = self.array(what)?;
        Ok(b)
    }

    pub(super) fn u16(&mut self, what: &'static str) -> Result<u16, CcelError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, CcelError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(super) fn left(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The event data: `eventSize` bytes, refused (not truncated) if they run past the end.
    pub(super) fn event_data(&mut self, start: usize) -> Result<&'a [u8], CcelError> {
        let size = self.u32("eventSize")?;
        let left = self.left();
        match usize::try_from(size) {
            Ok(n) if n <= left => self.take(n, "event data"),
            _ => Err(CcelError::EventSizePastEnd {
                event: self.event,
                offset: start,
                size,
                left,
            }),
        }
    }
}

pub(super) fn parse_spec_id(r: &mut Reader<'_>) -> Result<SpecIdEvent, CcelError> {
    let bad = |why: String| CcelError::BadSpecIdEvent(why);
    let pcr = r.u32("pcrIndex")?;
    let event_type = r.u32("eventType")?;
    let sha1: [u8; 20] = r.array("SHA-1 digest")?;
    // TCG logs name PCR 0 here; TDVF writes MR index 1 (RTMR0). Either way it extends nothing.
    if pcr > 4 || event_type != EventType::NoAction.as_u32() || sha1 != [0u8; 20] {
        return Err(bad(format!(
            "first event has MR index {pcr}, type {event_type:#x}, SHA-1 digest {}: expected \
             an EV_NO_ACTION event in MR 0..=4 with a zero digest",
            hex::encode(sha1)
        )));
    }
    let data = r.event_data(0)?;
    let mut d = Reader {
        bytes: data,
        pos: 0,
        event: 0,
    };
    let signature: [u8; 16] = d.array("Spec ID signature")?;
    if &signature != SPEC_ID_SIGNATURE {
        return Err(bad(format!(
            "signature {:?}, expected \"Spec ID Event03\" (a crypto-agile log)",
            String::from_utf8_lossy(&signature)
        )));
    }
    let platform_class = d.u32("platformClass")?;
    let minor = d.u8("specVersionMinor")?;
    let major = d.u8("specVersionMajor")?;
    let errata = d.u8("specErrata")?;
    let uintn_size = d.u8("uintnSize")?;
    let count = d.u32("numberOfAlgorithms")?;
    // Each entry is 4 bytes: a count the event cannot hold fails in the loop below, so the
    // vector never grows past the event's size.
    let mut algorithms = Vec::new();
    for _ in 0..count {
        let alg_id = d.u16("algorithmId")?;
        let digest_size = d.u16("digestSize")?;
        if algorithms
            .iter()
            .any(|a: &AlgorithmSize| a.alg_id == alg_id)
        {
            return Err(bad(format!("algorithm {alg_id:#06x} declared twice")));
        }
        algorithms.push(AlgorithmSize {
            alg_id,
            digest_size,
        });
    }
    let vendor_len = usize::from(d.u8("vendorInfoSize")?);
    let vendor_info = d.take(vendor_len, "vendorInfo")?.to_vec();
    if d.left() != 0 {
        return Err(bad(format!("{} bytes after vendorInfo", d.left())));
    }
    let sha384 = AlgorithmSize {
        alg_id: TPM_ALG_SHA384,
        digest_size: 48,
    };
    if !algorithms.contains(&sha384) {
        let list: Vec<String> = algorithms
            .iter()
            .map(|a| format!("{:#06x}:{}", a.alg_id, a.digest_size))
            .collect();
        return Err(CcelError::NoSha384 {
            algorithms: list.join(", "),
        });
    }
    Ok(SpecIdEvent {
        platform_class,
        spec_version: (major, minor, errata),
        uintn_size,
        algorithms,
        vendor_info,
    })
}
