//! Small fixed-size value types shared by attesters, verifiers and the protocol.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The 64 bytes a guest binds into its attestation report (SNP `REPORT_DATA`, TDX `REPORTDATA`).
///
/// Always exactly 64 bytes: never optional, never truncated.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportData(pub [u8; 64]);

impl ReportData {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// The 32-byte SPDM nonce a GPU must sign, bound to the same job and guest key as the CPU
    /// evidence: [`crate::nvidia::gpu_nonce`] of these bytes (the one definition).
    pub fn gpu_nonce(&self) -> [u8; 32] {
        crate::nvidia::gpu_nonce(&self.0)
    }
}

impl fmt::Debug for ReportData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportData({})", hex::encode(self.0))
    }
}

impl fmt::Display for ReportData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A 48-byte launch measurement (SNP `MEASUREMENT`, SHA-384 sized).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Measurement(pub [u8; 48]);

impl Measurement {
    /// Parses 96 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
        let mut out = [0u8; 48];
        hex::decode_to_slice(s.trim(), &mut out)?;
        Ok(Self(out))
    }
}

impl fmt::Debug for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Measurement({})", hex::encode(self.0))
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Serializes fixed-size byte values as lowercase hex strings (readable in JSON claims).
macro_rules! hex_serde {
    ($ty:ident, $len:expr) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&hex::encode(self.0))
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                let mut out = [0u8; $len];
                hex::decode_to_slice(text.trim(), &mut out).map_err(serde::de::Error::custom)?;
                Ok(Self(out))
            }
        }
    };
}

hex_serde!(ReportData, 64);
hex_serde!(Measurement, 48);

/// A trusted execution environment family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TeeKind {
    /// AMD SEV-SNP.
    #[serde(rename = "sev-snp")]
    SevSnp,
    /// Intel TDX.
    #[serde(rename = "tdx")]
    Tdx,
}

impl TeeKind {
    /// The wire name (`sev-snp`), as used in job-request params and policies.
    pub fn as_str(&self) -> &'static str {
        match self {
            TeeKind::SevSnp => "sev-snp",
            TeeKind::Tdx => "tdx",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sev-snp" => Some(TeeKind::SevSnp),
            "tdx" => Some(TeeKind::Tdx),
            _ => None,
        }
    }
}

impl fmt::Display for TeeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
