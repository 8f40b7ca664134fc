//! TPM 2.0 command marshalling and response parsing (TPM 2.0 Library, Parts 2 and 3), big-endian.
//! Every length read from the TPM is bounded by the bytes actually received and by the limits
//! of the structure it sizes; any input parses or is refused with a reason, never a panic.

/// `TPM_ST_NO_SESSIONS`.
pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
/// `TPM_ST_SESSIONS`.
pub const TPM_ST_SESSIONS: u16 = 0x8002;
/// `TPM_RS_PW`: the password authorization session.
pub const TPM_RS_PW: u32 = 0x4000_0009;
/// The largest command or response this client sends or accepts (real TPMs: 4096).
pub const MAX_TPM_MESSAGE: usize = 16 * 1024;
/// Size of a response header (tag, size, response code).
pub const HEADER_LEN: usize = 10;

/// A command under construction: header, handles, optional password session, parameters.
pub(crate) struct Cmd {
    buf: Vec<u8>,
}

impl Cmd {
    pub(crate) fn new(code: u32, sessions: bool) -> Self {
        let tag = if sessions {
            TPM_ST_SESSIONS
        } else {
            TPM_ST_NO_SESSIONS
        };
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&tag.to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(&code.to_be_bytes());
        Self { buf }
    }
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// A `TPM2B_*`. Callers pass at most a few KiB (bounded by MAX_TPM_MESSAGE at `finish`).
    pub(crate) fn tpm2b(&mut self, v: &[u8]) -> &mut Self {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.u16(len);
        self.bytes(&v[..usize::from(len)])
    }
    /// One password session (`TPM_RS_PW`) with an empty password, for each authorized handle.
    pub(crate) fn pw_sessions(&mut self, count: u32) -> &mut Self {
        self.u32(9 * count);
        for _ in 0..count {
            self.u32(TPM_RS_PW).u16(0).u8(0).u16(0);
        }
        self
    }
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[2..6].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}

/// A successful response, split: the handle area and the parameter area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// Handles the command returns (4 bytes each).
    pub handles: Vec<u32>,
    /// The response parameters (without the session area).
    pub params: &'a [u8],
}

/// The response code of a response, or why the bytes are not a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// The TPM answered with this non-zero `TPM_RC`.
    Code(u32),
    /// Not a TPM response.
    Malformed(String),
}

/// Splits `bytes` for a command that returns `handles` handles and was sent with (`sessions`)
/// or without authorization sessions.
pub fn parse_response(
    bytes: &[u8],
    handles: usize,
    sessions: bool,
) -> Result<Response<'_>, ResponseError> {
    let mut r = Reader::new(bytes);
    let tag = r.u16().map_err(ResponseError::Malformed)?;
    let size = r.u32().map_err(ResponseError::Malformed)?;
    let rc = r.u32().map_err(ResponseError::Malformed)?;
    if usize::try_from(size).ok() != Some(bytes.len()) {
        return Err(ResponseError::Malformed(format!(
            "header size {size} but {} bytes received",
            bytes.len()
        )));
    }
    if tag != TPM_ST_NO_SESSIONS && tag != TPM_ST_SESSIONS {
        return Err(ResponseError::Malformed(format!("tag {tag:#06x}")));
    }
    if rc != 0 {
        return Err(ResponseError::Code(rc));
    }
    let expect_tag = if sessions {
        TPM_ST_SESSIONS
    } else {
        TPM_ST_NO_SESSIONS
    };
    if tag != expect_tag {
        return Err(ResponseError::Malformed(format!(
            "tag {tag:#06x}, expected {expect_tag:#06x}"
        )));
    }
    let mut hs = Vec::with_capacity(handles);
    for _ in 0..handles {
        hs.push(r.u32().map_err(ResponseError::Malformed)?);
    }
    let params = if sessions {
        let n = r.u32().map_err(ResponseError::Malformed)?;
        let n = usize::try_from(n).map_err(|_| ResponseError::Malformed("size".into()))?;
        r.take(n).map_err(ResponseError::Malformed)?
    } else {
        r.rest()
    };
    Ok(Response {
        handles: hs,
        params,
    })
}

/// A bounds-checked big-endian reader.
#[derive(Debug)]
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("truncated: {n} bytes wanted at byte {}", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    /// A `UINT16`.
    pub fn u16(&mut self) -> Result<u16, String> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    /// A `UINT32`.
    pub fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    /// A `TPM2B_*` of at most `max` bytes.
    pub fn tpm2b(&mut self, max: usize, what: &str) -> Result<&'a [u8], String> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(format!("{what} is {n} bytes, more than {max}"));
        }
        self.take(n)
    }
    /// Fails if bytes are left.
    pub fn end(&self, what: &str) -> Result<(), String> {
        if self.at == self.b.len() {
            Ok(())
        } else {
            Err(format!("{} bytes after {what}", self.b.len() - self.at))
        }
    }
}

/// A `TPML_PCR_SELECTION` with one SHA-256 bank selecting `pcrs` (each < 24).
pub(crate) fn pcr_selection(cmd: &mut Cmd, pcrs: &[u32]) {
    let mut bitmap = [0u8; 3];
    for &p in pcrs.iter().filter(|&&p| p < 24) {
        bitmap[(p / 8) as usize] |= 1 << (p % 8);
    }
    cmd.u32(1)
        .u16(crate::azure::TPM_ALG_SHA256)
        .u8(3)
        .bytes(&bitmap);
}

/// Parses a `TPML_PCR_SELECTION` into (bank, ascending PCR indices) pairs; at most 16 banks
/// and 64 bytes of bitmap each.
pub fn read_pcr_selection(r: &mut Reader<'_>) -> Result<Vec<(u16, Vec<u32>)>, String> {
    let count = r.u32()?;
    if count > 16 {
        return Err(format!("{count} PCR banks"));
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let alg = r.u16()?;
        let size = r.u8()?;
        if size > 64 {
            return Err(format!("PCR bitmap of {size} bytes"));
        }
        let bitmap = r.take(usize::from(size))?;
        let pcrs = (0u32..)
            .zip(
                bitmap
                    .iter()
                    .flat_map(|byte| (0..8).map(move |bit| byte >> bit & 1 == 1)),
            )
            .filter_map(|(i, on)| on.then_some(i))
            .collect();
        out.push((alg, pcrs));
    }
    Ok(out)
}

/// The public part of an NV index (`TPMS_NV_PUBLIC`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvPublic {
    /// The index handle.
    pub index: u32,
    /// Name algorithm.
    pub name_alg: u16,
    /// `TPMA_NV` bits.
    pub attributes: u32,
    /// Size of the data in bytes.
    pub data_size: u16,
}

/// Parses NV_ReadPublic's parameters (`TPM2B_NV_PUBLIC`, `TPM2B_NAME`).
pub fn parse_nv_read_public(params: &[u8]) -> Result<NvPublic, String> {
    let mut r = Reader::new(params);
    let public = r.tpm2b(512, "nvPublic")?;
    let _name = r.tpm2b(66, "nvName")?;
    r.end("NV_ReadPublic response")?;
    let mut p = Reader::new(public);
    let index = p.u32()?;
    let name_alg = p.u16()?;
    let attributes = p.u32()?;
    let _policy = p.tpm2b(64, "authPolicy")?;
    let data_size = p.u16()?;
    p.end("TPMS_NV_PUBLIC")?;
    Ok(NvPublic {
        index,
        name_alg,
        attributes,
        data_size,
    })
}

/// Parses NV_Read's parameters (`TPM2B_MAX_NV_BUFFER` of at most `requested` bytes).
pub fn parse_nv_read(params: &[u8], requested: usize) -> Result<&[u8], String> {
    let mut r = Reader::new(params);
    let data = r.tpm2b(requested, "data")?;
    r.end("NV_Read response")?;
    Ok(data)
}

/// Parses PCR_Read's parameters: the selection actually read and its SHA-256 digests, paired.
pub fn parse_pcr_read(params: &[u8]) -> Result<Vec<(u32, [u8; 32])>, String> {
    let mut r = Reader::new(params);
    let _update_counter = r.u32()?;
    let selection = read_pcr_selection(&mut r)?;
    let count = r.u32()?;
    // TPML_DIGEST holds at most 8 digests.
    if count > 8 {
        return Err(format!("{count} digests in TPML_DIGEST"));
    }
    let mut digests = Vec::new();
    for _ in 0..count {
        let d: [u8; 32] = r
            .tpm2b(64, "digest")?
            .try_into()
            .map_err(|_| "a PCR digest is not 32 bytes (SHA-256)".to_string())?;
        digests.push(d);
    }
    r.end("PCR_Read response")?;
    let mut pcrs = Vec::new();
    for (alg, indices) in selection {
        if alg != crate::azure::TPM_ALG_SHA256 {
            if indices.is_empty() {
                continue;
            }
            return Err(format!("PCR bank {alg:#06x} returned, not SHA-256"));
        }
        pcrs.extend(indices);
    }
    if pcrs.len() != digests.len() {
        return Err(format!(
            "{} PCRs selected but {} digests",
            pcrs.len(),
            digests.len()
        ));
    }
    Ok(pcrs.into_iter().zip(digests).collect())
}

/// Parses Quote's parameters: the `TPMS_ATTEST` bytes and the raw RSASSA/SHA-256 signature.
pub fn parse_quote(params: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut r = Reader::new(params);
    let attest = r.tpm2b(2048, "quoted")?.to_vec();
    let signature = crate::azure::rsassa_sha256_signature(r.rest()).map_err(|e| e.to_string())?;
    Ok((attest, signature))
}

/// An RSA public key read from the TPM (`TPMT_PUBLIC` of type RSA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmRsaPublic {
    /// `TPMA_OBJECT` bits.
    pub attributes: u32,
    /// Modulus, big-endian.
    pub modulus: Vec<u8>,
    /// Public exponent (0 in the TPM means 65537).
    pub exponent: u32,
}

impl TpmRsaPublic {
    /// The exponent the key uses: TPM 2.0 Part 2 stores 65537 as 0.
    pub fn public_exponent(&self) -> u32 {
        match self.exponent {
            0 => 65_537,
            e => e,
        }
    }
}

/// Parses a `TPMT_PUBLIC` of type RSA (as in ReadPublic's or CreatePrimary's `TPM2B_PUBLIC`).
pub fn parse_rsa_public(public: &[u8]) -> Result<TpmRsaPublic, String> {
    const TPM_ALG_RSA: u16 = 0x0001;
    const TPM_ALG_NULL: u16 = 0x0010;
    let mut p = Reader::new(public);
    let ty = p.u16()?;
    if ty != TPM_ALG_RSA {
        return Err(format!("key type {ty:#06x} is not RSA"));
    }
    let _name_alg = p.u16()?;
    let attributes = p.u32()?;
    let _policy = p.tpm2b(64, "authPolicy")?;
    // TPMT_SYM_DEF_OBJECT: algorithm, then keyBits and mode unless NULL.
    if p.u16()? != TPM_ALG_NULL {
        p.u16()?;
        p.u16()?;
    }
    // TPMT_RSA_SCHEME: scheme, then hashAlg unless NULL.
    if p.u16()? != TPM_ALG_NULL {
        p.u16()?;
    }
    let _key_bits = p.u16()?;
    let exponent = p.u32()?;
    let modulus = p.tpm2b(512, "unique.rsa")?.to_vec();
    p.end("TPMT_PUBLIC")?;
    Ok(TpmRsaPublic {
        attributes,
        modulus,
        exponent: if exponent == 0 { 65537 } else { exponent },
    })
}

/// Parses ReadPublic's parameters: the object's RSA public area.
pub fn parse_read_public(params: &[u8]) -> Result<TpmRsaPublic, String> {
    let mut r = Reader::new(params);
    let public = r.tpm2b(1024, "outPublic")?;
    let _name = r.tpm2b(66, "name")?;
    let _qualified = r.tpm2b(66, "qualifiedName")?;
    r.end("ReadPublic response")?;
    parse_rsa_public(public)
}

/// Parses GetCapability(TPM_CAP_TPM_PROPERTIES)'s parameters: (property, value) pairs.
pub fn parse_tpm_properties(params: &[u8]) -> Result<Vec<(u32, u32)>, String> {
    const TPM_CAP_TPM_PROPERTIES: u32 = 6;
    let mut r = Reader::new(params);
    let _more = r.u8()?;
    let cap = r.u32()?;
    if cap != TPM_CAP_TPM_PROPERTIES {
        return Err(format!("capability {cap} returned, not TPM_PROPERTIES"));
    }
    let count = r.u32()?;
    if count > 256 {
        return Err(format!("{count} properties"));
    }
    let mut out = Vec::new();
    for _ in 0..count {
        out.push((r.u32()?, r.u32()?));
    }
    r.end("GetCapability response")?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn response(tag: u16, rc: u32, body: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&tag.to_be_bytes());
        r.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
        r.extend_from_slice(&rc.to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn response_framing_is_checked() {
        // NV_Write's error: TPM_RC_NV_AUTHORIZATION-like code comes back as Code.
        assert_eq!(
            parse_response(&response(TPM_ST_NO_SESSIONS, 0x14b, &[]), 0, true),
            Err(ResponseError::Code(0x14b))
        );
        // Size field disagreeing with the bytes received.
        let mut r = response(TPM_ST_NO_SESSIONS, 0, &[1, 2]);
        r.push(0);
        assert!(matches!(
            parse_response(&r, 0, false),
            Err(ResponseError::Malformed(_))
        ));
        // A session response: parameterSize bounds the parameters, the auth area follows.
        let body = [0, 0, 0, 2, 0xaa, 0xbb, 0, 0, 1, 0, 0];
        let r = response(TPM_ST_SESSIONS, 0, &body);
        assert_eq!(parse_response(&r, 0, true).unwrap().params, &[0xaa, 0xbb]);
        // parameterSize past the end.
        let r = response(TPM_ST_SESSIONS, 0, &[0xff, 0, 0, 0]);
        assert!(parse_response(&r, 0, true).is_err());
        // Truncated header.
        assert!(parse_response(&[0x80, 0x01, 0], 0, false).is_err());
    }

    #[test]
    fn pcr_read_pairs_selection_with_digests() {
        let mut p = vec![0, 0, 0, 7, 0, 0, 0, 1, 0, 0x0b, 3, 0b0000_0101, 0, 0];
        p.extend_from_slice(&[0, 0, 0, 2]);
        for v in [1u8, 2] {
            p.extend_from_slice(&[0, 32]);
            p.extend_from_slice(&[v; 32]);
        }
        assert_eq!(
            parse_pcr_read(&p).unwrap(),
            vec![(0, [1u8; 32]), (2, [2u8; 32])]
        );
        // One digest too few.
        let short = &p[..p.len() - 34];
        let mut short = short.to_vec();
        short[14..18].copy_from_slice(&[0, 0, 0, 1]);
        assert!(parse_pcr_read(&short).is_err());
    }

    #[test]
    fn nv_read_is_bounded_by_the_request() {
        assert_eq!(parse_nv_read(&[0, 2, 9, 9], 2).unwrap(), &[9, 9]);
        assert!(parse_nv_read(&[0, 3, 9, 9, 9], 2).is_err());
        assert!(parse_nv_read(&[0, 2, 9], 2).is_err());
    }
}
