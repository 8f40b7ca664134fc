//! AMD's private X.509 extensions on VCEK/VLEK certificates (AMD "Versioned Chip Endorsement
//! Key (VCEK) Certificate and KDS Interface Specification", Table 8): they bind the key to one
//! chip (hwID) and one reported TCB (the SPLs).

use crate::der;

/// DER content of OID 1.3.6.1.4.1.3704.1 (AMD SEV arc); components follow.
const AMD_ARC: [u8; 8] = [0x2B, 0x06, 0x01, 0x04, 0x01, 0x9C, 0x78, 0x01];

/// Which AMD extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AmdExt {
    /// .3.1 blSPL
    BootloaderSpl,
    /// .3.2 teeSPL
    TeeSpl,
    /// .3.3 snpSPL
    SnpSpl,
    /// .3.8 ucodeSPL
    MicrocodeSpl,
    /// .3.9 fmcSPL (Turin)
    FmcSpl,
    /// .4 hwID
    HwId,
}

impl AmdExt {
    fn oid_tail(self) -> &'static [u8] {
        match self {
            AmdExt::BootloaderSpl => &[0x03, 0x01],
            AmdExt::TeeSpl => &[0x03, 0x02],
            AmdExt::SnpSpl => &[0x03, 0x03],
            AmdExt::MicrocodeSpl => &[0x03, 0x08],
            AmdExt::FmcSpl => &[0x03, 0x09],
            AmdExt::HwId => &[0x04],
        }
    }

    /// Dotted OID, for error messages.
    pub(crate) fn oid(self) -> &'static str {
        match self {
            AmdExt::BootloaderSpl => "1.3.6.1.4.1.3704.1.3.1 (blSPL)",
            AmdExt::TeeSpl => "1.3.6.1.4.1.3704.1.3.2 (teeSPL)",
            AmdExt::SnpSpl => "1.3.6.1.4.1.3704.1.3.3 (snpSPL)",
            AmdExt::MicrocodeSpl => "1.3.6.1.4.1.3704.1.3.8 (ucodeSPL)",
            AmdExt::FmcSpl => "1.3.6.1.4.1.3704.1.3.9 (fmcSPL)",
            AmdExt::HwId => "1.3.6.1.4.1.3704.1.4 (hwID)",
        }
    }
}

/// The AMD extensions of one certificate.
#[derive(Debug)]
pub(crate) struct AmdExtensions<'a> {
    list: Vec<(&'a [u8], &'a [u8])>,
}

/// A present extension whose value could not be read.
#[derive(Debug)]
pub(crate) struct BadValue;

impl<'a> AmdExtensions<'a> {
    /// Reads the extension list of a DER certificate; `None` if its structure is unreadable.
    pub(crate) fn from_der(cert_der: &'a [u8]) -> Option<Self> {
        der::extensions(cert_der).map(|list| Self { list })
    }

    fn raw(&self, ext: AmdExt) -> Option<&'a [u8]> {
        let tail = ext.oid_tail();
        self.list
            .iter()
            .find(|(oid, _)| {
                oid.len() == AMD_ARC.len() + tail.len()
                    && oid.starts_with(&AMD_ARC)
                    && oid.ends_with(tail)
            })
            .map(|(_, v)| *v)
    }

    /// An SPL extension: `Ok(None)` if absent.
    pub(crate) fn spl(&self, ext: AmdExt) -> Result<Option<u8>, BadValue> {
        match self.raw(ext) {
            None => Ok(None),
            Some(v) => der::small_uint(v).map(Some).ok_or(BadValue),
        }
    }

    /// The hwID: 64 bytes (Milan, Genoa) or 8 bytes (Turin). AMD's KDS writes the raw bytes as
    /// the extension value; some certificates wrap them in an OCTET STRING, so accept both.
    pub(crate) fn hw_id(&self) -> Option<&'a [u8]> {
        let v = self.raw(AmdExt::HwId)?;
        match der::read_exact(v, der::TAG_OCTET_STRING) {
            Some(inner) if inner.len() == 64 || inner.len() == 8 => Some(inner),
            _ => Some(v),
        }
    }
}
