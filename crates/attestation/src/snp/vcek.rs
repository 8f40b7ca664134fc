//! Finding the VCEK for a report when the evidence does not carry a chain: the extended report's
//! certificate table, an offline cache folder, or AMD's Key Distribution Service (KDS, spec 57230
//! ch. 4) — in that order. KDS rate-limits hard (HTTP 429 after a few calls), so every fetched
//! VCEK is written to the cache and never fetched twice. ASK and ARK come from the pinned copies.

use std::path::{Path, PathBuf};

use crate::snp::roots::AmdProduct;
use crate::snp::AttestationReport;
use crate::snp::SigningKey;
use crate::SnpCertChain;

/// AMD's KDS base URL.
pub const KDS_BASE: &str = "https://kdsintf.amd.com";

/// Where the VCEK came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VcekSource {
    /// The offline cache folder.
    Cache(PathBuf),
    /// Fetched from the KDS (and cached).
    Kds(String),
}

/// Why no VCEK could be found.
#[derive(Debug, thiserror::Error)]
pub enum VcekError {
    /// The report does not say which product made it (v2 reports carry no CPUID).
    #[error(
        "cannot tell the AMD product from this v{version} report; name it (milan, genoa, turin)"
    )]
    ProductUnknown {
        /// Report version.
        version: u32,
    },
    /// VLEKs are not published by the KDS: the cloud provides them with the report.
    #[error("the report is signed with a VLEK, which only the cloud provider can supply; pass the certificates that came with the report")]
    VlekNotFetchable,
    /// Not in the cache, and fetching is off.
    #[error("no VCEK in the cache at {path} and fetching from AMD KDS is off")]
    NotCached {
        /// The file looked for.
        path: String,
    },
    /// KDS answered 429.
    #[error(
        "AMD KDS rate-limited the request ({url}, HTTP 429); retry later or pre-fill the cache"
    )]
    RateLimited {
        /// The URL.
        url: String,
    },
    /// KDS answered another error status.
    #[error("AMD KDS answered HTTP {status} for {url}")]
    Http {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// KDS could not be reached.
    #[error("cannot reach AMD KDS at {url}: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// KDS (or the cache) returned something that is not a DER certificate.
    #[error("{what} is not a DER certificate")]
    NotACertificate {
        /// Where it came from.
        what: String,
    },
    /// The cache could not be read or written.
    #[error("VCEK cache {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Something that GETs a URL (the KDS client, or a test double).
pub trait Fetch: Send + Sync {
    /// The response body of a 200; an error otherwise.
    fn get(&self, url: &str) -> Result<Vec<u8>, VcekError>;
}

/// The product line that made a report, from its CPUID fields (v3+).
/// Family 19h: models 0x0–0xF Milan; 0x10–0x1F Genoa; 0xA0–0xAF Bergamo/Siena, which use
/// Genoa's KDS path. Family 1Ah: Turin.
pub fn product_of(report: &AttestationReport) -> Option<AmdProduct> {
    if report.version < 3 {
        return None;
    }
    match (report.cpuid_fam_id, report.cpuid_mod_id) {
        (0x19, 0x00..=0x0F) => Some(AmdProduct::Milan),
        (0x19, 0x10..=0x1F) | (0x19, 0xA0..=0xAF) => Some(AmdProduct::Genoa),
        (0x1A, _) => Some(AmdProduct::Turin),
        _ => None,
    }
}

fn kds_name(product: AmdProduct) -> &'static str {
    match product {
        AmdProduct::Milan => "Milan",
        AmdProduct::Genoa => "Genoa",
        AmdProduct::Turin => "Turin",
    }
}

/// The hardware id KDS indexes VCEKs by: the 64-byte CHIP_ID, or its first 8 bytes on Turin.
fn hwid(product: AmdProduct, report: &AttestationReport) -> String {
    match product {
        AmdProduct::Turin => hex::encode(&report.chip_id[..8]),
        _ => hex::encode(report.chip_id),
    }
}

/// The KDS path of the VCEK for this report's chip and REPORTED_TCB.
pub fn vcek_path(product: AmdProduct, report: &AttestationReport) -> String {
    let t = report.reported_tcb;
    let mut path = format!(
        "/vcek/v1/{}/{}?blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
        kds_name(product),
        hwid(product, report),
        t.bootloader,
        t.tee,
        t.snp,
        t.microcode
    );
    if let (AmdProduct::Turin, Some(fmc)) = (product, report.reported_fmc()) {
        path.push_str(&format!("&fmcSPL={fmc}"));
    }
    path
}

/// The cache file for this report's VCEK: one file per chip and TCB.
pub fn cache_file(dir: &Path, product: AmdProduct, report: &AttestationReport) -> PathBuf {
    let t = report.reported_tcb;
    let fmc = report
        .reported_fmc()
        .map(|f| format!("-fmc{f}"))
        .unwrap_or_default();
    dir.join(format!(
        "vcek-{}-{}-bl{}-tee{}-snp{}-ucode{}{fmc}.der",
        kds_name(product).to_lowercase(),
        hwid(product, report),
        t.bootloader,
        t.tee,
        t.snp,
        t.microcode
    ))
}

/// Finds VCEKs: cache first, then (if configured) the KDS, caching what it fetched.
pub struct VcekResolver {
    cache_dir: Option<PathBuf>,
    fetch: Option<(String, Box<dyn Fetch>)>,
}

impl std::fmt::Debug for VcekResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcekResolver")
            .field("cache_dir", &self.cache_dir)
            .field("kds", &self.fetch.as_ref().map(|(base, _)| base))
            .finish()
    }
}

impl VcekResolver {
    /// Offline: the cache folder only.
    pub fn offline(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: Some(cache_dir.into()),
            fetch: None,
        }
    }

    /// Cache plus fetching from `base` (normally [`KDS_BASE`]) through `fetch`.
    pub fn with_fetch(
        cache_dir: Option<PathBuf>,
        base: impl Into<String>,
        fetch: Box<dyn Fetch>,
    ) -> Self {
        Self {
            cache_dir,
            fetch: Some((base.into(), fetch)),
        }
    }

    /// The VCEK for `report` (DER) and where it came from.
    pub fn vcek(
        &self,
        report: &AttestationReport,
        product: AmdProduct,
    ) -> Result<(Vec<u8>, VcekSource), VcekError> {
        if report.signing_key() == SigningKey::Vlek {
            return Err(VcekError::VlekNotFetchable);
        }
        let cached = self
            .cache_dir
            .as_ref()
            .map(|d| cache_file(d, product, report));
        if let Some(path) = &cached {
            match std::fs::read(path) {
                Ok(der) => {
                    check_der(&der, &path.display().to_string())?;
                    return Ok((der, VcekSource::Cache(path.clone())));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(VcekError::Io {
                        path: path.display().to_string(),
                        source,
                    })
                }
            }
        }
        let Some((base, fetch)) = &self.fetch else {
            return Err(VcekError::NotCached {
                path: cached
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(no cache folder)".into()),
            });
        };
        let url = format!(
            "{}{}",
            base.trim_end_matches('/'),
            vcek_path(product, report)
        );
        let der = fetch.get(&url)?;
        check_der(&der, &url)?;
        if let Some(path) = &cached {
            write_atomically(path, &der)?;
        }
        Ok((der, VcekSource::Kds(url)))
    }

    /// The full chain for `report`: the resolved VCEK with the pinned ASK and ARK of `product`.
    pub fn chain(
        &self,
        report: &AttestationReport,
        product: AmdProduct,
    ) -> Result<(SnpCertChain, VcekSource), VcekError> {
        let (vcek, source) = self.vcek(report, product)?;
        let (ask, ark) = pinned_ask_ark(product);
        Ok((SnpCertChain { vcek, ask, ark }, source))
    }
}

fn check_der(der: &[u8], what: &str) -> Result<(), VcekError> {
    crate::x509::Cert::parse(der)
        .map(|_| ())
        .map_err(|_| VcekError::NotACertificate {
            what: what.to_string(),
        })
}

fn write_atomically(path: &Path, der: &[u8]) -> Result<(), VcekError> {
    let io = |source| VcekError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, der).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

const INTERMEDIATES_MILAN: &str = include_str!("../../roots/intermediates_milan.pem");
const INTERMEDIATES_GENOA: &str = include_str!("../../roots/intermediates_genoa.pem");
const INTERMEDIATES_TURIN: &str = include_str!("../../roots/intermediates_turin.pem");

/// The pinned ASK and ARK (DER) of a product, as AMD publishes them at
/// `/vcek/v1/{product}/cert_chain`. Only the ARK is a trust anchor; the ASK is checked against it.
pub fn pinned_ask_ark(product: AmdProduct) -> (Vec<u8>, Vec<u8>) {
    let certs = pinned_intermediates_der(product);
    let name = kds_name(product);
    let by_cn = |cn: String| {
        certs
            .iter()
            .find(|der| crate::x509::Cert::parse(der).is_ok_and(|c| c.common_name() == cn))
            .cloned()
            .unwrap_or_default()
    };
    (by_cn(format!("SEV-{name}")), by_cn(format!("ARK-{name}")))
}

fn intermediates_pem(product: AmdProduct) -> &'static str {
    match product {
        AmdProduct::Milan => INTERMEDIATES_MILAN,
        AmdProduct::Genoa => INTERMEDIATES_GENOA,
        AmdProduct::Turin => INTERMEDIATES_TURIN,
    }
}

/// The pinned ASK, ARK and ASVK of a product, as DER (no certificate parsed).
pub(crate) fn pinned_intermediates_der(product: AmdProduct) -> Vec<Vec<u8>> {
    crate::pem::certificates(intermediates_pem(product).as_bytes()).unwrap_or_default()
}

#[cfg(feature = "kds")]
mod http {
    use super::{Fetch, VcekError};

    /// Fetches over HTTPS with ureq (rustls), with a timeout and no retries: a 429 is reported,
    /// not hammered.
    #[derive(Debug)]
    pub struct KdsHttp {
        agent: ureq::Agent,
    }

    impl KdsHttp {
        /// A client with a 10-second overall timeout.
        pub fn new() -> Self {
            let config = ureq::Agent::config_builder()
                .timeout_global(Some(std::time::Duration::from_secs(10)))
                .http_status_as_error(false)
                .build();
            Self {
                agent: config.into(),
            }
        }
    }

    impl Default for KdsHttp {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Fetch for KdsHttp {
        fn get(&self, url: &str) -> Result<Vec<u8>, VcekError> {
            let response = self.agent.get(url).call().map_err(|e| VcekError::Network {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
            match response.status().as_u16() {
                200 => {}
                429 => {
                    return Err(VcekError::RateLimited {
                        url: url.to_string(),
                    })
                }
                status => {
                    return Err(VcekError::Http {
                        url: url.to_string(),
                        status,
                    })
                }
            }
            response
                .into_body()
                .with_config()
                .limit(64 * 1024)
                .read_to_vec()
                .map_err(|e| VcekError::Network {
                    url: url.to_string(),
                    reason: e.to_string(),
                })
        }
    }
}

#[cfg(feature = "kds")]
pub use http::KdsHttp;
