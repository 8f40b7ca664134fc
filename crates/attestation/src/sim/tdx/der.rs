//! A minimal DER writer for the few structures the simulated PKI builds by hand (the SGX
//! extension of the PCK certificate, the CRL extensions): the openssl crate has no encoder for
//! arbitrary ASN.1.

/// One element: tag, definite length, content.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        // Short form; the cast cannot truncate below 0x80.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of already encoded elements.
pub(crate) fn sequence(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &items.concat())
}

/// OBJECT IDENTIFIER from its content bytes.
pub(crate) fn oid(content: &[u8]) -> Vec<u8> {
    tlv(0x06, content)
}

/// OCTET STRING.
pub(crate) fn octet_string(content: &[u8]) -> Vec<u8> {
    tlv(0x04, content)
}

/// BOOLEAN.
pub(crate) fn boolean(value: bool) -> Vec<u8> {
    tlv(0x01, &[if value { 0xFF } else { 0x00 }])
}

/// The minimal two's-complement content of a non-negative integer.
fn unsigned(value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut content = bytes.get(skip..).unwrap_or_default().to_vec();
    // A leading 1 bit would read as negative.
    if content.first().is_some_and(|b| b & 0x80 != 0) {
        content.insert(0, 0);
    }
    content
}

/// INTEGER (non-negative).
pub(crate) fn integer(value: u64) -> Vec<u8> {
    tlv(0x02, &unsigned(value))
}

/// ENUMERATED (non-negative).
pub(crate) fn enumerated(value: u64) -> Vec<u8> {
    tlv(0x0A, &unsigned(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer(13), [0x02, 0x01, 0x0D]);
        assert_eq!(integer(0x80), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(boolean(true), [0x01, 0x01, 0xFF]);
        let long = tlv(0x04, &[0u8; 200]);
        assert_eq!(long.get(..3), Some(&[0x04, 0x81, 200][..]));
        assert_eq!(long.len(), 203);
    }
}
