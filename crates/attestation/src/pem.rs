//! PEM certificate bundles to DER without parsing the certificates: decoding a certificate with
//! OpenSSL 3 costs about as much as verifying a signature (its public key goes through the
//! decoder framework), and a bundle's pinned ASK and ARK need no parse at all when they are
//! compared byte for byte with the pinned ones.

use base64::Engine;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// A bundle that is not a sequence of well-formed `CERTIFICATE` blocks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    /// A BEGIN line without its END line.
    #[error("certificate {index}: no END line")]
    Unterminated {
        /// 0-based position in the bundle.
        index: usize,
    },
    /// The body is not base64.
    #[error("certificate {index}: body is not base64")]
    BadBase64 {
        /// 0-based position in the bundle.
        index: usize,
    },
    /// Not valid UTF-8 text.
    #[error("the bundle is not text")]
    NotText,
}

/// The DER of every `CERTIFICATE` block in `bundle`, in order. Text outside the blocks is ignored,
/// as OpenSSL does.
pub fn certificates(bundle: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    let text = std::str::from_utf8(bundle).map_err(|_| PemError::NotText)?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let index = out.len();
        let after = &rest[start + BEGIN.len()..];
        let end = after.find(END).ok_or(PemError::Unterminated { index })?;
        let body: String = after[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| PemError::BadBase64 { index })?;
        out.push(der);
        rest = &after[end + END.len()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_decode_in_order_and_surrounding_text_is_ignored() {
        let bundle =
            format!("subject=x\n{BEGIN}\nAAEC\nAw==\n{END}\n# note\n{BEGIN}\r\nBAU=\r\n{END}\n");
        assert_eq!(
            certificates(bundle.as_bytes()),
            Ok(vec![vec![0, 1, 2, 3], vec![4, 5]])
        );
        assert_eq!(certificates(b"no certificates"), Ok(vec![]));
    }

    #[test]
    fn broken_blocks_are_errors() {
        assert_eq!(
            certificates(format!("{BEGIN}\nAAEC\n").as_bytes()),
            Err(PemError::Unterminated { index: 0 })
        );
        assert_eq!(
            certificates(format!("{BEGIN}\nA*EC\n{END}").as_bytes()),
            Err(PemError::BadBase64 { index: 0 })
        );
        assert_eq!(certificates(&[0xff, 0xfe]), Err(PemError::NotText));
    }
}
