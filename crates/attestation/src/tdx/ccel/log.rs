//! The crypto-agile event log (TCG PC Client Platform Firmware Profile) as the TDX
//! firmware writes it into the CCEL log area, parsed without trusting a single length field.
//!
//! Layout, little-endian: the Spec ID event in the legacy SHA-1 format (`TCG_PCClientPCREvent`:
//! pcrIndex u32, eventType u32, SHA-1 digest 20 B, eventSize u32, event) carrying the
//! "Spec ID Event03" structure, then `TCG_PCR_EVENT2`s (pcrIndex u32 — here the CC MR index —,
//! eventType u32, digest count u32, per digest algorithm id u16 and the digest in the size the
//! Spec ID event declares, eventSize u32, event), then padding (0xFF, or zeros) to the end of
//! the log area.

use sha2::{Digest, Sha384};

use crate::tdx::ccel::spec_id::{parse_spec_id, Reader, SpecIdEvent, TPM_ALG_SHA384};
use crate::tdx::ccel::{CcelError, EventType};

/// Most events a log may hold. A 256 KiB log area holds at most about 4000 SHA-384 events; the
/// cap keeps a hostile multi-megabyte "log" from costing more than its own size in memory.
pub const MAX_EVENTS: usize = 8192;

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
