//! The crypto-agile event log (TCG PC Client Platform Firmware Profile 1.05, §10.2) as the TDX
//! firmware writes it into the CCEL log area, parsed without trusting a single length field.
//!
//! Layout, little-endian: the Spec ID event in the legacy SHA-1 format (`TCG_PCClientPCREvent`:
//! pcrIndex u32, eventType u32, SHA-1 digest 20 B, eventSize u32, event) carrying the
//! "Spec ID Event03" structure, then `TCG_PCR_EVENT2`s (pcrIndex u32 — here the CC MR index —,
//! eventType u32, digest count u32, per digest algorithm id u16 and the digest in the size the
//! Spec ID event declares, eventSize u32, event), then padding (0xFF, or zeros) to the end of
//! the log area.

use sha2::{Digest, Sha384};

use crate::tdx::ccel::{CcelError, EventType};

/// TPM_ALG_SHA384: the algorithm TDX extends RTMRs with.
pub const TPM_ALG_SHA384: u16 = 0x000C;
/// Most events a log may hold. A 256 KiB log area holds at most about 4000 SHA-384 events; the
/// cap keeps a hostile multi-megabyte "log" from costing more than its own size in memory.
pub const MAX_EVENTS: usize = 8192;
/// Signature of the Spec ID event of a crypto-agile log.
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";

/// Which measurement register an event is extended into: the UEFI `EFI_CC_MEASUREMENT_PROTOCOL`
/// MR index of TDX (0 MRTD, 1..=4 RTMR0..3; the spec maps PCR 0 → MRTD, PCR 1 and 7 → RTMR0,
/// PCR 2–6 → RTMR1, PCR 8–15 → RTMR2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MrIndex {
    /// MR index 0, MRTD: built by the TDX module at launch; only EV_NO_ACTION events name it.
    Mrtd,
    /// MR index 1 + `n`: RTMR `n` (0..=3).
    Rtmr(u8),
}

impl MrIndex {
    /// The MR index of a raw `pcrIndex` field (0..=4), or `None`.
    pub fn from_cc_index(index: u32) -> Option<Self> {
        match index {
            0 => Some(Self::Mrtd),
            1..=4 => u8::try_from(index - 1).ok().map(Self::Rtmr),
            _ => None,
        }
    }

    /// The RTMR number (0..=3), or `None` for MRTD.
    pub fn rtmr(self) -> Option<usize> {
        match self {
            Self::Mrtd => None,
            Self::Rtmr(n) => Some(usize::from(n)),
        }
    }
}

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

/// One event of the log (after the Spec ID event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the log: 1 for the first event after the Spec ID event.
    pub number: usize,
    /// Byte offset of the event in the log.
    pub offset: usize,
    /// The register it is extended into.
    pub mr: MrIndex,
    /// The event type.
    pub event_type: EventType,
    /// Its SHA-384 digest: what is extended. Other algorithms' digests are skipped.
    pub digest: [u8; 48],
    /// The event data. Bound to the RTMRs only through the digest: trustworthy by itself only
    /// where [`EventType::digest_covers_data`] (checked at parse time).
    pub data: Vec<u8>,
}

impl Event {
    /// The RTMR (0..=3) it extends, or `None` if it extends nothing (EV_NO_ACTION).
    pub fn extends(&self) -> Option<usize> {
        if self.event_type == EventType::NoAction {
            None
        } else {
            self.mr.rtmr()
        }
    }
}

/// A parsed CC event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog {
    /// The Spec ID event.
    pub spec_id: SpecIdEvent,
    /// The events after it, in log order.
    pub events: Vec<Event>,
    /// Bytes of events; padding starts here.
    pub len: usize,
}

/// A bounds-checked little-endian reader over the log.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    event: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CcelError> {
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

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CcelError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CcelError> {
        let [b] = self.array(what)?;
        Ok(b)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, CcelError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CcelError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn left(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The event data: `eventSize` bytes, refused (not truncated) if they run past the end.
    fn event_data(&mut self, start: usize) -> Result<&'a [u8], CcelError> {
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

impl EventLog {
    /// Parses a CC event log (e.g. `/sys/firmware/acpi/tables/data/CCEL`, the whole log area).
    /// Stops at the padding after the last event and requires the rest to be padding. Never
    /// panics, and allocates no more than the input's size plus a bounded overhead per event.
    pub fn parse(bytes: &[u8]) -> Result<Self, CcelError> {
        let mut r = Reader {
            bytes,
            pos: 0,
            event: 0,
        };
        let spec_id = parse_spec_id(&mut r)?;
        let mut events = Vec::new();
        loop {
            if let Some(pad) = padding_at(&r) {
                check_padding(bytes, r.pos, pad)?;
                break;
            }
            if events.len() >= MAX_EVENTS {
                return Err(CcelError::TooManyEvents { max: MAX_EVENTS });
            }
            r.event = events.len() + 1;
            events.push(parse_event(&mut r, &spec_id)?);
        }
        Ok(Self {
            spec_id,
            events,
            len: r.pos,
        })
    }

    /// Replays the log: each RTMR starts at 48 zero bytes and becomes SHA-384(RTMR ‖ digest) for
    /// each event extended into it, in log order. Returns RTMR0..3.
    pub fn replay(&self) -> [[u8; 48]; 4] {
        let mut rtmrs = [[0u8; 48]; 4];
        for event in &self.events {
            if let Some(rtmr) = event.extends().and_then(|i| rtmrs.get_mut(i)) {
                let mut h = Sha384::new();
                h.update(*rtmr);
                h.update(event.digest);
                rtmr.copy_from_slice(&h.finalize());
            }
        }
        rtmrs
    }

    /// The events extended into RTMR `rtmr` (0..=3), in log order.
    pub fn events_in(&self, rtmr: usize) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |e| e.extends() == Some(rtmr))
    }
}

/// The padding byte if the log ends at `r.pos`: the rest is empty, or the next event header's
/// pcrIndex and eventType (or what is left of them) are all 0xFF or all zero. Neither is a valid
/// event: MR index 0xFFFFFFFF does not exist, and MR index 0 is MRTD, never extended.
fn padding_at(r: &Reader<'_>) -> Option<u8> {
    let rest = r.bytes.get(r.pos..).unwrap_or_default();
    let head = rest.get(..8).unwrap_or(rest);
    match head.first() {
        None => Some(0xFF),
        Some(&b) if (b == 0xFF || b == 0) && head.iter().all(|x| *x == b) => Some(b),
        Some(_) => None,
    }
}

fn check_padding(bytes: &[u8], offset: usize, pad: u8) -> Result<(), CcelError> {
    let rest = bytes.get(offset..).unwrap_or_default();
    if rest.iter().all(|b| *b == pad) {
        Ok(())
    } else {
        Err(CcelError::TrailingData { offset })
    }
}

fn parse_spec_id(r: &mut Reader<'_>) -> Result<SpecIdEvent, CcelError> {
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

fn parse_event(r: &mut Reader<'_>, spec: &SpecIdEvent) -> Result<Event, CcelError> {
    let offset = r.pos;
    let number = r.event;
    let pcr = r.u32("pcrIndex")?;
    let event_type = EventType::from_u32(r.u32("eventType")?);
    let mr = match MrIndex::from_cc_index(pcr) {
        Some(MrIndex::Mrtd) if event_type != EventType::NoAction => None,
        other => other,
    }
    .ok_or(CcelError::MrIndexOutOfRange {
        event: number,
        event_type,
        index: pcr,
    })?;
    let count = r.u32("digest count")?;
    let bad = |reason: String| CcelError::BadDigestList {
        event: number,
        reason,
    };
    if count == 0 || usize::try_from(count).map_or(true, |n| n > spec.algorithms.len()) {
        return Err(bad(format!(
            "{count} digests, the Spec ID event declares {} algorithms",
            spec.algorithms.len()
        )));
    }
    let mut seen: Vec<u16> = Vec::new();
    let mut digest = None;
    for _ in 0..count {
        let alg = r.u16("digest algorithm id")?;
        let declared = spec
            .algorithms
            .iter()
            .find(|a| a.alg_id == alg)
            .ok_or(CcelError::UndeclaredAlgorithm { event: number, alg })?;
        if seen.contains(&alg) {
            return Err(bad(format!("algorithm {alg:#06x} appears twice")));
        }
        seen.push(alg);
        let value = r.take(usize::from(declared.digest_size), "digest")?;
        if alg == TPM_ALG_SHA384 {
            // 48 bytes: the Spec ID check only accepts SHA-384 declared with that size.
            let value = <[u8; 48]>::try_from(value)
                .map_err(|_| bad(format!("SHA-384 digest of {} bytes", value.len())))?;
            digest = Some(value);
        }
    }
    let digest = digest.ok_or_else(|| bad("no SHA-384 digest".into()))?;
    let data = r.event_data(offset)?.to_vec();
    // A data-defined digest that does not match means the data was altered after measuring.
    if event_type.digest_covers_data() && Sha384::digest(&data).as_slice() != digest {
        return Err(CcelError::DataDigestMismatch {
            event: number,
            event_type,
        });
    }
    Ok(Event {
        number,
        offset,
        mr,
        event_type,
        digest,
        data,
    })
}
