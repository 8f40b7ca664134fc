//! Keys and nonce prefixes.

use rand::RngCore;
use zeroize::Zeroizing;

use crate::{BlobError, KEY_SIZE, NONCE_PREFIX_SIZE};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes`, written into a string that is zeroized on drop and never
/// reallocated (so no unzeroized copy is left behind).
fn to_hex_zeroizing(bytes: &[u8]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

fn from_hex_into(text: &str, out: &mut [u8], what: &'static str) -> Result<(), BlobError> {
    let expected = out.len() * 2;
    let err = || BlobError::BadHex {
        what,
        expected,
        got: text.chars().count(),
    };
    if text.len() != out.len() * 2 {
        return Err(err());
    }
    hex::decode_to_slice(text, out).map_err(|_| err())
}

/// A blob's 32-byte secret key: fresh and random for every blob, zeroized on drop, never printed.
#[derive(Clone)]
pub struct BlobKey(Zeroizing<[u8; KEY_SIZE]>);

impl BlobKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_SIZE]);
        rand::rngs::OsRng.fill_bytes(&mut *key);
        BlobKey(key)
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; KEY_SIZE]) -> Self {
        BlobKey(Zeroizing::new(bytes))
    }

    /// Parses 64 hexadecimal digits (either case).
    ///
    /// # Errors
    ///
    /// [`BlobError::BadHex`], which never contains the text.
    pub fn from_hex(text: &str) -> Result<Self, BlobError> {
        let mut key = Zeroizing::new([0u8; KEY_SIZE]);
        from_hex_into(text, &mut *key, "blob key")?;
        Ok(BlobKey(key))
    }

    /// The key as 64 lower-case hexadecimal digits, zeroized on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        to_hex_zeroizing(&*self.0)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_SIZE] {
        &self.0
    }
}

impl std::fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobKey(<redacted>)")
    }
}

/// A blob's 19-byte nonce prefix: fresh and random for every blob, public.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NoncePrefix([u8; NONCE_PREFIX_SIZE]);

impl NoncePrefix {
    /// A fresh nonce prefix from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut nonce = [0u8; NONCE_PREFIX_SIZE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        NoncePrefix(nonce)
    }

    /// The nonce prefix with these bytes.
    pub fn from_bytes(bytes: [u8; NONCE_PREFIX_SIZE]) -> Self {
        NoncePrefix(bytes)
    }

    /// Parses 38 hexadecimal digits (either case).
    ///
    /// # Errors
    ///
    /// [`BlobError::BadHex`].
    pub fn from_hex(text: &str) -> Result<Self, BlobError> {
        let mut nonce = [0u8; NONCE_PREFIX_SIZE];
        from_hex_into(text, &mut nonce, "nonce prefix")?;
        Ok(NoncePrefix(nonce))
    }

    /// The nonce prefix as 38 lower-case hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The nonce prefix's bytes.
    pub fn as_bytes(&self) -> &[u8; NONCE_PREFIX_SIZE] {
        &self.0
    }
}

impl std::fmt::Debug for NoncePrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoncePrefix({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_redaction() {
        let key = BlobKey::generate();
        let again = BlobKey::from_hex(&key.to_hex()).expect("own hex");
        assert_eq!(key.as_bytes(), again.as_bytes());
        assert_eq!(format!("{key:?}"), "BlobKey(<redacted>)");
        assert_ne!(BlobKey::generate().as_bytes(), key.as_bytes());

        let nonce = NoncePrefix::generate();
        assert_eq!(
            NoncePrefix::from_hex(&nonce.to_hex()).expect("own hex"),
            nonce
        );
        assert_eq!(
            format!("{nonce:?}"),
            format!("NoncePrefix({})", nonce.to_hex())
        );
        let upper = nonce.to_hex().to_uppercase();
        assert_eq!(NoncePrefix::from_hex(&upper).expect("upper case"), nonce);
    }

    #[test]
    fn bad_hex_is_named_and_secret_free() {
        let text = "zz".repeat(32);
        let err = BlobKey::from_hex(&text).expect_err("not hex");
        assert!(matches!(
            err,
            BlobError::BadHex {
                what: "blob key",
                expected: 64,
                got: 64
            }
        ));
        assert!(!err.to_string().contains("zz"));
        let err = NoncePrefix::from_hex("a0a1").expect_err("short");
        assert!(matches!(
            err,
            BlobError::BadHex {
                what: "nonce prefix",
                expected: 38,
                got: 4
            }
        ));
        // A multi-byte character whose byte length happens to fit must still fail cleanly.
        assert!(BlobKey::from_hex(&"é".repeat(32)).is_err());
    }
}
