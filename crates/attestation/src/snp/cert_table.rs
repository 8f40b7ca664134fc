//! The certificate table of an SNP extended report (SNP_GET_EXT_REPORT; GHCB spec §4.1.8.1):
//! entries of `{GUID (16 B), offset (u32 LE), length (u32 LE)}` ended by an all-zero entry, with
//! offsets counted from the start of the table. The host fills it with the VCEK or VLEK, ASK and
//! ARK, so a verifier can check a report offline.

use crate::{SnpCertChain, VerifyError};

/// The role of a certificate in the table, by its GUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// `63da758d-e664-4564-adc5-f4b93be8accd`
    Vcek,
    /// `a8074bc2-a25a-483e-aae6-39c045a0b8a1`
    Vlek,
    /// `4ab7b379-bbac-4fe4-a02f-05aef327c782` (the ASK or, for VLEK, the ASVK)
    Ask,
    /// `c0b406a4-a803-4952-9743-3fb6014cd0ae`
    Ark,
    /// Any other GUID (kept, not used).
    Other([u8; 16]),
}

/// GUIDs in their on-the-wire byte order: the textual order (RFC 4122 network order), as AMD's
/// reference host tools (libuuid `uuid_parse`) and virtee/sev (`Uuid::as_bytes`) write them.
const GUIDS: [(CertKind, [u8; 16]); 4] = [
    (CertKind::Vcek, guid("63da758d-e664-4564-adc5-f4b93be8accd")),
    (CertKind::Vlek, guid("a8074bc2-a25a-483e-aae6-39c045a0b8a1")),
    (CertKind::Ask, guid("4ab7b379-bbac-4fe4-a02f-05aef327c782")),
    (CertKind::Ark, guid("c0b406a4-a803-4952-9743-3fb6014cd0ae")),
];

/// Parses a textual GUID into its 16 bytes in textual order.
const fn guid(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    // Positions of the 32 hex digits in "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
    const POS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        let p = POS[i];
        out[i] = (hex_val(b[p]) << 4) | hex_val(b[p + 1]);
        i += 1;
    }
    out
}

const fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => 0,
    }
}

/// One certificate of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertEntry {
    /// Its role.
    pub kind: CertKind,
    /// The DER bytes.
    pub der: Vec<u8>,
}

const ENTRY_LEN: usize = 24;
/// More entries than any host writes; bounds the work on hostile input.
const MAX_ENTRIES: usize = 64;

fn malformed(why: String) -> VerifyError {
    VerifyError::Malformed(format!("certificate table: {why}"))
}

/// Parses a certificate table. Never panics; every offset and length is checked.
pub fn parse(table: &[u8]) -> Result<Vec<CertEntry>, VerifyError> {
    let mut out = Vec::new();
    for index in 0..=MAX_ENTRIES {
        let start = index * ENTRY_LEN;
        let entry = table
            .get(start..start + ENTRY_LEN)
            .ok_or_else(|| malformed(format!("entry {index} runs past the end (no terminator)")))?;
        if entry.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        if index == MAX_ENTRIES {
            break;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&entry[..16]);
        let offset = u32::from_le_bytes([entry[16], entry[17], entry[18], entry[19]]) as usize;
        let length = u32::from_le_bytes([entry[20], entry[21], entry[22], entry[23]]) as usize;
        let der = offset
            .checked_add(length)
            .and_then(|end| table.get(offset..end))
            .ok_or_else(|| {
                malformed(format!(
                    "entry {index}: {length} bytes at offset {offset} lie outside the table"
                ))
            })?;
        let kind = GUIDS
            .iter()
            .find(|(_, g)| *g == id)
            .map(|(k, _)| *k)
            .unwrap_or(CertKind::Other(id));
        out.push(CertEntry {
            kind,
            der: der.to_vec(),
        });
    }
    Err(malformed(format!("more than {MAX_ENTRIES} entries")))
}

/// Serializes entries into a table (header, terminator, then the certificates).
pub fn serialize(entries: &[CertEntry]) -> Vec<u8> {
    let header = (entries.len() + 1) * ENTRY_LEN;
    let mut out = vec![0u8; header];
    let mut offset = header;
    for (i, e) in entries.iter().enumerate() {
        let id = match e.kind {
            CertKind::Other(id) => id,
            kind => GUIDS
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, g)| *g)
                .unwrap_or([0; 16]),
        };
        let slot = &mut out[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
        slot[..16].copy_from_slice(&id);
        slot[16..20].copy_from_slice(&(offset as u32).to_le_bytes());
        slot[20..24].copy_from_slice(&(e.der.len() as u32).to_le_bytes());
        offset += e.der.len();
    }
    for e in entries {
        out.extend_from_slice(&e.der);
    }
    out
}

/// The chain a table provides — the VCEK (or VLEK), ASK (or ASVK) and ARK — if it holds all three.
pub fn chain(entries: &[CertEntry]) -> Option<SnpCertChain> {
    let find = |k: CertKind| entries.iter().find(|e| e.kind == k).map(|e| e.der.clone());
    Some(SnpCertChain {
        vcek: find(CertKind::Vcek).or_else(|| find(CertKind::Vlek))?,
        ask: find(CertKind::Ask)?,
        ark: find(CertKind::Ark)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn guid_bytes_are_in_textual_order() {
        // The literal wire bytes, written out by hand (not derived with the same function).
        assert_eq!(
            guid("63da758d-e664-4564-adc5-f4b93be8accd"),
            [
                0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8,
                0xac, 0xcd
            ]
        );
        assert_eq!(
            guid("c0b406a4-a803-4952-9743-3fb6014cd0ae")[..4],
            [0xc0, 0xb4, 0x06, 0xa4]
        );
    }

    #[test]
    fn round_trip_and_chain() {
        let entries = vec![
            CertEntry {
                kind: CertKind::Vcek,
                der: b"vcek".to_vec(),
            },
            CertEntry {
                kind: CertKind::Ask,
                der: b"ask!".to_vec(),
            },
            CertEntry {
                kind: CertKind::Ark,
                der: b"ark".to_vec(),
            },
            CertEntry {
                kind: CertKind::Other([7; 16]),
                der: b"x".to_vec(),
            },
        ];
        let table = serialize(&entries);
        assert_eq!(parse(&table).unwrap(), entries);
        let c = chain(&entries).unwrap();
        assert_eq!(
            (c.vcek.as_slice(), c.ask.as_slice(), c.ark.as_slice()),
            (&b"vcek"[..], &b"ask!"[..], &b"ark"[..])
        );
    }

    #[test]
    fn hostile_tables_are_errors_not_panics() {
        let good = serialize(&[CertEntry {
            kind: CertKind::Vcek,
            der: vec![1; 100],
        }]);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse(&bad), Err(VerifyError::Malformed(_))));
        assert!(parse(&[]).is_err(), "no terminator");
        assert!(parse(&[0u8; 24]).unwrap().is_empty());
        let many: Vec<u8> = std::iter::repeat_n([1u8; 24], 100).flatten().collect();
        assert!(parse(&many).is_err());
    }
}
