//! The typed DCAP TDX quote (v4 and v5), parsed without trusting a single length field.
//!
//! References: Intel "TDX DCAP Quoting Library API" (quote format, Appendix A: header, TD quote
//! body, signature data, certification data types 5 and 6) and Intel "TDX Module ABI"
//! (TDREPORT / TD_ATTRIBUTES). All integers are little-endian.
//!
//! Layout: header (48 B) ‖ body ‖ signature data length (u32) ‖ signature data. The body is the
//! TD report: v4 always the 584-byte TDX 1.0 body; v5 starts with `body_type` (u16: 2 = TDX 1.0,
//! 584 B; 3 = TDX 1.5, 648 B) and `size` (u32). The quote signature covers header ‖ body (for v5
//! including its type and size). Signature data: ECDSA-P256 signature (64) ‖ attestation key
//! (64) ‖ certification data type 6 (QE report 384 ‖ QE report signature 64 ‖ QE auth data
//! (u16 length) ‖ certification data type 5: the PCK certificate chain, PEM).

use crate::tdx::TdxError;
use crate::{Measurement, ReportData};

/// Length of the quote header.
pub const HEADER_LEN: usize = 48;
/// Length of a TDX 1.0 TD report body (quote v4, or v5 body type 2).
pub const TD10_BODY_LEN: usize = 584;
/// Length of a TDX 1.5 TD report body (quote v5 body type 3).
pub const TD15_BODY_LEN: usize = 648;
/// Length of an SGX enclave report (the QE report).
pub const QE_REPORT_LEN: usize = 384;
/// `tee_type` of a TDX quote.
pub const TEE_TYPE_TDX: u32 = 0x81;
/// `att_key_type` 2: ECDSA-256 with P-256.
pub const ATT_KEY_ECDSA_P256: u16 = 2;
/// Certification data type 5: PCK certificate chain (PEM).
pub const CERT_TYPE_PCK_CHAIN: u16 = 5;
/// Certification data type 6: QE report certification data.
pub const CERT_TYPE_QE_REPORT: u16 = 6;
/// Intel's QE vendor id (`939A7233-F79C-4CA9-940A-0DB3957F0607`).
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9, 0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07,
];

/// The quote header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteHeader {
    /// Quote version: 4 or 5.
    pub version: u16,
    /// Attestation key type: 2 (ECDSA P-256).
    pub attestation_key_type: u16,
    /// TEE type: 0x81 for TDX (0 is SGX).
    pub tee_type: u32,
    /// QE security version (informational; the QE report carries the checked one).
    pub qe_svn: u16,
    /// PCE security version (informational).
    pub pce_svn: u16,
    /// Vendor of the quoting enclave (Intel: [`INTEL_QE_VENDOR_ID`]).
    pub qe_vendor_id: [u8; 16],
    /// Custom data of the quoting enclave (the first 16 bytes are the platform's QE id).
    pub user_data: [u8; 20],
}

/// The TD attributes (`TD_ATTRIBUTES`, 64 bits, little-endian in the report).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TdAttributes(pub [u8; 8]);

impl TdAttributes {
    /// Bit 0: the TD runs in debug mode — the host VMM can read and write its state and memory.
    pub const DEBUG: u64 = 1;
    /// The TUD group (bits 0..=7: "TD under debug"): any set bit makes the TD untrusted
    /// (bit 0 DEBUG; bits 4..=6 profiling and related debug features).
    pub const TUD_MASK: u64 = 0xFF;

    /// The attributes as a 64-bit value.
    pub fn bits(&self) -> u64 {
        u64::from_le_bytes(self.0)
    }

    /// True if the DEBUG bit is set.
    pub fn debug(&self) -> bool {
        self.bits() & Self::DEBUG != 0
    }

    /// True if any bit of the "TD under debug" group is set.
    pub fn under_debug(&self) -> bool {
        self.bits() & Self::TUD_MASK != 0
    }
}

impl std::fmt::Debug for TdAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TdAttributes({})", hex::encode(self.0))
    }
}

/// Which TD report layout the quote carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TdReportKind {
    /// TDX 1.0: 584 bytes (quote v4, or v5 body type 2).
    Td10,
    /// TDX 1.5: 648 bytes (quote v5 body type 3): adds TEE_TCB_SVN2 and MRSERVICETD.
    Td15,
}

/// The TD report carried in the quote body (the fields the TDX module measured).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdReport {
    /// Layout of the body.
    pub kind: TdReportKind,
    /// TEE_TCB_SVN: the TDX module's SVNs (byte 0 = module ISVSVN).
    pub tee_tcb_svn: [u8; 16],
    /// MRSEAM: measurement of the TDX module.
    pub mrseam: Measurement,
    /// MRSIGNERSEAM: signer of the TDX module (zero for Intel's).
    pub mrsignerseam: Measurement,
    /// SEAMATTRIBUTES.
    pub seam_attributes: [u8; 8],
    /// TD_ATTRIBUTES.
    pub td_attributes: TdAttributes,
    /// XFAM: the extended CPU features enabled for the TD.
    pub xfam: [u8; 8],
    /// MRTD: measurement of the initial TD contents (firmware), the TD's launch measurement.
    pub mrtd: Measurement,
    /// MRCONFIGID: software-defined configuration id set by the host at launch.
    pub mrconfigid: Measurement,
    /// MROWNER: software-defined owner id set by the host at launch.
    pub mrowner: Measurement,
    /// MROWNERCONFIG: software-defined owner configuration set by the host at launch.
    pub mrownerconfig: Measurement,
    /// RTMR0..3: runtime measurement registers (firmware, OS loader, OS, application).
    pub rtmr: [Measurement; 4],
    /// REPORTDATA: the 64 bytes the guest bound into the report.
    pub report_data: ReportData,
    /// TEE_TCB_SVN2 (TDX 1.5 only): the module SVNs after TD-preserving updates.
    pub tee_tcb_svn2: Option<[u8; 16]>,
    /// MRSERVICETD (TDX 1.5 only): hash of the bound service TDs (zero when none).
    pub mrservicetd: Option<Measurement>,
}

/// The quote's signature data: the attestation-key signature and the QE certification data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteSignature {
    /// ECDSA P-256 signature (r ‖ s, big-endian) over header ‖ body.
    pub signature: [u8; 64],
    /// The attestation key (uncompressed P-256 point without the 0x04 prefix: x ‖ y).
    pub attestation_key: [u8; 64],
    /// The quoting enclave's SGX report (384 bytes).
    pub qe_report: [u8; QE_REPORT_LEN],
    /// ECDSA P-256 signature of the QE report by the PCK leaf key.
    pub qe_report_signature: [u8; 64],
    /// QE authentication data (hashed with the attestation key into the QE report).
    pub qe_auth_data: Vec<u8>,
    /// Type of the inner certification data (5 = PCK chain).
    pub pck_cert_data_type: u16,
    /// The inner certification data: for type 5, the PEM PCK chain (leaf first).
    pub pck_cert_data: Vec<u8>,
}

impl QuoteSignature {
    /// The QE report's REPORT_DATA (bytes 320..384).
    pub fn qe_report_data(&self) -> &[u8] {
        self.qe_report.get(320..).unwrap_or_default()
    }
}

/// A parsed TDX quote. Parsing checks structure only; nothing here is verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxQuote {
    /// The header.
    pub header: QuoteHeader,
    /// The TD report.
    pub report: TdReport,
    /// The signature data.
    pub signature: QuoteSignature,
    /// Number of bytes the quote signature covers (header ‖ body).
    pub signed_len: usize,
    /// Bytes after the signature data (quote buffers are often padded); ignored.
    pub trailing_len: usize,
}

/// A bounds-checked little-endian reader: every read either succeeds or names what was cut off.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TdxError> {
        let end = self.pos.checked_add(n);
        let slice = end.and_then(|end| self.bytes.get(self.pos..end));
        match (slice, end) {
            (Some(s), Some(end)) => {
                self.pos = end;
                Ok(s)
            }
            _ => Err(TdxError::Malformed(format!(
                "{what}: needs {n} bytes at offset {}, only {} left",
                self.pos,
                self.bytes.len().saturating_sub(self.pos)
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], TdxError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u16(&mut self, what: &str) -> Result<u16, TdxError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, TdxError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn measurement(&mut self, what: &str) -> Result<Measurement, TdxError> {
        Ok(Measurement(self.array(what)?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }
}

fn len_of(n: u32) -> usize {
    // u32 always fits in usize on the 32/64-bit targets we build for; saturate otherwise.
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl TdxQuote {
    /// Parses a TDX quote. Never panics and never reads out of bounds, whatever the input.
    pub fn parse(bytes: &[u8]) -> Result<Self, TdxError> {
        let mut r = Reader::new(bytes);
        let header = parse_header(&mut r)?;
        let report = match header.version {
            4 => parse_td_report(&mut r, TdReportKind::Td10)?,
            5 => {
                let body_type = r.u16("v5 body type")?;
                let size = len_of(r.u32("v5 body size")?);
                let (kind, expected) = match body_type {
                    2 => (TdReportKind::Td10, TD10_BODY_LEN),
                    3 => (TdReportKind::Td15, TD15_BODY_LEN),
                    1 => return Err(TdxError::Unsupported("v5 body type 1 (SGX enclave)".into())),
                    4 => {
                        return Err(TdxError::Unsupported(
                            "v5 body type 4 (TDX 1.5 with service-TD extensions)".into(),
                        ))
                    }
                    other => return Err(TdxError::Unsupported(format!("v5 body type {other}"))),
                };
                if size != expected {
                    return Err(TdxError::Malformed(format!(
                        "v5 body type {body_type} has size {size}, expected {expected}"
                    )));
                }
                parse_td_report(&mut r, kind)?
            }
            // parse_header refused every other version.
            other => return Err(TdxError::Unsupported(format!("quote version {other}"))),
        };
        let signed_len = r.pos;
        let sig_len = len_of(r.u32("signature data length")?);
        let sig_bytes = r.take(sig_len, "signature data")?;
        let signature = parse_signature(sig_bytes)?;
        Ok(Self {
            header,
            report,
            signature,
            signed_len,
            trailing_len: r.remaining(),
        })
    }
}

fn parse_header(r: &mut Reader<'_>) -> Result<QuoteHeader, TdxError> {
    let header = QuoteHeader {
        version: r.u16("header version")?,
        attestation_key_type: r.u16("header attestation key type")?,
        tee_type: r.u32("header tee type")?,
        qe_svn: r.u16("header qe svn")?,
        pce_svn: r.u16("header pce svn")?,
        qe_vendor_id: r.array("header qe vendor id")?,
        user_data: r.array("header user data")?,
    };
    if header.tee_type != TEE_TYPE_TDX {
        let kind = if header.tee_type == 0 {
            "SGX enclave quote"
        } else {
            "unknown TEE"
        };
        return Err(TdxError::Unsupported(format!(
            "tee type {:#x} ({kind}), not TDX (0x81)",
            header.tee_type
        )));
    }
    if header.version != 4 && header.version != 5 {
        return Err(TdxError::Unsupported(format!(
            "quote version {} (TDX quotes are version 4 or 5)",
            header.version
        )));
    }
    if header.attestation_key_type != ATT_KEY_ECDSA_P256 {
        return Err(TdxError::Unsupported(format!(
            "attestation key type {} (only 2 = ECDSA P-256)",
            header.attestation_key_type
        )));
    }
    Ok(header)
}

fn parse_td_report(r: &mut Reader<'_>, kind: TdReportKind) -> Result<TdReport, TdxError> {
    let tee_tcb_svn = r.array("TEE_TCB_SVN")?;
    let mrseam = r.measurement("MRSEAM")?;
    let mrsignerseam = r.measurement("MRSIGNERSEAM")?;
    let seam_attributes = r.array("SEAMATTRIBUTES")?;
    let td_attributes = TdAttributes(r.array("TDATTRIBUTES")?);
    let xfam = r.array("XFAM")?;
    let mrtd = r.measurement("MRTD")?;
    let mrconfigid = r.measurement("MRCONFIGID")?;
    let mrowner = r.measurement("MROWNER")?;
    let mrownerconfig = r.measurement("MROWNERCONFIG")?;
    let rtmr = [
        r.measurement("RTMR0")?,
        r.measurement("RTMR1")?,
        r.measurement("RTMR2")?,
        r.measurement("RTMR3")?,
    ];
    let report_data = ReportData(r.array("REPORTDATA")?);
    let (tee_tcb_svn2, mrservicetd) = match kind {
        TdReportKind::Td10 => (None, None),
        TdReportKind::Td15 => (
            Some(r.array("TEE_TCB_SVN2")?),
            Some(r.measurement("MRSERVICETD")?),
        ),
    };
    Ok(TdReport {
        kind,
        tee_tcb_svn,
        mrseam,
        mrsignerseam,
        seam_attributes,
        td_attributes,
        xfam,
        mrtd,
        mrconfigid,
        mrowner,
        mrownerconfig,
        rtmr,
        report_data,
        tee_tcb_svn2,
        mrservicetd,
    })
}

fn parse_signature(bytes: &[u8]) -> Result<QuoteSignature, TdxError> {
    let mut r = Reader::new(bytes);
    let signature = r.array("quote signature")?;
    let attestation_key = r.array("attestation key")?;
    let cert_type = r.u16("certification data type")?;
    let cert_len = len_of(r.u32("certification data size")?);
    if cert_type != CERT_TYPE_QE_REPORT {
        return Err(TdxError::Unsupported(format!(
            "certification data type {cert_type} (TDX quotes carry type 6, QE report)"
        )));
    }
    let mut c = Reader::new(r.take(cert_len, "certification data")?);
    let qe_report = c.array("QE report")?;
    let qe_report_signature = c.array("QE report signature")?;
    let auth_len = usize::from(c.u16("QE authentication data size")?);
    let qe_auth_data = c.take(auth_len, "QE authentication data")?.to_vec();
    let pck_cert_data_type = c.u16("PCK certification data type")?;
    let pck_len = len_of(c.u32("PCK certification data size")?);
    let pck_cert_data = c.take(pck_len, "PCK certification data")?.to_vec();
    if c.remaining() != 0 {
        return Err(TdxError::Malformed(format!(
            "{} bytes after the PCK certification data inside the QE certification data",
            c.remaining()
        )));
    }
    if pck_cert_data_type != CERT_TYPE_PCK_CHAIN {
        return Err(TdxError::Unsupported(format!(
            "PCK certification data type {pck_cert_data_type} (only 5, the PCK chain, can be \
             verified offline)"
        )));
    }
    Ok(QuoteSignature {
        signature,
        attestation_key,
        qe_report,
        qe_report_signature,
        qe_auth_data,
        pck_cert_data_type,
        pck_cert_data,
    })
}
