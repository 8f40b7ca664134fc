//! A minimal DER reader, just enough to find X.509 extensions by OID (RFC 5280 §4.1), shared by
//! the SNP (VCEK hwID and TCB SPLs, RSASSA-PSS parameters), TDX (the PCK's FMSPC) and NVIDIA
//! (basicConstraints, DICE FWID) verifiers: the openssl crate has no safe accessor for arbitrary
//! extensions. Every read is bounds-checked; malformed input gives `None`.

/// One DER element: its tag byte and content.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
}

#[cfg(feature = "snp")]
pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_BOOLEAN: u8 = 0x01;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
/// `[3] EXPLICIT Extensions` inside TBSCertificate.
const TAG_EXTENSIONS: u8 = 0xA3;

/// Reads one element; returns it and the rest of the input.
pub(crate) fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    // High-tag-number form never occurs in X.509 structures we read.
    if tag & 0x1F == 0x1F {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        // 0x80 is BER's indefinite length, not DER; more than 4 length bytes is absurd here.
        if n == 0 || n > 4 {
            return None;
        }
        let (len_bytes, after) = rest.split_at_checked(n)?;
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((Tlv { tag, content }, rest))
}

/// Reads exactly one element of `tag` spanning all of `input`.
pub(crate) fn read_exact(input: &[u8], tag: u8) -> Option<&[u8]> {
    match read(input)? {
        (tlv, []) if tlv.tag == tag => Some(tlv.content),
        _ => None,
    }
}

/// The extensions of a DER certificate as (OID content bytes, extnValue content) pairs.
pub(crate) fn extensions(cert_der: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let cert = read_exact(cert_der, TAG_SEQUENCE)?;
    let (tbs, _) = read(cert)?;
    if tbs.tag != TAG_SEQUENCE {
        return None;
    }
    let mut items = tbs.content;
    while !items.is_empty() {
        let (item, rest) = read(items)?;
        items = rest;
        if item.tag == TAG_EXTENSIONS {
            return parse_extension_list(item.content);
        }
    }
    Some(Vec::new())
}

/// The value of extension `oid`, if the certificate has exactly one (RFC 5280 §4.2: an
/// extension appears at most once).
#[cfg(any(feature = "tdx", feature = "nvidia"))]
pub(crate) fn extension<'a>(exts: &[(&[u8], &'a [u8])], oid: &[u8]) -> Option<&'a [u8]> {
    let mut found = exts.iter().filter(|(o, _)| *o == oid);
    let first = found.next()?;
    match found.next() {
        None => Some(first.1),
        Some(_) => None,
    }
}

fn parse_extension_list(explicit: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut list = read_exact(explicit, TAG_SEQUENCE)?;
    let mut out = Vec::new();
    while !list.is_empty() {
        let (ext, rest) = read(list)?;
        list = rest;
        if ext.tag != TAG_SEQUENCE {
            return None;
        }
        let (oid, mut body) = read(ext.content)?;
        if oid.tag != TAG_OID {
            return None;
        }
        let (mut value, after) = read(body)?;
        if value.tag == TAG_BOOLEAN {
            body = after;
            (value, _) = read(body)?;
        }
        if value.tag != TAG_OCTET_STRING {
            return None;
        }
        out.push((oid.content, value.content));
    }
    Some(out)
}

/// A DER INTEGER's value if it is non-negative and fits in a `u8`.
#[cfg(feature = "snp")]
pub(crate) fn small_uint(content: &[u8]) -> Option<u8> {
    let body = read_exact(content, TAG_INTEGER)?;
    match body {
        [v] if *v < 0x80 => Some(*v),
        // A leading zero byte keeps values ≥ 0x80 positive.
        [0, v] if *v >= 0x80 => Some(*v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_truncation() {
        assert!(read(&[]).is_none());
        assert!(read(&[0x04]).is_none());
        assert!(read(&[0x04, 0x02, 0x01]).is_none());
        assert!(read(&[0x04, 0x80]).is_none());
        assert!(read(&[0x04, 0x85, 1, 1, 1, 1, 1]).is_none());
        let (t, rest) = read(&[0x04, 0x81, 0x01, 0xAA, 0xBB]).unwrap_or_else(|| panic!("parse"));
        assert_eq!((t.tag, t.content, rest), (0x04, &[0xAA][..], &[0xBB][..]));
    }

    #[cfg(feature = "snp")]
    #[test]
    fn small_integers() {
        assert_eq!(small_uint(&[0x02, 0x01, 0x73]), Some(115));
        assert_eq!(small_uint(&[0x02, 0x02, 0x00, 0xDB]), Some(219));
        assert_eq!(small_uint(&[0x02, 0x01, 0xFF]), None);
        assert_eq!(small_uint(&[0x02, 0x02, 0x01, 0x00]), None);
        assert_eq!(small_uint(&[0x02, 0x01, 0x01, 0x00]), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 1;
        for len in 0..200 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = extensions(&buf);
        }
    }
}
