//! The guest side on an Azure confidential VM: [`AzureVtpmAttester`] writes the report data to
//! vTPM NV 0x01400002, reads the HCL report the paravisor puts in 0x01400001, checks its
//! runtime data carries our report data and the AK at 0x81000003, takes a TPM2_Quote over the
//! boot PCRs with extraData = [`quote_nonce`], and fetches the VCEK chain from IMDS (THIM).
//! Order and reasons: docs/attestation.md, "Azure confidential VMs (vTPM)", guest side.

use std::sync::Mutex;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::imds::{ImdsClient, ImdsError, ACC_TDQUOTE, THIM_AMD_CERTIFICATION};
use super::tpm_client::{
    Tpm, TpmError, TpmTransport, TPMA_NV_NO_DA, TPMA_NV_OWNERREAD, TPMA_NV_OWNERWRITE,
};
use super::{
    quote_nonce, AzureError, AzureSnpEvidence, AzureTdxEvidence, HclReport, HclReportType,
    PcrValue, QuoteAttest, RuntimeClaims, TpmQuote,
};
use crate::{AttestError, Attester, Evidence, ReportData, SnpCertChain, TeeKind};

/// NV index of the HCL report (written by the paravisor).
pub const NV_HCL_REPORT: u32 = 0x0140_0001;
/// NV index the guest writes its 64 bytes of report data to.
pub const NV_REPORT_DATA: u32 = 0x0140_0002;
/// Persistent handle of the vTPM attestation key (`HCLAkPub`).
pub const AK_HANDLE: u32 = 0x8100_0003;
/// The PCRs quoted by default: all 24 of the SHA-256 bank (as trustee's `az-snp-vtpm` does),
/// so a policy can pin any of them.
pub const DEFAULT_PCRS: [u32; 24] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
];
/// How often a quote is retaken when a PCR changes between the quote and PCR_Read.
const QUOTE_TRIES: usize = 3;

/// Why the Azure vTPM attester produced no evidence. Messages name the interface and the step.
#[derive(Debug, thiserror::Error)]
pub enum VtpmAttestError {
    /// A TPM command failed.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// IMDS failed.
    #[error(transparent)]
    Imds(#[from] ImdsError),
    /// The HCL report read from NV 0x01400001 does not parse.
    #[error("vtpm: HCL report read from NV 0x01400001 is invalid")]
    Hcl(#[source] AzureError),
    /// The HCL report carries another hardware report than this attester's TEE.
    #[error("vtpm: HCL report carries a {found:?} report, this attester is for {expected:?}")]
    WrongReportType {
        /// Found.
        found: HclReportType,
        /// Expected.
        expected: HclReportType,
    },
    /// The runtime-claims JSON does not parse.
    #[error("vtpm: HCL runtime data is invalid")]
    RuntimeData(#[source] AzureError),
    /// `user-data` is not what was just written to 0x01400002: another writer in between, or a
    /// paravisor that did not refresh the report. Never published as evidence.
    #[error("vtpm: HCL runtime data user-data is not the report data written to NV 0x01400002")]
    UserDataMismatch,
    /// HCLAkPub in the runtime data is not the key at 0x81000003.
    #[error("vtpm: HCLAkPub in the runtime data is not the attestation key at 0x81000003")]
    AkMismatch,
    /// The quote's own structure is wrong, or the PCRs kept changing.
    #[error("vtpm: Quote by 0x81000003: {0}")]
    Quote(String),
    /// THIM's answer is not a VCEK and its ASK/ARK chain.
    #[error("imds: THIM certification: {0}")]
    Thim(String),
    /// `/acc/tdquote`'s answer is not a quote of the TD report sent.
    #[error("imds: /acc/tdquote: {0}")]
    TdQuote(String),
}

#[derive(Deserialize)]
struct TdQuoteResponse {
    quote: String,
}

impl From<VtpmAttestError> for AttestError {
    fn from(e: VtpmAttestError) -> Self {
        AttestError::AzureVtpm(Box::new(e))
    }
}

#[derive(Deserialize)]
struct Thim {
    #[serde(rename = "vcekCert")]
    vcek_cert: String,
    #[serde(rename = "certificateChain")]
    certificate_chain: String,
}

/// TPM2_Quote by `ak` over SHA-256 `pcrs` with extraData `nonce`, then PCR_Read of the same PCRs,
/// retaken if a PCR moved in between; the values are listed by index from 0 (unquoted ones below
/// the highest are zero and not covered by the digest). Shared by the cloud vTPM attester.
pub(crate) fn quote_pcrs(
    tpm: &mut Tpm<Box<dyn TpmTransport>>,
    ak: u32,
    nonce: &[u8],
    pcrs: &[u32],
) -> Result<TpmQuote, VtpmAttestError> {
    for _ in 0..QUOTE_TRIES {
        let (message, signature) = tpm.quote(ak, nonce, pcrs)?;
        let attest =
            QuoteAttest::parse(&message).map_err(|e| VtpmAttestError::Quote(e.to_string()))?;
        if attest.extra_data != nonce {
            return Err(VtpmAttestError::Quote(
                "extraData is not the nonce sent".into(),
            ));
        }
        let values = tpm.pcr_read(pcrs)?;
        let mut h = Sha256::new();
        for (_, v) in &values {
            h.update(v);
        }
        if h.finalize().as_slice() != attest.pcr_digest.as_slice() {
            continue;
        }
        let top = values.last().map_or(0, |(i, _)| *i as usize + 1);
        let mut listed = vec![PcrValue([0u8; 32]); top];
        for (i, v) in values {
            listed[i as usize] = PcrValue(v);
        }
        return Ok(TpmQuote {
            message,
            signature,
            pcrs: listed,
        });
    }
    Err(VtpmAttestError::Quote(format!(
        "PCR values changed between Quote and PCR_Read {QUOTE_TRIES} times"
    )))
}

/// Evidence from an Azure SEV-SNP confidential VM's vTPM (Microsoft's paravisor).
pub struct AzureVtpmAttester {
    tee: TeeKind,
    tpm: Mutex<Tpm<Box<dyn TpmTransport>>>,
    imds: Box<dyn ImdsClient>,
    pcrs: Vec<u32>,
}

impl std::fmt::Debug for AzureVtpmAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureVtpmAttester")
            .field("pcrs", &self.pcrs)
            .finish_non_exhaustive()
    }
}

/// `b` without its leading zero bytes (big-endian integers compared by value).
pub(crate) fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

impl AzureVtpmAttester {
    /// An attester over the vTPM `transport` (`DeviceTransport::open("/dev/tpmrm0")` in a guest)
    /// and IMDS (`HttpImds::azure()` in a guest), quoting [`DEFAULT_PCRS`].
    pub fn new(transport: impl TpmTransport + 'static, imds: impl ImdsClient + 'static) -> Self {
        Self {
            tee: TeeKind::SevSnp,
            tpm: Mutex::new(Tpm::new(Box::new(transport))),
            imds: Box::new(imds),
            pcrs: DEFAULT_PCRS.to_vec(),
        }
    }

    /// The same for an Azure TDX confidential VM (DCesv5/ECesv5): the HCL report carries a TD
    /// report, which IMDS `/acc/tdquote` turns into a DCAP quote.
    pub fn tdx(transport: impl TpmTransport + 'static, imds: impl ImdsClient + 'static) -> Self {
        Self {
            tee: TeeKind::Tdx,
            ..Self::new(transport, imds)
        }
    }

    /// Quotes `pcrs` instead of all 24 (each < 24; the policy's PCRs must be among them).
    pub fn with_pcrs(mut self, pcrs: &[u32]) -> Self {
        let mut p: Vec<u32> = pcrs.iter().copied().filter(|&i| i < 24).collect();
        p.sort_unstable();
        p.dedup();
        self.pcrs = p;
        self
    }

    /// Steps 1–5 under one TPM lock: write report data, read and check the HCL report, quote.
    fn hcl_and_quote(
        &self,
        report_data: &ReportData,
        expected: HclReportType,
    ) -> Result<(Vec<u8>, TpmQuote), VtpmAttestError> {
        let mut tpm = self
            .tpm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // 1. Report data into 0x01400002 (defined first if this boot has not, as Azure's
        //    tooling does); the paravisor refreshes the HCL report on this write.
        match tpm.nv_read_public(NV_REPORT_DATA) {
            Ok(_) => {}
            Err(e) if e.is_missing_handle() => tpm.nv_define_space(
                NV_REPORT_DATA,
                64,
                TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_NO_DA,
            )?,
            Err(e) => return Err(e.into()),
        }
        tpm.nv_write(NV_REPORT_DATA, report_data.as_bytes())?;
        // 2. The HCL report.
        let hcl_bytes = tpm.nv_read(NV_HCL_REPORT)?;
        let hcl = HclReport::parse(&hcl_bytes).map_err(VtpmAttestError::Hcl)?;
        if hcl.report_type != expected {
            return Err(VtpmAttestError::WrongReportType {
                found: hcl.report_type,
                expected,
            });
        }
        // 3. Its runtime data must carry our report data, as the verifier will require.
        let runtime =
            RuntimeClaims::parse(hcl.runtime_data).map_err(VtpmAttestError::RuntimeData)?;
        if runtime.user_data != *report_data {
            return Err(VtpmAttestError::UserDataMismatch);
        }
        // 4. The AK it names is the one that will sign the quote.
        let ak = tpm.read_public(AK_HANDLE)?;
        let exponent = ak.exponent.to_be_bytes();
        if strip_zeros(&ak.modulus) != strip_zeros(&runtime.ak.n)
            || strip_zeros(&exponent) != strip_zeros(&runtime.ak.e)
        {
            return Err(VtpmAttestError::AkMismatch);
        }
        // 5. Quote, then the PCR values it covers; retaken if a PCR moved in between.
        let quote = quote_pcrs(&mut tpm, AK_HANDLE, &quote_nonce(report_data), &self.pcrs)?;
        Ok((hcl_bytes, quote))
    }

    fn thim_chain(&self) -> Result<SnpCertChain, VtpmAttestError> {
        let body = self.imds.get(THIM_AMD_CERTIFICATION)?;
        let thim: Thim = serde_json::from_slice(&body)
            .map_err(|e| VtpmAttestError::Thim(format!("not the THIM JSON: {e}")))?;
        let mut vcek = crate::pem::certificates(thim.vcek_cert.as_bytes())
            .map_err(|e| VtpmAttestError::Thim(format!("vcekCert: {e}")))?;
        let chain = crate::pem::certificates(thim.certificate_chain.as_bytes())
            .map_err(|e| VtpmAttestError::Thim(format!("certificateChain: {e}")))?;
        let (Some(vcek), None) = (vcek.pop(), vcek.pop()) else {
            return Err(VtpmAttestError::Thim(
                "vcekCert does not hold exactly one certificate".into(),
            ));
        };
        let [ask, ark] = <[Vec<u8>; 2]>::try_from(chain).map_err(|c| {
            VtpmAttestError::Thim(format!(
                "certificateChain holds {} certificates, not ASK and ARK",
                c.len()
            ))
        })?;
        Ok(SnpCertChain { vcek, ask, ark })
    }

    /// Evidence for `report_data`, with this module's error type.
    pub fn snp_evidence(
        &self,
        report_data: &ReportData,
    ) -> Result<AzureSnpEvidence, VtpmAttestError> {
        let (hcl_report, tpm_quote) = self.hcl_and_quote(report_data, HclReportType::Snp)?;
        let chain = self.thim_chain()?;
        Ok(AzureSnpEvidence {
            hcl_report,
            tpm_quote,
            chain,
            gpus: Vec::new(),
        })
    }
}

impl AzureVtpmAttester {
    /// TDX evidence for `report_data`, with this module's error type.
    pub fn tdx_evidence(
        &self,
        report_data: &ReportData,
    ) -> Result<AzureTdxEvidence, VtpmAttestError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let (hcl_report, tpm_quote) = self.hcl_and_quote(report_data, HclReportType::Tdx)?;
        let hcl = HclReport::parse(&hcl_report).map_err(VtpmAttestError::Hcl)?;
        let td_report = hcl.hw_report;
        let body = serde_json::json!({ "report": URL_SAFE_NO_PAD.encode(td_report) });
        let answer = self
            .imds
            .post_json(ACC_TDQUOTE, body.to_string().as_bytes())?;
        let answer: TdQuoteResponse = serde_json::from_slice(&answer)
            .map_err(|e| VtpmAttestError::TdQuote(format!("not {{\"quote\": …}}: {e}")))?;
        let td_quote = URL_SAFE_NO_PAD
            .decode(answer.quote.trim_end_matches('=').as_bytes())
            .map_err(|e| VtpmAttestError::TdQuote(format!("quote is not base64url: {e}")))?;
        let quote = crate::tdx::TdxQuote::parse(&td_quote)
            .map_err(|e| VtpmAttestError::TdQuote(format!("not a TDX quote: {e}")))?;
        if td_report.get(128..192) != Some(&quote.report.report_data.0[..]) {
            return Err(VtpmAttestError::TdQuote(
                "the quote's REPORTDATA is not the TD report's".into(),
            ));
        }
        Ok(AzureTdxEvidence {
            hcl_report,
            tpm_quote,
            td_quote,
            gpus: Vec::new(),
        })
    }
}

impl Attester for AzureVtpmAttester {
    fn interface(&self) -> &'static str {
        "azure-vtpm"
    }

    fn tee(&self) -> TeeKind {
        self.tee
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, AttestError> {
        Ok(match self.tee {
            TeeKind::Tdx => Evidence::AzureTdxVtpm(self.tdx_evidence(report_data)?),
            TeeKind::SevSnp => Evidence::AzureSevSnpVtpm(self.snp_evidence(report_data)?),
        })
    }
}
