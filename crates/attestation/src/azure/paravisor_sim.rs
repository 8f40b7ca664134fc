//! An emulated Azure paravisor for development and tests: swtpm is the vTPM, and a proxy in
//! front of it plays Microsoft's HCL. When the guest's NV_Write to 0x01400002 passes through,
//! it builds the runtime-claims JSON (`HCLAkPub` = the AK at 0x81000003, `user-data` = hex of
//! the written bytes), asks the simulated secure processor for an SNP report with
//! REPORT_DATA = SHA-256(JSON) ‖ 0³², and writes the HCL report to 0x01400001 before the guest
//! sees the write's response. A local IMDS serves THIM's VCEK/ASK/ARK of the simulated chain.
//! For a TDX CVM the HCL report carries a TD report instead, and IMDS `/acc/tdquote` quotes it
//! through [`ParavisorOptions::tdx_quoter`] ([`sim_tdx_quoter`]: the simulated TDX platform).
//!
//! Everything here is simulated: no shipped policy trusts the simulated root, so evidence from
//! this paravisor verifies only under a development policy (docs/attestation.md).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::attester::{AK_HANDLE, NV_HCL_REPORT, NV_REPORT_DATA};
use super::imds::{HttpImds, ACC_TDQUOTE, THIM_AMD_CERTIFICATION};
use super::swtpm::Swtpm;
use super::tpm_client::marshal::HEADER_LEN;
use super::tpm_client::{
    SocketTransport, Tpm, TpmError, TpmRsaPublic, TpmTransport, TPMA_NV_NO_DA, TPMA_NV_OWNERREAD,
    TPMA_NV_OWNERWRITE,
};
use super::{
    AzureVtpmAttester, HclReportType, HCL_HEADER_LEN, HCL_SIGNATURE, HW_REPORT_LEN,
    RUNTIME_HEADER_LEN, TDREPORT_LEN, TDREPORT_MRTD, TDREPORT_REPORTDATA,
};
use crate::sim::{SimError, SimReportOptions, SimSecureProcessor};
use crate::{Evidence, Measurement, ReportData, SnpCertChain};

/// `TPM_RC_FAILURE`: what the guest sees if the paravisor cannot refresh the HCL report.
const TPM_RC_FAILURE: u32 = 0x101;
const CC_NV_WRITE: u32 = 0x137;

/// Why the emulated paravisor could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ParavisorError {
    /// The `swtpm` binary is not installed.
    #[error("paravisor: cannot run swtpm (install the Debian packages swtpm and swtpm-tools)")]
    SwtpmMissing(#[source] io::Error),
    /// A file, socket or process step failed.
    #[error("paravisor: {step}")]
    Io {
        /// What was being done.
        step: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// swtpm did not come up.
    #[error("paravisor: swtpm did not start: {0}")]
    SwtpmStart(String),
    /// A TPM command to swtpm failed.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The simulated secure processor failed.
    #[error("paravisor: simulated secure processor")]
    Sim(#[from] SimError),
    /// The HCL report or runtime data could not be built.
    #[error("paravisor: {0}")]
    Build(String),
}

pub(crate) fn io_step(step: impl Into<String>) -> impl FnOnce(io::Error) -> ParavisorError {
    let step = step.into();
    move |source| ParavisorError::Io { step, source }
}

/// Turns a TD report (1024 bytes) into a TD quote: what IMDS `/acc/tdquote` answers.
pub type TdQuoter = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// REPORTTYPE.TYPE of a TD report (byte 0): 0x81 = TDX.
const TDREPORT_TYPE_TDX: u8 = 0x81;

/// A [`TdQuoter`] backed by the simulated TDX platform, for an Azure TDX CVM that verifies end to
/// end under a development policy. Like Azure's quoting service, it quotes the TD report it is
/// handed: the quote's TD report body carries that report's REPORTDATA and MRTD, the two fields
/// the verifier matches between the HCL's TD report and the quote. The quote is signed by the
/// simulated DCAP PKI, so only a policy naming `tdx`'s root as `simulated` accepts it.
#[cfg(feature = "tdx")]
pub fn sim_tdx_quoter(tdx: Arc<crate::sim::tdx::SimTdx>) -> TdQuoter {
    Arc::new(move |report: &[u8]| {
        if report.len() != TDREPORT_LEN {
            return Err(format!(
                "TD report is {} bytes, not {TDREPORT_LEN}",
                report.len()
            ));
        }
        // A real quoting service refuses anything but a TDX TD report; so does this one, so a
        // paravisor bug shows here and not as a confusing verifier failure.
        if report.first() != Some(&TDREPORT_TYPE_TDX) {
            return Err("not a TDX TD report (REPORTTYPE.TYPE is not 0x81)".into());
        }
        let report_data = report
            .get(TDREPORT_REPORTDATA)
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or("TD report has no REPORTDATA")?;
        let mrtd = report
            .get(TDREPORT_MRTD)
            .and_then(|b| <[u8; 48]>::try_from(b).ok())
            .ok_or("TD report has no MRTD")?;
        tdx.quote(&ReportData(report_data), &Measurement(mrtd))
            .map_err(|e| format!("simulated TDX quote: {e}"))
    })
}

/// What the emulated paravisor reports.
#[derive(Clone)]
pub struct ParavisorOptions {
    /// Folder for swtpm's state, its sockets and the proxy's socket (created if missing; the
    /// caller owns it and removes it).
    pub dir: PathBuf,
    /// The launch measurement the SNP reports claim.
    pub measurement: Measurement,
    /// Report options (TCB, debug bit).
    pub report: SimReportOptions,
    /// `None`: an SEV-SNP CVM (the simulated secure processor signs SNP reports). `Some`: a TDX
    /// CVM: the HCL report carries a TD report (REPORTDATA = SHA-256(JSON) ‖ 0³², MRTD =
    /// `measurement`) and IMDS `/acc/tdquote` answers with this function's quote of it
    /// ([`sim_tdx_quoter`] for a quote that verifies under a development policy).
    pub tdx_quoter: Option<TdQuoter>,
}

impl std::fmt::Debug for ParavisorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParavisorOptions")
            .field("dir", &self.dir)
            .field("measurement", &self.measurement)
            .field("report", &self.report)
            .field("tdx", &self.tdx_quoter.is_some())
            .finish()
    }
}

struct Shared {
    tpm: Mutex<Tpm<SocketTransport>>,
    sp: Arc<SimSecureProcessor>,
    measurement: Measurement,
    report: SimReportOptions,
    tdx: bool,
    /// Tests turn this off to play a paravisor that leaves a stale HCL report.
    refresh: AtomicBool,
    stopping: AtomicBool,
}

/// A running emulated paravisor: owns swtpm's process, the vTPM proxy socket and the IMDS
/// server. Dropping it stops all three.
pub struct Paravisor {
    shared: Arc<Shared>,
    // Held to keep swtpm running; dropped (stopped) after Drop told the proxy and IMDS to stop.
    _swtpm: Swtpm,
    socket: PathBuf,
    imds_addr: SocketAddr,
}

impl std::fmt::Debug for Paravisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paravisor")
            .field("socket", &self.socket)
            .field("imds", &self.imds_addr)
            .finish_non_exhaustive()
    }
}

/// The runtime-claims JSON the paravisor writes: the shape of Azure's (`keys` with the AK as
/// JWK `HCLAkPub`, `vm-configuration`, `user-data` as upper-case hex).
pub fn runtime_json(ak: &TpmRsaPublic, user_data: &ReportData) -> Vec<u8> {
    let e = ak.exponent.to_be_bytes();
    let e = &e[e.iter().position(|&b| b != 0).unwrap_or(3)..];
    let json = serde_json::json!({
        "keys": [{
            "kid": super::AK_KID,
            "key_ops": ["sign"],
            "kty": "RSA",
            "e": URL_SAFE_NO_PAD.encode(e),
            "n": URL_SAFE_NO_PAD.encode(&ak.modulus),
        }],
        "vm-configuration": {
            "console-enabled": false,
            "secure-boot": true,
            "tpm-enabled": true,
            "tpm-persisted": true,
            "vmUniqueId": "cdvm-simulated-paravisor",
        },
        "user-data": hex::encode_upper(user_data.as_bytes()),
    });
    json.to_string().into_bytes()
}

/// An HCL report (azure/hcl.rs layout) around a hardware report (an SNP report, or a TD
/// report padded to the slot) and the runtime JSON.
pub fn hcl_report(
    report_type: HclReportType,
    hw_report: &[u8],
    runtime: &[u8],
) -> Result<Vec<u8>, ParavisorError> {
    let (want, type_code) = match report_type {
        HclReportType::Snp => (HW_REPORT_LEN, 2u32),
        HclReportType::Tdx => (TDREPORT_LEN, 4u32),
    };
    if hw_report.len() != want {
        return Err(ParavisorError::Build(format!(
            "hardware report is {} bytes, not {want}",
            hw_report.len()
        )));
    }
    let u32_of = |n: usize| {
        u32::try_from(n).map_err(|_| ParavisorError::Build("runtime data too large".into()))
    };
    let data_size = u32_of(RUNTIME_HEADER_LEN + runtime.len())?;
    let report_size = u32_of(HCL_HEADER_LEN + HW_REPORT_LEN)? + data_size;
    let mut out = Vec::with_capacity(HCL_HEADER_LEN + HW_REPORT_LEN + data_size as usize);
    out.extend_from_slice(&HCL_SIGNATURE);
    for v in [2u32, report_size, 2, 0, 0, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(hw_report);
    out.resize(HCL_HEADER_LEN + HW_REPORT_LEN, 0);
    for v in [
        data_size,
        1,
        type_code,
        super::HASH_TYPE_SHA256,
        u32_of(runtime.len())?,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(runtime);
    Ok(out)
}

impl Shared {
    fn tpm(&self) -> std::sync::MutexGuard<'_, Tpm<SocketTransport>> {
        self.tpm.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Builds and writes the HCL report for `user_data`; returns the SNP chain.
    fn refresh(
        &self,
        tpm: &mut Tpm<SocketTransport>,
        user_data: &ReportData,
    ) -> Result<SnpCertChain, ParavisorError> {
        let ak = tpm.read_public(AK_HANDLE)?;
        let json = runtime_json(&ak, user_data);
        let mut bound = [0u8; 64];
        bound[..32].copy_from_slice(&Sha256::digest(&json));
        let Evidence::SevSnp(snp) =
            self.sp
                .try_report(&ReportData(bound), &self.measurement, &self.report)?
        else {
            return Err(ParavisorError::Build(
                "simulator gave non-SNP evidence".into(),
            ));
        };
        let mut hcl = if self.tdx {
            hcl_report(
                HclReportType::Tdx,
                &td_report(&bound, &self.measurement),
                &json,
            )?
        } else {
            hcl_report(HclReportType::Snp, &snp.report, &json)?
        };
        let size = usize::from(tpm.nv_read_public(NV_HCL_REPORT)?.data_size);
        if hcl.len() > size {
            return Err(ParavisorError::Build(format!(
                "HCL report of {} bytes does not fit NV 0x01400001 ({size} bytes)",
                hcl.len()
            )));
        }
        hcl.resize(size, 0);
        tpm.nv_write(NV_HCL_REPORT, &hcl)?;
        snp.chain
            .ok_or_else(|| ParavisorError::Build("the simulator gave no certificate chain".into()))
    }

    /// Forwards one guest command; refreshes the HCL report after a write to 0x01400002.
    fn forward(&self, command: &[u8]) -> Vec<u8> {
        let mut tpm = self.tpm();
        let response = match tpm.transport_mut().transact(command) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("paravisor: forwarding a command to swtpm failed: {e}");
                return rc_response(TPM_RC_FAILURE);
            }
        };
        let code = |b: &[u8], at: usize| {
            b.get(at..at + 4)
                .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        };
        let is_report_write =
            code(command, 6) == Some(CC_NV_WRITE) && code(command, 14) == Some(NV_REPORT_DATA);
        if !is_report_write || code(&response, 6) != Some(0) || !self.refresh.load(Ordering::SeqCst)
        {
            return response;
        }
        let refreshed = tpm
            .nv_read(NV_REPORT_DATA)
            .map_err(ParavisorError::from)
            .and_then(|data| {
                let rd = <[u8; 64]>::try_from(data.as_slice()).map_err(|_| {
                    ParavisorError::Build(format!("NV 0x01400002 holds {} bytes", data.len()))
                })?;
                self.refresh(&mut tpm, &ReportData(rd))
            });
        match refreshed {
            Ok(_) => response,
            Err(e) => {
                eprintln!("paravisor: refreshing the HCL report failed: {e}");
                rc_response(TPM_RC_FAILURE)
            }
        }
    }
}

/// A TD report as the TDX module shapes it, with REPORTDATA and MRTD set (everything else
/// zero; its MAC is not checked by anyone off the machine).
pub fn td_report(report_data: &[u8; 64], mrtd: &Measurement) -> Vec<u8> {
    let mut r = vec![0u8; TDREPORT_LEN];
    r[0] = TDREPORT_TYPE_TDX;
    r[TDREPORT_REPORTDATA].copy_from_slice(report_data);
    r[TDREPORT_MRTD].copy_from_slice(&mrtd.0);
    r
}

fn rc_response(rc: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(HEADER_LEN);
    r.extend_from_slice(&0x8001u16.to_be_bytes());
    r.extend_from_slice(&(HEADER_LEN as u32).to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r
}

fn serve_guest(shared: &Shared, mut conn: UnixStream) {
    while let Ok(command) = super::tpm_client::read_command(&mut conn) {
        let response = shared.forward(&command);
        if conn.write_all(&response).is_err() {
            break;
        }
    }
}

fn thim_json(chain: &SnpCertChain) -> Result<Vec<u8>, ParavisorError> {
    let pem = |der: &[u8]| -> Result<String, ParavisorError> {
        let cert = openssl::x509::X509::from_der(der).map_err(SimError::from)?;
        let pem = cert.to_pem().map_err(SimError::from)?;
        String::from_utf8(pem).map_err(|_| ParavisorError::Build("PEM is not text".into()))
    };
    let json = serde_json::json!({
        "vcekCert": pem(&chain.vcek)?,
        "tcbm": "CDVM-SIMULATED",
        "certificateChain": format!("{}{}", pem(&chain.ask)?, pem(&chain.ark)?),
    });
    Ok(json.to_string().into_bytes())
}

fn tdquote(body: &[u8], quoter: &TdQuoter) -> Result<Vec<u8>, String> {
    #[derive(serde::Deserialize)]
    struct Req {
        report: String,
    }
    let req: Req = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let report = URL_SAFE_NO_PAD
        .decode(req.report.trim_end_matches('=').as_bytes())
        .map_err(|e| e.to_string())?;
    let quote = quoter(&report)?;
    Ok(
        serde_json::json!({ "quote": URL_SAFE_NO_PAD.encode(quote) })
            .to_string()
            .into_bytes(),
    )
}

fn serve_imds(mut conn: TcpStream, thim: &[u8], quoter: Option<&TdQuoter>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let request_line = text.lines().next().unwrap_or_default().to_string();
    let metadata = text
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "metadata:true");
    let length = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(64 * 1024);
    let mut request_body = vec![0u8; length];
    if conn.read_exact(&mut request_body).is_err() {
        return;
    }
    let quoted;
    let (status, body): (&str, &[u8]) = if !metadata {
        (
            "400 Bad Request",
            b"{\"error\":\"Metadata header required\"}",
        )
    } else if request_line == format!("GET {THIM_AMD_CERTIFICATION} HTTP/1.1") {
        ("200 OK", thim)
    } else if let (Some(q), true) = (
        quoter,
        request_line == format!("POST {ACC_TDQUOTE} HTTP/1.1"),
    ) {
        match tdquote(&request_body, q) {
            Ok(b) => {
                quoted = b;
                ("200 OK", &quoted)
            }
            Err(e) => {
                eprintln!("paravisor: /acc/tdquote: {e}");
                ("400 Bad Request", b"{\"error\":\"bad report\"}")
            }
        }
    } else {
        ("404 Not Found", b"{\"error\":\"not found\"}")
    };
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = conn.write_all(body);
    let _ = conn.shutdown(Shutdown::Write);
}

impl Paravisor {
    /// Starts swtpm in `opts.dir`, provisions the AK at 0x81000003 (RSA-2048, restricted,
    /// RSASSA/SHA-256) and NV 0x01400001 (if this state is new), writes an initial HCL report
    /// (user-data zero), and starts the vTPM proxy (Unix socket `opts.dir/vtpm.sock`) and IMDS
    /// (127.0.0.1, a free port).
    pub fn start(
        sp: Arc<SimSecureProcessor>,
        opts: ParavisorOptions,
    ) -> Result<Self, ParavisorError> {
        let swtpm = Swtpm::start(&opts.dir)?;
        let socket = opts.dir.join("vtpm.sock");
        let _ = std::fs::remove_file(&socket);
        let (shared, chain) = Self::provision(&swtpm, sp, &opts)?;
        let mut this = Self {
            shared,
            _swtpm: swtpm,
            socket: socket.clone(),
            imds_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        // From here on, Drop cleans up.
        let thim = thim_json(&chain)?;
        let imds = TcpListener::bind("127.0.0.1:0").map_err(io_step("bind the IMDS server"))?;
        this.imds_addr = imds.local_addr().map_err(io_step("IMDS address"))?;
        let shared = Arc::clone(&this.shared);
        let quoter = opts.tdx_quoter.clone();
        thread::spawn(move || {
            for conn in imds.incoming() {
                if shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    serve_imds(c, &thim, quoter.as_ref());
                }
            }
        });
        let proxy =
            UnixListener::bind(&socket).map_err(io_step(format!("bind {}", socket.display())))?;
        let shared = Arc::clone(&this.shared);
        thread::spawn(move || {
            for conn in proxy.incoming() {
                if shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let shared = Arc::clone(&shared);
                    thread::spawn(move || serve_guest(&shared, c));
                }
            }
        });
        Ok(this)
    }

    fn provision(
        swtpm: &Swtpm,
        sp: Arc<SimSecureProcessor>,
        opts: &ParavisorOptions,
    ) -> Result<(Arc<Shared>, SnpCertChain), ParavisorError> {
        let mut tpm = swtpm.tpm();
        match tpm.read_public(AK_HANDLE) {
            Ok(_) => {}
            Err(e) if e.is_missing_handle() => {
                let handle = tpm.create_primary_ak()?;
                tpm.evict_control(handle, AK_HANDLE)?;
                tpm.flush_context(handle)?;
            }
            Err(e) => return Err(e.into()),
        }
        match tpm.nv_read_public(NV_HCL_REPORT) {
            Ok(_) => {}
            Err(e) if e.is_missing_handle() => {
                const TPM_PT_NV_INDEX_MAX: u32 = 0x100 + 23;
                let max = tpm.property(TPM_PT_NV_INDEX_MAX)?.min(4096);
                let size = u16::try_from(max).unwrap_or(u16::MAX);
                tpm.nv_define_space(
                    NV_HCL_REPORT,
                    size,
                    TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_NO_DA,
                )?;
            }
            Err(e) => return Err(e.into()),
        }
        let shared = Arc::new(Shared {
            tpm: Mutex::new(swtpm.tpm()),
            sp,
            measurement: opts.measurement,
            report: opts.report,
            tdx: opts.tdx_quoter.is_some(),
            refresh: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
        });
        drop(tpm); // swtpm serves one connection at a time: hand it over.
        let chain = {
            let mut t = shared.tpm();
            shared.refresh(&mut t, &ReportData([0u8; 64]))?
        };
        Ok((shared, chain))
    }

    /// The Unix socket the guest's TPM transport connects to (the paravisor's vTPM).
    pub fn tpm_socket(&self) -> &Path {
        &self.socket
    }

    /// A transport to the paravisor's vTPM.
    pub fn transport(&self) -> SocketTransport {
        SocketTransport::unix(&self.socket)
    }

    /// The local IMDS's address.
    pub fn imds_addr(&self) -> SocketAddr {
        self.imds_addr
    }

    /// An IMDS client for the local IMDS.
    pub fn imds(&self) -> HttpImds {
        HttpImds::new(self.imds_addr)
    }

    /// The attester a guest agent builds, pointed at this paravisor.
    pub fn attester(&self) -> AzureVtpmAttester {
        if self.shared.tdx {
            AzureVtpmAttester::tdx(self.transport(), self.imds())
        } else {
            AzureVtpmAttester::new(self.transport(), self.imds())
        }
    }

    /// Test hook: with `false`, writes to 0x01400002 no longer refresh the HCL report (a
    /// paravisor that leaves a stale report; the attester must refuse it).
    pub fn set_refresh_on_write(&self, on: bool) {
        self.shared.refresh.store(on, Ordering::SeqCst);
    }

    /// Test hook: runs `f` on the TPM behind the paravisor (e.g. to extend a PCR).
    pub fn with_swtpm<R>(&self, f: impl FnOnce(&mut Tpm<SocketTransport>) -> R) -> R {
        f(&mut self.shared.tpm())
    }
}

impl Drop for Paravisor {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.imds_addr);
        let _ = UnixStream::connect(&self.socket);
        let _ = std::fs::remove_file(&self.socket);
        // `_swtpm` stops swtpm when it is dropped, right after this.
    }
}
