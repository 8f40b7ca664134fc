//! `cdvm verify`: offline verification of saved evidence, printing every check.
//!
//! Accepts a saved attestation event (JSON; the expected report data is recomputed from its
//! request id and author), an `Evidence` JSON, a raw 1184-byte SEV-SNP report, or a raw TDX quote.
//! For the last three the expected report data must be given (`--report-data`). With `--gpu`,
//! GPU evidence on its own (`cli_verify_gpu`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdvm_attestation::snp::roots::AmdProduct;
use cdvm_attestation::snp::vcek::{product_of, VcekResolver};
use cdvm_attestation::snp::{cert_table, AttestationReport};
use cdvm_attestation::tdx::TdxEvidence;
use cdvm_attestation::{Claims, Evidence, Policy, ReportData, SnpCertChain, SnpEvidence};
use cdvm_client::ClientError;
use cdvm_protocol::nostr::{Event, JsonUtil};
use clap::ValueEnum;

/// Arguments of `cdvm verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The policy (YAML).
    #[arg(long)]
    policy: PathBuf,
    /// The evidence: an attestation event (JSON), an Evidence JSON, a raw SNP report or TDX quote.
    #[arg(required_unless_present = "gpu")]
    evidence: Option<PathBuf>,
    /// Verify GPU evidence on its own instead: NVIDIA's evidence JSON (one entry per GPU, as
    /// nvtrust and nvattest write it) or GpuEvidence JSON. Needs --nonce. The policy is a GPU-only
    /// policy (`name`, `gpu`) or a full policy whose `gpu` section is used.
    #[arg(
        long,
        value_name = "FILE",
        requires = "nonce",
        conflicts_with_all = ["evidence", "report_data", "certs", "product", "fetch"]
    )]
    gpu: Option<PathBuf>,
    /// With --gpu: the 32-byte nonce the GPUs must have signed (64 hex characters), the one you
    /// had the evidence collected with.
    #[arg(long, value_name = "HEX", requires = "gpu", value_parser = crate::cli_verify_gpu::parse_nonce)]
    nonce: Option<[u8; 32]>,
    /// The 64-byte report data the evidence must carry (128 hex characters). Not needed for an
    /// attestation event, whose binding is recomputed.
    #[arg(long)]
    report_data: Option<String>,
    /// Certificates for a raw SNP report: the extended report's certificate table, or a PEM
    /// bundle (VCEK/VLEK first, then ASK/ASVK and ARK).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// The AMD product, when a v2 report cannot tell it.
    #[arg(long, value_enum)]
    product: Option<Product>,
    /// Folder of cached VCEKs (one DER per chip and TCB).
    #[arg(long, default_value_os_t = default_cache())]
    cache_dir: PathBuf,
    /// Fetch a missing VCEK from AMD KDS (and cache it). Without it, verification stays offline.
    #[arg(long)]
    fetch: bool,
    /// Verify as of this time (unix seconds or YYYY-MM-DDTHH:MM:SSZ) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Product {
    Milan,
    Genoa,
    Turin,
}

impl From<Product> for AmdProduct {
    fn from(p: Product) -> Self {
        match p {
            Product::Milan => AmdProduct::Milan,
            Product::Genoa => AmdProduct::Genoa,
            Product::Turin => AmdProduct::Turin,
        }
    }
}

pub(crate) fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("cdvm/vcek")
}

pub(crate) fn usage(msg: impl Into<String>) -> ClientError {
    ClientError::Usage(msg.into())
}

/// Runs `cdvm verify`.
pub fn run(args: VerifyArgs) -> Result<(), ClientError> {
    let now = match &args.at {
        Some(t) => parse_time(t)?,
        None => SystemTime::now(),
    };
    if let (Some(file), Some(nonce)) = (&args.gpu, &args.nonce) {
        return crate::cli_verify_gpu::run(file, nonce, &args.policy, now, args.json);
    }
    let Some(evidence_path) = &args.evidence else {
        // clap requires one of the two; this is only reached if that changes.
        return Err(usage("give an evidence file, or --gpu FILE with --nonce"));
    };
    let policy = Policy::load(&args.policy).map_err(|e| usage(e.to_string()))?;
    let bytes = std::fs::read(evidence_path).map_err(|source| ClientError::Io {
        path: evidence_path.display().to_string(),
        source,
    })?;
    let verdict = if looks_like_json(&bytes) {
        verify_json(&bytes, evidence_path, &args, &policy, now)
    } else {
        let expected = expected_report_data(&args)?;
        let evidence = raw_evidence(bytes, &args)?;
        let subject = format!(
            "{} evidence from {}",
            evidence.tee(),
            evidence_path.display()
        );
        cdvm_client::verify_evidence(&evidence, &expected, &policy, now)
            .map(|claims| (subject, claims))
            .map_err(ClientError::AttestationRefused)
    };
    match verdict {
        Ok((subject, claims)) => {
            print(&subject, &claims, args.json);
            Ok(())
        }
        Err(ClientError::AttestationRefused(e)) => {
            print_refusal(&e, &policy.name, args.json);
            Err(ClientError::AttestationRefused(e))
        }
        Err(other) => Err(other),
    }
}

/// Shows the failed check in place (the checks before it passed; the ones after it did not run).
/// A GPU refusal names its GPU and step (`gpu0-nonce`), as a successful run does.
pub(crate) fn print_refusal(e: &cdvm_attestation::VerifyError, policy: &str, json: bool) {
    let check = match e {
        cdvm_attestation::VerifyError::Gpu(gpu) => gpu.check(),
        other => other.check().to_string(),
    };
    if json {
        let out = serde_json::json!({
            "verdict": "refused",
            "policy": policy,
            "failed_check": check,
            "reason": e.to_string(),
        });
        println!("{out:#}");
    } else {
        println!("  ✗ {check}: {e}");
        println!("verdict: REFUSED under policy `{policy}`");
    }
}

fn looks_like_json(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn verify_json(
    bytes: &[u8],
    path: &Path,
    args: &VerifyArgs,
    policy: &Policy,
    now: SystemTime,
) -> Result<(String, Claims), ClientError> {
    // Usage problems (bad JSON, missing --report-data) are errors of their own, not refusals.
    let text =
        std::str::from_utf8(bytes).map_err(|_| usage("the evidence file is not UTF-8 JSON"))?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| usage(format!("{}: invalid JSON: {e}", path.display())))?;
    if value.get("sig").is_some() && value.get("kind").is_some() {
        let event =
            Event::from_json(text.trim()).map_err(|e| usage(format!("not a Nostr event: {e}")))?;
        let (attestation, claims) = cdvm_client::verify_attestation_event(&event, policy, now)?;
        let subject = format!(
            "attestation for request {} by guest {}",
            attestation.request_id, attestation.guest
        );
        return Ok((subject, claims));
    }
    let evidence: Evidence = serde_json::from_value(value)
        .map_err(|e| usage(format!("not an attestation event or Evidence JSON: {e}")))?;
    let expected = expected_report_data(args)?;
    let claims = cdvm_client::verify_evidence(&evidence, &expected, policy, now)
        .map_err(ClientError::AttestationRefused)?;
    Ok((
        format!("{} evidence from {}", evidence.tee(), path.display()),
        claims,
    ))
}

fn expected_report_data(args: &VerifyArgs) -> Result<ReportData, ClientError> {
    let hex_text = args.report_data.as_deref().ok_or_else(|| {
        usage("--report-data is required for raw evidence: verification never skips the binding")
    })?;
    let mut out = [0u8; 64];
    hex::decode_to_slice(hex_text.trim(), &mut out)
        .map_err(|_| usage("--report-data must be exactly 128 hex characters (64 bytes)"))?;
    Ok(ReportData(out))
}

/// A raw SNP report (1184 bytes) or TDX quote (TEE type 0x81 at offset 4).
fn raw_evidence(bytes: Vec<u8>, args: &VerifyArgs) -> Result<Evidence, ClientError> {
    let is_tdx_quote = bytes.get(4..8) == Some(&[0x81, 0, 0, 0][..]);
    if is_tdx_quote {
        return Ok(Evidence::Tdx(TdxEvidence {
            quote: bytes,
            event_log: None,
            gpus: Vec::new(),
        }));
    }
    let report = AttestationReport::parse(&bytes)
        .map_err(|e| usage(format!("not an SNP report or TDX quote: {e}")))?;
    let chain = match &args.certs {
        Some(path) => chain_from_file(path)?,
        None => {
            let product = args
                .product
                .map(AmdProduct::from)
                .or_else(|| product_of(&report))
                .ok_or_else(|| {
                    usage("cannot tell the AMD product of this report: pass --product")
                })?;
            let resolver = resolver(args);
            let (chain, source) = resolver
                .chain(&report, product)
                .map_err(|e| usage(format!("no VCEK: {e}")))?;
            eprintln!("VCEK from {source:?}");
            chain
        }
    };
    Ok(Evidence::SevSnp(SnpEvidence {
        report: bytes,
        chain: Some(chain),
        gpus: Vec::new(),
        cloud_vtpm: None,
    }))
}

fn resolver(args: &VerifyArgs) -> VcekResolver {
    resolver_for(&args.cache_dir, args.fetch)
}

/// The VCEK resolver: the cache folder, then AMD KDS when `fetch` (and the build can).
#[cfg(feature = "kds")]
pub(crate) fn resolver_for(cache_dir: &Path, fetch: bool) -> VcekResolver {
    use cdvm_attestation::snp::vcek::{KdsHttp, KDS_BASE};
    if fetch {
        VcekResolver::with_fetch(
            Some(cache_dir.to_path_buf()),
            KDS_BASE,
            Box::new(KdsHttp::new()),
        )
    } else {
        VcekResolver::offline(cache_dir)
    }
}

/// The VCEK resolver: the cache folder only (this build has no KDS client).
#[cfg(not(feature = "kds"))]
pub(crate) fn resolver_for(cache_dir: &Path, fetch: bool) -> VcekResolver {
    if fetch {
        eprintln!(
            "warning: this build cannot fetch from AMD KDS (feature `kds`); using the cache only"
        );
    }
    VcekResolver::offline(cache_dir)
}

/// A certificate table (binary) or a PEM bundle: leaf, then ASK/ASVK, then ARK.
fn chain_from_file(path: &Path) -> Result<SnpCertChain, ClientError> {
    let bytes = std::fs::read(path).map_err(|source| ClientError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if bytes.starts_with(b"-----BEGIN") {
        // DER only: the verifier parses what it needs, and pinned certificates not at all.
        let der = cdvm_attestation::pem::certificates(&bytes)
            .map_err(|e| usage(format!("{}: bad PEM: {e}", path.display())))?;
        return match der.as_slice() {
            [vcek, ask, ark] => Ok(SnpCertChain {
                vcek: vcek.clone(),
                ask: ask.clone(),
                ark: ark.clone(),
            }),
            other => Err(usage(format!(
                "{}: expected 3 certificates (VCEK/VLEK, ASK/ASVK, ARK), found {}",
                path.display(),
                other.len()
            ))),
        };
    }
    let entries =
        cert_table::parse(&bytes).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    cert_table::chain(&entries).ok_or_else(|| {
        usage(format!(
            "{}: the certificate table lacks the VCEK/VLEK, ASK or ARK",
            path.display()
        ))
    })
}

fn print(subject: &str, claims: &Claims, json: bool) {
    if json {
        let out =
            serde_json::json!({ "verdict": "accepted", "subject": subject, "claims": claims });
        println!("{out:#}");
        return;
    }
    println!("{subject}");
    crate::show::claims(claims, "  ");
    println!("verdict: ACCEPTED under policy `{}`", claims.policy);
}

/// Unix seconds, or `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub(crate) fn parse_time(text: &str) -> Result<SystemTime, ClientError> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    let bad = || {
        usage(format!(
            "--at {text:?}: use unix seconds or YYYY-MM-DDTHH:MM:SSZ"
        ))
    };
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| {
        text.get(r)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_parse() {
        let t = parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_767_225_600
        );
        let t = parse_time("2000-02-29T12:34:56Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 951_827_696);
        assert_eq!(
            parse_time("42")
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            42
        );
        assert!(parse_time("2026-13-01T00:00:00Z").is_err());
        assert!(parse_time("yesterday").is_err());
    }
}
