//! A minimal DER reader for the two certificate extensions the GPU verifier needs and the
//! openssl crate does not expose: basicConstraints (is it a CA?) and the TCG DICE FWID
//! (OID 2.23.133.5.4.1) of the attestation leaf. Every read is bounds-checked; malformed input
//! gives `None`.

use crate::der::{TAG_BOOLEAN, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE};
/// Bit 5 of the tag: constructed encoding.
const CONSTRUCTED: u8 = 0x20;

/// 2.5.29.19 basicConstraints.
pub(crate) const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1D, 0x13];
/// 2.23.133.5.4.1 tcg-dice-TcbInfo: carries the firmware ID (FWID) of the GPU's leaf.
pub(crate) const OID_DICE_TCB_INFO: &[u8] = &[0x67, 0x81, 0x05, 0x05, 0x04, 0x01];
/// 2.16.840.1.101.3.4.2.2 id-sha384 (the FWID's hash algorithm).
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
/// Length of a SHA-384 FWID.
pub(crate) const FWID_LEN: usize = 48;

pub(crate) use crate::der::{extension, extensions};
use crate::der::{read, read_exact};

/// basicConstraints `cA` (DEFAULT FALSE). `None` if the value does not parse.
pub(crate) fn is_ca(basic_constraints: &[u8]) -> Option<bool> {
    let body = read_exact(basic_constraints, TAG_SEQUENCE)?;
    match read(body) {
        None if body.is_empty() => Some(false),
        Some((tlv, _)) if tlv.tag == TAG_BOOLEAN => match tlv.content {
            [0] => Some(false),
            [_] => Some(true),
            _ => None,
        },
        Some(_) => Some(false), // only pathLenConstraint present
        None => None,
    }
}

/// The SHA-384 FWID in a DICE TcbInfo extension value: the single `SEQUENCE { id-sha384,
/// OCTET STRING (48) }` found anywhere inside it (NVIDIA's layout and the TCG one, where it sits
/// in `[6] fwids`, both match). `None` if there is none or more than one.
pub(crate) fn fwid(tcb_info: &[u8]) -> Option<[u8; FWID_LEN]> {
    let mut found = Vec::new();
    collect_fwids(tcb_info, 0, &mut found)?;
    match found.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

fn collect_fwids(input: &[u8], depth: u8, out: &mut Vec<[u8; FWID_LEN]>) -> Option<()> {
    if depth > 6 {
        return None;
    }
    let mut rest = input;
    while !rest.is_empty() {
        let (tlv, after) = read(rest)?;
        rest = after;
        if tlv.tag == TAG_SEQUENCE {
            if let Some(digest) = as_sha384_fwid(tlv.content) {
                out.push(digest);
                continue;
            }
        }
        if tlv.tag & CONSTRUCTED != 0 {
            collect_fwids(tlv.content, depth + 1, out)?;
        }
    }
    Some(())
}

fn as_sha384_fwid(seq: &[u8]) -> Option<[u8; FWID_LEN]> {
    let (oid, rest) = read(seq)?;
    if oid.tag != TAG_OID || oid.content != OID_SHA384 {
        return None;
    }
    let digest = read_exact(rest, TAG_OCTET_STRING)?;
    digest.try_into().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn basic_constraints() {
        assert_eq!(is_ca(&[0x30, 0x03, 0x01, 0x01, 0xFF]), Some(true));
        assert_eq!(is_ca(&[0x30, 0x03, 0x01, 0x01, 0x00]), Some(false));
        assert_eq!(is_ca(&[0x30, 0x00]), Some(false));
        assert_eq!(is_ca(&[0x30, 0x03, 0x02, 0x01, 0x00]), Some(false));
        assert_eq!(is_ca(&[0x30, 0x02, 0x01]), None);
    }

    #[test]
    fn fwid_shapes() {
        let mut inner = vec![0x30, 11 + 50, 0x06, 0x09];
        inner.extend(OID_SHA384);
        inner.extend([0x04, 48]);
        inner.extend([0xAB; 48]);
        // NVIDIA layout: SEQUENCE { INTEGER 1, FWID }.
        let mut nvidia = vec![0x30, (3 + inner.len()) as u8, 0x02, 0x01, 0x01];
        nvidia.extend(&inner);
        assert_eq!(fwid(&nvidia), Some([0xAB; 48]));
        // TCG layout: SEQUENCE { [6] { FWID } }.
        let mut tcg = vec![0x30, (2 + inner.len()) as u8, 0xA6, inner.len() as u8];
        tcg.extend(&inner);
        assert_eq!(fwid(&tcg), Some([0xAB; 48]));
        // Two FWIDs are ambiguous.
        let mut two = vec![0x30, (2 * inner.len()) as u8];
        two.extend(&inner);
        two.extend(&inner);
        assert_eq!(fwid(&two), None);
        assert_eq!(fwid(&[0x30, 0x00]), None);
        for len in 0..nvidia.len() {
            let _ = fwid(&nvidia[..len]);
        }
    }
}
