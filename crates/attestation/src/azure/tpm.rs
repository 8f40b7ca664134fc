//! TPM 2.0 structures of a quote (TPM 2.0 Library, Part 2): `TPMS_ATTEST` with a
//! `TPMS_QUOTE_INFO`, and `TPMT_SIGNATURE`. Big-endian; every read is bounds-checked and the
//! whole input must be consumed.

#[cfg(feature = "snp")]
use sha2::{Digest, Sha256};

use super::AzureError;
#[cfg(feature = "snp")]
use super::PcrValue;

/// `TPM_GENERATED_VALUE`: only the TPM signs structures starting with it.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_SHA256`.
pub const TPM_ALG_SHA256: u16 = 0x000b;
/// `TPM_ALG_RSASSA` (PKCS#1 v1.5).
pub const TPM_ALG_RSASSA: u16 = 0x0014;

/// One `TPMS_PCR_SELECTION`: a bank and the PCRs selected in it, ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrSelection {
    /// The bank's hash algorithm (`TPM_ALG_ID`).
    pub hash_alg: u16,
    /// Selected PCR indices, ascending (the order the digest covers them in).
    pub pcrs: Vec<u32>,
}

/// A parsed `TPMS_ATTEST` of type quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteAttest {
    /// `qualifiedSigner` (the AK's qualified name).
    pub qualified_signer: Vec<u8>,
    /// `extraData`: the caller's qualifying data (the nonce).
    pub extra_data: Vec<u8>,
    /// `clockInfo.clock` (milliseconds).
    pub clock: u64,
    /// `clockInfo.resetCount`.
    pub reset_count: u32,
    /// `clockInfo.restartCount`.
    pub restart_count: u32,
    /// `clockInfo.safe`.
    pub safe: bool,
    /// `firmwareVersion`.
    pub firmware_version: u64,
    /// `TPML_PCR_SELECTION`.
    pub pcr_select: Vec<PcrSelection>,
    /// `pcrDigest`: the hash of the selected PCR values, concatenated in selection order.
    pub pcr_digest: Vec<u8>,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], AzureError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| {
            AzureError::MalformedQuote(format!("truncated in {what} at byte {}", self.at))
        })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, AzureError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, AzureError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, AzureError> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64, AzureError> {
        let hi = u64::from(self.u32(what)?);
        Ok(hi << 32 | u64::from(self.u32(what)?))
    }
    /// A `TPM2B_*`: a u16 size, then that many bytes.
    fn tpm2b(&mut self, what: &str) -> Result<Vec<u8>, AzureError> {
        let n = self.u16(what)?;
        Ok(self.take(usize::from(n), what)?.to_vec())
    }
    fn end(&self, what: &str) -> Result<(), AzureError> {
        if self.at == self.b.len() {
            Ok(())
        } else {
            Err(AzureError::MalformedQuote(format!(
                "{} bytes after the {what}",
                self.b.len() - self.at
            )))
        }
    }
}

impl QuoteAttest {
    /// Parses a quote's `TPMS_ATTEST` (magic and type checked, no trailing bytes).
    pub fn parse(b: &[u8]) -> Result<Self, AzureError> {
        let mut r = Reader { b, at: 0 };
        let magic = r.u32("magic")?;
        if magic != TPM_GENERATED_VALUE {
            return Err(AzureError::MalformedQuote(format!(
                "magic {magic:#010x} is not TPM_GENERATED_VALUE"
            )));
        }
        let ty = r.u16("type")?;
        if ty != TPM_ST_ATTEST_QUOTE {
            return Err(AzureError::MalformedQuote(format!(
                "type {ty:#06x} is not TPM_ST_ATTEST_QUOTE"
            )));
        }
        let qualified_signer = r.tpm2b("qualifiedSigner")?;
        let extra_data = r.tpm2b("extraData")?;
        let clock = r.u64("clockInfo")?;
        let reset_count = r.u32("clockInfo")?;
        let restart_count = r.u32("clockInfo")?;
        let safe = match r.u8("clockInfo")? {
            0 => false,
            1 => true,
            v => return Err(AzureError::MalformedQuote(format!("clockInfo.safe is {v}"))),
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let count = r.u32("TPML_PCR_SELECTION")?;
        // TPM 2.0 allows at most HASH_COUNT banks; 16 is far above any real TPM.
        if count > 16 {
            return Err(AzureError::MalformedQuote(format!("{count} PCR banks")));
        }
        let mut pcr_select = Vec::new();
        for _ in 0..count {
            let hash_alg = r.u16("TPMS_PCR_SELECTION")?;
            let size = r.u8("TPMS_PCR_SELECTION")?;
            let bitmap = r.take(usize::from(size), "pcrSelect")?;
            let pcrs = (0u32..)
                .zip(
                    bitmap
                        .iter()
                        .flat_map(|byte| (0..8).map(move |bit| byte >> bit & 1 == 1)),
                )
                .filter_map(|(i, on)| on.then_some(i))
                .collect();
            pcr_select.push(PcrSelection { hash_alg, pcrs });
        }
        let pcr_digest = r.tpm2b("pcrDigest")?;
        r.end("TPMS_ATTEST")?;
        Ok(Self {
            qualified_signer,
            extra_data,
            clock,
            reset_count,
            restart_count,
            safe,
            firmware_version,
            pcr_select,
            pcr_digest,
        })
    }
}

/// Extracts the raw RSASSA signature from a `TPMT_SIGNATURE` (RSASSA with SHA-256 only), as
/// `tpm2_quote` writes it; the evidence carries the raw bytes.
pub fn rsassa_sha256_signature(tpmt_signature: &[u8]) -> Result<Vec<u8>, AzureError> {
    let mut r = Reader {
        b: tpmt_signature,
        at: 0,
    };
    let alg = r.u16("sigAlg")?;
    let hash = r.u16("hash")?;
    if alg != TPM_ALG_RSASSA || hash != TPM_ALG_SHA256 {
        return Err(AzureError::MalformedQuote(format!(
            "signature scheme {alg:#06x}/{hash:#06x} is not RSASSA/SHA-256"
        )));
    }
    let sig = r.tpm2b("signature")?;
    r.end("TPMT_SIGNATURE")?;
    Ok(sig)
}

/// Checks a quote selects one SHA-256 bank whose selected PCRs `values` (index = PCR number)
/// all carry, and that they hash to the signed `pcrDigest`. Returns the selected indices.
/// Shared by the Azure and the cloud vTPM verifiers.
#[cfg(feature = "snp")]
pub(crate) fn check_pcr_digest(
    quote: &QuoteAttest,
    values: &[PcrValue],
) -> Result<Vec<u32>, AzureError> {
    let [sel] = quote.pcr_select.as_slice() else {
        return Err(AzureError::PcrSelection(format!(
            "{} banks selected, expected one",
            quote.pcr_select.len()
        )));
    };
    if sel.hash_alg != TPM_ALG_SHA256 {
        return Err(AzureError::PcrSelection(format!(
            "bank {:#06x} is not SHA-256",
            sel.hash_alg
        )));
    }
    let mut h = Sha256::new();
    for &i in &sel.pcrs {
        let v = values.get(i as usize).ok_or_else(|| {
            AzureError::PcrSelection(format!("PCR {i} is quoted but not in the evidence"))
        })?;
        h.update(v.0);
    }
    let computed = h.finalize();
    if computed.as_slice() != quote.pcr_digest.as_slice() {
        return Err(AzureError::PcrDigestMismatch {
            computed: hex::encode(computed),
            quoted: hex::encode(&quote.pcr_digest),
        });
    }
    Ok(sel.pcrs.clone())
}

/// The first PCR of `allowed` (index → allowed hex values) that is not quoted (`quoted`, from
/// [`check_pcr_digest`]) or holds another value: its index and its hex value (`not quoted`).
#[cfg(feature = "snp")]
pub(crate) fn first_disallowed_pcr(
    allowed: &std::collections::BTreeMap<u32, Vec<String>>,
    quoted: &[u32],
    values: &[PcrValue],
) -> Option<(u32, String)> {
    allowed.iter().find_map(|(index, ok)| {
        let value = quoted
            .contains(index)
            .then(|| values.get(*index as usize))
            .flatten();
        match value {
            None => Some((*index, "not quoted".to_string())),
            Some(v) => {
                let hex_value = hex::encode(v.0);
                (!ok.iter().any(|a| a.eq_ignore_ascii_case(&hex_value)))
                    .then_some((*index, hex_value))
            }
        }
    })
}
