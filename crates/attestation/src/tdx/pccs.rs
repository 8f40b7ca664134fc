//! Intel's TDX collateral from Intel PCS or a PCCS (Intel "PCS API" v4), with an on-disk cache —
//! the TDX counterpart of `snp::vcek` for AMD KDS.
//!
//! For a quote's FMSPC and PCK CA (from the PCK certificate in the quote, [`quote_platform`]) the
//! resolver GETs, in order:
//!
//! 1. `/sgx/certification/v4/pckcrl?ca=<processor|platform>&encoding=der` — the PCK CRL, its
//!    signer chain in `SGX-PCK-CRL-Issuer-Chain`;
//! 2. `/tdx/certification/v4/tcb?fmspc=<FMSPC>` — `{"tcbInfo": …, "signature": "<hex>"}`, its
//!    signer chain in `TCB-Info-Issuer-Chain` (or `SGX-TCB-Info-Issuer-Chain`);
//! 3. `/tdx/certification/v4/qe/identity` — `{"enclaveIdentity": …, "signature": "<hex>"}`, its
//!    signer chain in `SGX-Enclave-Identity-Issuer-Chain`;
//! 4. the root CA CRL: a PCCS's `/sgx/certification/v4/rootcacrl` (hex or DER), or, for Intel
//!    PCS (which has no such path), [`INTEL_ROOT_CA_CRL_URL`].
//!
//! Issuer chains are URL-encoded PEM. Every item is checked before anything is cached: each
//! signer chain must end in the pinned Intel SGX Root CA with every link verifying, the TCB info
//! and QE identity signatures must verify over the exact bytes served, the CRLs must be signed by
//! their issuers, and the TCB info must be for the FMSPC asked for. (dcap-qvl verifies all of it
//! again, with validity times, when a quote is verified.) A 429, another status, an unreachable
//! server or a bad body is reported as [`PccsError`] naming the request, and nothing is cached.
//!
//! The cache holds one `QuoteCollateralV3` JSON file per FMSPC and CA (the format of a pinned
//! `tdx.collateral` file), and an entry is used while the verification time is before its
//! earliest `nextUpdate` (TCB info, QE identity, PCK CRL, root CA CRL). A stale, corrupt or
//! other-FMSPC entry is refetched; offline (no URL) it is an error. Collateral that is already
//! stale when fetched is returned (the verifier then refuses it as `CollateralExpired`) but not
//! cached.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use dcap_qvl::QuoteCollateralV3;
use openssl::nid::Nid;
use openssl::x509::{X509Crl, X509};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::tdx::chain::{decode_chain, unix_secs};
use crate::tdx::collateral::{crl_next_update, json_next_update};
use crate::tdx::quote::TdxQuote;
use crate::tdx::roots::intel_sgx_root_der;
use crate::tdx::signature::ecdsa_p256_verify;
use crate::tdx::{PccsConfig, TdxCollateral, TdxError};

pub use crate::tdx::pccs_error::{BadResponse, CacheMiss, IoFailure, PccsCall, PccsError};

/// Intel's Provisioning Certification Service (PCS) base URL.
pub const INTEL_PCS_URL: &str = "https://api.trustedservices.intel.com";

/// The Intel SGX Root CA's CRL, from the root certificate's CRL distribution point (used with
/// Intel PCS, which serves no `rootcacrl`).
pub const INTEL_ROOT_CA_CRL_URL: &str =
    "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

/// Largest response body accepted (TCB info is tens of kilobytes).
pub const MAX_BODY: u64 = 1 << 20;

/// The Intel CA that issued a PCK certificate, which selects the PCK CRL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PckCa {
    /// "Intel SGX PCK Processor CA".
    Processor,
    /// "Intel SGX PCK Platform CA".
    Platform,
}

impl PckCa {
    /// The PCS name (`processor` / `platform`), as in `pckcrl?ca=`.
    pub fn as_str(self) -> &'static str {
        match self {
            PckCa::Processor => "processor",
            PckCa::Platform => "platform",
        }
    }

    /// The CA that issued the PCK leaf certificate `der` (by its issuer CN).
    pub fn of_pck(der: &[u8]) -> Result<Self, TdxError> {
        let cert = X509::from_der(der)
            .map_err(|e| TdxError::PckChainMalformed(format!("PCK leaf is not X.509: {e}")))?;
        let issuer = cert
            .issuer_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().to_string().ok())
            .unwrap_or_default();
        match issuer.as_str() {
            "Intel SGX PCK Processor CA" => Ok(PckCa::Processor),
            "Intel SGX PCK Platform CA" => Ok(PckCa::Platform),
            other => Err(TdxError::PckChainMalformed(format!(
                "PCK leaf issuer {other:?} is neither Intel SGX PCK Processor CA nor Platform CA"
            ))),
        }
    }
}

impl std::fmt::Display for PckCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The FMSPC (12 lowercase hex characters) and PCK CA of a quote, from the PCK certificate it
/// carries (unverified: the verifier checks the chain). What [`PccsResolver::collateral`] needs.
pub fn quote_platform(quote: &[u8]) -> Result<(String, PckCa), TdxError> {
    let parsed = TdxQuote::parse(quote)?;
    let chain = decode_chain(&parsed.signature.pck_cert_data)?;
    let leaf = chain.first().map(Vec::as_slice).unwrap_or_default();
    Ok((pck_fmspc(leaf)?, PckCa::of_pck(leaf)?))
}

/// The FMSPC of a PCK leaf certificate, lowercase hex.
///
/// Read with the crate's bounds-checked DER walker rather than a full certificate parse: this
/// runs before every DCAP verification, and dcap-qvl parses (and checks) the whole certificate
/// again right after (Intel "PCK Certificate and CRL Profile", SGX extensions).
pub(crate) fn pck_fmspc(leaf: &[u8]) -> Result<String, TdxError> {
    sgx_extension_fmspc(leaf).map(hex::encode).ok_or_else(|| {
        TdxError::PckChainMalformed(
            "PCK SGX extension: no well-formed SGX extension with a 6-byte FMSPC".into(),
        )
    })
}

/// DER content of OID 1.2.840.113741.1.13.1 (the SGX extension).
const SGX_EXTENSION_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x01, 0x0D, 0x01];
/// DER content of OID 1.2.840.113741.1.13.1.4 (FMSPC, inside the SGX extension).
const FMSPC_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x01, 0x0D, 0x01, 0x04];

fn sgx_extension_fmspc(leaf: &[u8]) -> Option<[u8; 6]> {
    use crate::der::{read, read_exact, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE};
    let extensions = crate::der::extensions(leaf)?;
    let value = crate::der::extension(&extensions, SGX_EXTENSION_OID)?;
    let mut entries = read_exact(value, TAG_SEQUENCE)?;
    while !entries.is_empty() {
        let (entry, rest) = read(entries)?;
        entries = rest;
        if entry.tag != TAG_SEQUENCE {
            return None;
        }
        let (oid, after) = read(entry.content)?;
        if oid.tag == TAG_OID && oid.content == FMSPC_OID {
            return read_exact(after, TAG_OCTET_STRING)?.try_into().ok();
        }
    }
    None
}

/// Where collateral came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CollateralOrigin {
    /// A fresh cache entry.
    Cache(PathBuf),
    /// Fetched from this PCS/PCCS base URL (and cached if fresh).
    Pccs(String),
}

/// An HTTP response, as the resolver needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PccsResponse {
    /// The status code.
    pub status: u16,
    /// The headers (name, value); names compare case-insensitively.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl PccsResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Something that GETs a URL (the ureq client of feature `pccs`, or a test double). Status
/// handling is the resolver's: any response, whatever its status, is `Ok`.
pub trait PccsFetch: Send + Sync {
    /// The response, or why there is none (connection, TLS, timeout, body read).
    fn get(&self, url: &str) -> Result<PccsResponse, String>;
}

/// Finds collateral for an FMSPC and PCK CA: a fresh cache entry, else (if configured) the
/// PCS/PCCS, caching what it fetched.
pub struct PccsResolver {
    cache_dir: PathBuf,
    fetch: Option<(String, Box<dyn PccsFetch>)>,
}

impl std::fmt::Debug for PccsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PccsResolver")
            .field("cache_dir", &self.cache_dir)
            .field("pccs", &self.fetch.as_ref().map(|(base, _)| base))
            .finish()
    }
}

impl PccsResolver {
    /// Offline: the cache folder only.
    pub fn offline(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            fetch: None,
        }
    }

    /// The cache folder plus fetching from `base` (e.g. [`INTEL_PCS_URL`], or a PCCS such as
    /// `https://pccs:8081`) through `fetch`.
    pub fn with_fetch(
        cache_dir: impl Into<PathBuf>,
        base: impl Into<String>,
        fetch: Box<dyn PccsFetch>,
    ) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            fetch: Some((base.into(), fetch)),
        }
    }

    /// The cache folder plus fetching from `base` over HTTPS (feature `pccs`).
    #[cfg(feature = "pccs")]
    pub fn online(cache_dir: impl Into<PathBuf>, base: impl Into<String>) -> Self {
        Self::with_fetch(cache_dir, base, Box::new(PccsHttp::new()))
    }

    /// The resolver a policy's `tdx.pccs` describes. A URL without the `pccs` feature is
    /// [`PccsError::FeatureOff`]: never a silent fallback to the cache.
    pub fn from_config(config: &PccsConfig) -> Result<Self, PccsError> {
        match &config.url {
            None => Ok(Self::offline(&config.cache_dir)),
            #[cfg(feature = "pccs")]
            Some(url) => Ok(Self::online(&config.cache_dir, url)),
            #[cfg(not(feature = "pccs"))]
            Some(url) => Err(PccsError::FeatureOff { url: url.clone() }),
        }
    }

    /// The cache file for `fmspc` (any case) and `ca`: `tdx-collateral-<fmspc>-<ca>.json`.
    pub fn cache_file(&self, fmspc: &str, ca: PckCa) -> Result<PathBuf, PccsError> {
        let fmspc = normalise_fmspc(fmspc)?;
        Ok(self
            .cache_dir
            .join(format!("tdx-collateral-{fmspc}-{ca}.json")))
    }

    /// Collateral for `fmspc` and `ca`, valid at `now` if it comes from the cache, and where it
    /// came from.
    pub fn collateral(
        &self,
        fmspc: &str,
        ca: PckCa,
        now: SystemTime,
    ) -> Result<(TdxCollateral, CollateralOrigin), PccsError> {
        let fmspc = normalise_fmspc(fmspc)?;
        let path = self.cache_file(&fmspc, ca)?;
        let now_secs = unix_secs(now).unwrap_or(0);
        let miss = match read_cache(&path, &fmspc, now_secs)? {
            Ok(collateral) => return Ok((collateral, CollateralOrigin::Cache(path))),
            Err(miss) => miss,
        };
        let Some((base, fetch)) = &self.fetch else {
            return Err(PccsError::NotCached {
                path: path.display().to_string(),
                reason: miss,
            });
        };
        let (collateral, next_update) = fetch_collateral(fetch.as_ref(), base, &fmspc, ca)?;
        if next_update > now_secs {
            let json = collateral.to_json().map_err(|e| PccsError::Cache {
                path: path.display().to_string(),
                source: IoFailure {
                    kind: std::io::ErrorKind::InvalidData,
                    message: e.to_string(),
                },
            })?;
            write_atomically(&path, json.as_bytes())?;
        }
        Ok((collateral, CollateralOrigin::Pccs(base.clone())))
    }
}

fn normalise_fmspc(fmspc: &str) -> Result<String, PccsError> {
    if fmspc.len() == 12 && fmspc.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(fmspc.to_ascii_lowercase())
    } else {
        Err(PccsError::InvalidFmspc {
            fmspc: fmspc.to_string(),
        })
    }
}

/// `Ok(Ok(_))`: a fresh entry; `Ok(Err(_))`: why there is none to use; `Err`: unreadable.
fn read_cache(
    path: &Path,
    fmspc: &str,
    now_secs: u64,
) -> Result<Result<TdxCollateral, CacheMiss>, PccsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err(CacheMiss::Missing)),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Ok(Err(CacheMiss::Corrupt("not UTF-8".into())))
        }
        Err(e) => {
            return Err(PccsError::Cache {
                path: path.display().to_string(),
                source: e.into(),
            })
        }
    };
    let collateral = match TdxCollateral::from_json(&text) {
        Ok(c) => c,
        Err(e) => return Ok(Err(CacheMiss::Corrupt(e.to_string()))),
    };
    if collateral.fmspc() != fmspc {
        return Ok(Err(CacheMiss::Corrupt(format!(
            "collateral for FMSPC {}",
            collateral.fmspc()
        ))));
    }
    Ok(match collateral.next_update_secs() {
        Ok(next_update) if next_update > now_secs => Ok(collateral),
        Ok(next_update) => Err(CacheMiss::Stale { next_update }),
        Err(e) => Err(CacheMiss::Corrupt(e)),
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PccsError> {
    let io = |e: std::io::Error| PccsError::Cache {
        path: path.display().to_string(),
        source: e.into(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Unique per process and call, so concurrent verifications never share a temporary file;
    // the rename is atomic, so a reader sees the old entry or the new one, never a partial one.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // Best effort: a failed write leaves no temporary file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// The v4 URLs for one FMSPC and CA.
struct Endpoints {
    base: String,
    pcs: bool,
}

impl Endpoints {
    fn new(base: &str) -> Self {
        let base = base
            .trim_end_matches('/')
            .trim_end_matches("/sgx/certification/v4")
            .trim_end_matches("/tdx/certification/v4")
            .to_string();
        let pcs = base.starts_with(INTEL_PCS_URL);
        Self { base, pcs }
    }

    fn pck_crl(&self, ca: PckCa) -> String {
        format!(
            "{}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der",
            self.base
        )
    }

    fn tcb_info(&self, fmspc: &str) -> String {
        format!(
            "{}/tdx/certification/v4/tcb?fmspc={}",
            self.base,
            fmspc.to_ascii_uppercase()
        )
    }

    fn qe_identity(&self) -> String {
        format!("{}/tdx/certification/v4/qe/identity", self.base)
    }

    fn root_ca_crl(&self) -> String {
        if self.pcs {
            INTEL_ROOT_CA_CRL_URL.to_string()
        } else {
            format!("{}/sgx/certification/v4/rootcacrl", self.base)
        }
    }
}

/// One request: a 200 response, or the error naming `call`.
fn get(fetch: &dyn PccsFetch, call: PccsCall, url: &str) -> Result<PccsResponse, PccsError> {
    let response = fetch.get(url).map_err(|reason| PccsError::Network {
        call,
        url: url.to_string(),
        reason,
    })?;
    match response.status {
        200 => Ok(response),
        429 => Err(PccsError::RateLimited {
            call,
            url: url.to_string(),
            retry_after: response.header("Retry-After").map(str::to_string),
        }),
        status => Err(PccsError::Http {
            call,
            url: url.to_string(),
            status,
        }),
    }
}

/// Fetches and checks the four items; returns the collateral and its earliest `nextUpdate`.
fn fetch_collateral(
    fetch: &dyn PccsFetch,
    base: &str,
    fmspc: &str,
    ca: PckCa,
) -> Result<(TdxCollateral, u64), PccsError> {
    let endpoints = Endpoints::new(base);
    let root = intel_sgx_root_der()
        .and_then(|der| X509::from_der(der).ok())
        .ok_or_else(|| PccsError::BadResponse {
            call: PccsCall::RootCaCrl,
            url: String::new(),
            reason: BadResponse::UntrustedIssuer("the pinned Intel root is unreadable".into()),
        })?;

    let mut next_updates = Vec::with_capacity(4);

    let url = endpoints.pck_crl(ca);
    let call = PccsCall::PckCrl;
    let bad = |reason| PccsError::BadResponse {
        call,
        url: url.clone(),
        reason,
    };
    let r = get(fetch, call, &url)?;
    let (pck_crl_issuer_chain, signer) =
        issuer_chain(&r, &["SGX-PCK-CRL-Issuer-Chain"], &root).map_err(bad)?;
    let pck_crl = crl_der(&r.body).map_err(bad)?;
    check_crl(&pck_crl, &signer).map_err(bad)?;
    next_updates.push(crl_next_update(&pck_crl).map_err(|e| bad(BadResponse::NoNextUpdate(e)))?);

    let url = endpoints.tcb_info(fmspc);
    let call = PccsCall::TcbInfo;
    let bad = |reason| PccsError::BadResponse {
        call,
        url: url.clone(),
        reason,
    };
    let r = get(fetch, call, &url)?;
    let (tcb_info_issuer_chain, signer) = issuer_chain(
        &r,
        &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
        &root,
    )
    .map_err(bad)?;
    let (tcb_info, tcb_info_signature) = signed_json(&r.body, "tcbInfo", &signer).map_err(bad)?;
    next_updates.push(json_next_update(&tcb_info).map_err(|e| bad(BadResponse::NoNextUpdate(e)))?);

    let url = endpoints.qe_identity();
    let call = PccsCall::QeIdentity;
    let bad = |reason| PccsError::BadResponse {
        call,
        url: url.clone(),
        reason,
    };
    let r = get(fetch, call, &url)?;
    let (qe_identity_issuer_chain, signer) = issuer_chain(
        &r,
        &[
            "SGX-Enclave-Identity-Issuer-Chain",
            "Enclave-Identity-Issuer-Chain",
        ],
        &root,
    )
    .map_err(bad)?;
    let (qe_identity, qe_identity_signature) =
        signed_json(&r.body, "enclaveIdentity", &signer).map_err(bad)?;
    next_updates
        .push(json_next_update(&qe_identity).map_err(|e| bad(BadResponse::NoNextUpdate(e)))?);

    let url = endpoints.root_ca_crl();
    let call = PccsCall::RootCaCrl;
    let bad = |reason| PccsError::BadResponse {
        call,
        url: url.clone(),
        reason,
    };
    let r = get(fetch, call, &url)?;
    let root_ca_crl = crl_der(&r.body).map_err(bad)?;
    check_crl(&root_ca_crl, &root).map_err(bad)?;
    next_updates
        .push(crl_next_update(&root_ca_crl).map_err(|e| bad(BadResponse::NoNextUpdate(e)))?);

    let tcb_url = endpoints.tcb_info(fmspc);
    let bad_tcb = |reason| PccsError::BadResponse {
        call: PccsCall::TcbInfo,
        url: tcb_url.clone(),
        reason,
    };
    let collateral = TdxCollateral::from_inner(QuoteCollateralV3 {
        pck_crl_issuer_chain,
        root_ca_crl,
        pck_crl,
        tcb_info_issuer_chain,
        tcb_info,
        tcb_info_signature,
        qe_identity_issuer_chain,
        qe_identity,
        qe_identity_signature,
        pck_certificate_chain: None,
    })
    .map_err(|e| bad_tcb(BadResponse::NotJson(e)))?;
    if collateral.fmspc() != fmspc {
        return Err(bad_tcb(BadResponse::WrongFmspc {
            requested: fmspc.to_string(),
            found: collateral.fmspc().to_string(),
        }));
    }
    let next_update = next_updates.into_iter().min().unwrap_or(0);
    Ok((collateral, next_update))
}

/// The issuer chain of a response (URL-encoded PEM in the first header of `names` present),
/// checked up to the pinned root: returned as the PEM text and its leaf (the signer).
fn issuer_chain(
    response: &PccsResponse,
    names: &[&'static str],
    root: &X509,
) -> Result<(String, X509), BadResponse> {
    let first = names.first().copied().unwrap_or_default();
    let (header, value) = names
        .iter()
        .find_map(|n| response.header(n).map(|v| (*n, v)))
        .ok_or(BadResponse::MissingHeader { header: first })?;
    let bad = |reason: String| BadResponse::BadIssuerChain { header, reason };
    let pem = percent_decode(value).ok_or_else(|| bad("bad percent-encoding".into()))?;
    let certs = X509::stack_from_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    if certs.len() < 2 {
        return Err(bad(format!(
            "{} certificate(s); expected the signer and the root",
            certs.len()
        )));
    }
    let untrusted = |m: &str| BadResponse::UntrustedIssuer(m.to_string());
    let last = certs.last().ok_or_else(|| untrusted("empty chain"))?;
    let same_root = matches!(
        (last.to_der(), root.to_der()),
        (Ok(a), Ok(b)) if a == b
    );
    if !same_root {
        return Err(untrusted(
            "the last certificate is not the pinned Intel SGX Root CA",
        ));
    }
    for pair in certs.windows(2) {
        let [cert, issuer] = pair else { continue };
        let signed = issuer
            .public_key()
            .is_ok_and(|key| matches!(cert.verify(&key), Ok(true)));
        if !signed {
            return Err(untrusted("a certificate is not signed by the next one"));
        }
    }
    let signer = certs
        .into_iter()
        .next()
        .ok_or_else(|| untrusted("empty chain"))?;
    Ok((pem, signer))
}

/// `{"<field>": {...}, "signature": "<hex r ‖ s>"}`: the item's exact bytes and signature,
/// checked with the signer's key.
fn signed_json(body: &[u8], field: &str, signer: &X509) -> Result<(String, Vec<u8>), BadResponse> {
    #[derive(Deserialize)]
    struct Signed<'a> {
        #[serde(rename = "tcbInfo", borrow, default)]
        tcb_info: Option<&'a RawValue>,
        #[serde(rename = "enclaveIdentity", borrow, default)]
        enclave_identity: Option<&'a RawValue>,
        signature: String,
    }
    let text = std::str::from_utf8(body).map_err(|e| BadResponse::NotJson(e.to_string()))?;
    let parsed: Signed<'_> =
        serde_json::from_str(text).map_err(|e| BadResponse::NotJson(e.to_string()))?;
    let item = match field {
        "tcbInfo" => parsed.tcb_info,
        _ => parsed.enclave_identity,
    }
    .ok_or_else(|| BadResponse::NotJson(format!("no `{field}` object")))?
    .get();
    if !item.starts_with('{') {
        return Err(BadResponse::NotJson(format!("`{field}` is not an object")));
    }
    let mut signature = [0u8; 64];
    hex::decode_to_slice(parsed.signature.trim(), &mut signature)
        .map_err(|_| BadResponse::BadSignatureEncoding)?;
    let key = signer
        .public_key()
        .and_then(|k| k.ec_key())
        .map_err(|e| BadResponse::UntrustedIssuer(format!("signer key is not EC: {e}")))?;
    if !ecdsa_p256_verify(&key, item.as_bytes(), &signature) {
        return Err(BadResponse::SignatureInvalid);
    }
    Ok((item.to_string(), signature.to_vec()))
}

/// A CRL body as DER: DER as is, hex of DER (what a PCCS serves for `rootcacrl`), or PEM.
fn crl_der(body: &[u8]) -> Result<Vec<u8>, BadResponse> {
    let trimmed = body.trim_ascii();
    let der = if trimmed.starts_with(b"-----BEGIN") {
        X509Crl::from_pem(trimmed)
            .and_then(|c| c.to_der())
            .map_err(|_| BadResponse::NotACrl)?
    } else if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_hexdigit) {
        hex::decode(trimmed).map_err(|_| BadResponse::NotACrl)?
    } else {
        body.to_vec()
    };
    X509Crl::from_der(&der).map_err(|_| BadResponse::NotACrl)?;
    Ok(der)
}

fn check_crl(der: &[u8], issuer: &X509) -> Result<(), BadResponse> {
    let crl = X509Crl::from_der(der).map_err(|_| BadResponse::NotACrl)?;
    let key = issuer
        .public_key()
        .map_err(|e| BadResponse::UntrustedIssuer(e.to_string()))?;
    if matches!(crl.verify(&key), Ok(true)) {
        Ok(())
    } else {
        Err(BadResponse::SignatureInvalid)
    }
}

/// Percent-decoding of a header value (`+` is kept: it is base64, not a space).
fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(feature = "pccs")]
mod http {
    use std::sync::OnceLock;

    use super::{PccsFetch, PccsResponse, MAX_BODY};

    /// Fetches over HTTPS with ureq (rustls), with a timeout and no retries: a 429 is reported,
    /// not hammered. The client is built on first use, so a cache hit costs nothing.
    #[derive(Debug, Default)]
    pub struct PccsHttp {
        agent: OnceLock<ureq::Agent>,
    }

    impl PccsHttp {
        /// A client with a 30-second overall timeout per request.
        pub fn new() -> Self {
            Self::default()
        }

        fn agent(&self) -> &ureq::Agent {
            self.agent.get_or_init(|| {
                ureq::Agent::config_builder()
                    .timeout_global(Some(std::time::Duration::from_secs(30)))
                    .http_status_as_error(false)
                    .build()
                    .into()
            })
        }
    }

    impl PccsFetch for PccsHttp {
        fn get(&self, url: &str) -> Result<PccsResponse, String> {
            let response = self.agent().get(url).call().map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(name, value)| {
                    value
                        .to_str()
                        .ok()
                        .map(|v| (name.as_str().to_string(), v.to_string()))
                })
                .collect();
            let body = response
                .into_body()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| e.to_string())?;
            Ok(PccsResponse {
                status,
                headers,
                body,
            })
        }
    }
}

#[cfg(feature = "pccs")]
pub use http::PccsHttp;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Our FMSPC reader agrees with dcap-qvl's full parse on every real quote's PCK leaf, and
    /// says "malformed" (never panics) on every truncation of one.
    #[test]
    fn fmspc_matches_dcap_qvl_on_every_fixture() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tdx");
        let mut checked = 0;
        for sub in std::fs::read_dir(&dir).unwrap() {
            let sub = sub.unwrap().path();
            if !sub.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&sub).unwrap() {
                let bytes = std::fs::read(file.unwrap().path()).unwrap();
                let Ok(quote) = TdxQuote::parse(&bytes) else {
                    continue;
                };
                let Ok(chain) = decode_chain(&quote.signature.pck_cert_data) else {
                    continue;
                };
                let leaf = &chain[0];
                let ours = pck_fmspc(leaf).ok();
                let theirs = dcap_qvl::intel::parse_pck_extension(leaf).ok();
                checked += usize::from(ours.is_some());
                assert_eq!(
                    ours,
                    theirs.map(|e| hex::encode(e.fmspc)),
                    "{}",
                    sub.display()
                );
                for len in (0..leaf.len()).step_by(7) {
                    assert!(pck_fmspc(&leaf[..len]).is_err());
                }
            }
        }
        assert!(checked >= 10, "only {checked} quotes with an FMSPC");
    }

    #[test]
    fn urls_follow_the_v4_api() {
        let pccs = Endpoints::new("https://pccs:8081/sgx/certification/v4/");
        assert_eq!(
            pccs.pck_crl(PckCa::Platform),
            "https://pccs:8081/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
        );
        assert_eq!(
            pccs.tcb_info("b0c06f000000"),
            "https://pccs:8081/tdx/certification/v4/tcb?fmspc=B0C06F000000"
        );
        assert_eq!(
            pccs.qe_identity(),
            "https://pccs:8081/tdx/certification/v4/qe/identity"
        );
        assert_eq!(
            pccs.root_ca_crl(),
            "https://pccs:8081/sgx/certification/v4/rootcacrl"
        );
        let pcs = Endpoints::new(INTEL_PCS_URL);
        assert_eq!(
            pcs.pck_crl(PckCa::Processor),
            "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=processor&encoding=der"
        );
        assert_eq!(pcs.root_ca_crl(), INTEL_ROOT_CA_CRL_URL);
    }

    #[test]
    fn percent_decoding_keeps_plus() {
        assert_eq!(
            percent_decode("-----BEGIN%20CERT-----%0Aab+/=%0A").unwrap(),
            "-----BEGIN CERT-----\nab+/=\n"
        );
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn fmspc_must_be_hex() {
        let r = PccsResolver::offline("/nonexistent");
        for bad in ["../../etc/x", "b0c06f00000", "b0c06f00000g"] {
            assert!(matches!(
                r.cache_file(bad, PckCa::Platform),
                Err(PccsError::InvalidFmspc { .. })
            ));
        }
        assert_eq!(
            r.cache_file("B0C06F000000", PckCa::Platform).unwrap(),
            Path::new("/nonexistent/tdx-collateral-b0c06f000000-platform.json")
        );
    }
}
