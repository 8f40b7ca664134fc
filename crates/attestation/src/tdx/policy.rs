//! The TDX part of a policy (`tdx:` in the YAML), and the rules that tie it to `tee: tdx`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::policy::{AllowedMeasurement, MinTcb, Policy, ProductTcb};
use crate::tdx::TdxError;
use crate::{Measurement, TeeKind};

/// TCB statuses Intel's TCB info can give a TDX platform (dcap-qvl's names). `Revoked` is
/// refused unconditionally and may not be listed.
pub const KNOWN_TCB_STATUSES: &[&str] = &[
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
];

fn default_tcb_status() -> Vec<String> {
    vec!["UpToDate".to_string()]
}

/// TDX requirements of a policy. Required when `tee: tdx`; refused otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {
    /// Intel's collateral for the platform: a dcap-qvl `QuoteCollateralV3` JSON file (TCB info,
    /// QE identity, PCK and root CRLs, their signer chains), as fetched from Intel PCS or a PCCS
    /// for the platform's FMSPC. Intel signs it, so where it comes from does not matter; it is
    /// valid about 30 days (its `nextUpdate`); a `tdx.pccs` cache file has the same format. A
    /// relative path is resolved against the policy file's folder ([`Policy::load`]) or the
    /// working directory ([`Policy::from_yaml`]).
    /// Absent (and no `pccs`): every quote is refused (`NoCollateral`) unless the verifier was
    /// given collateral. Exclusive with `pccs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral: Option<PathBuf>,
    /// Instead of a pinned file: fetch the collateral for each quote's FMSPC from Intel PCS or a
    /// PCCS and cache it on disk until its earliest `nextUpdate` (`tdx::pccs`). Without a URL,
    /// the cache only (offline). Fetching needs the `pccs` feature; a build without it refuses
    /// quotes under a policy that names a URL (`PccsError::FeatureOff`). Exclusive with
    /// `collateral`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pccs: Option<PccsConfig>,
    /// Allowed MRTD values (the TD's launch measurement, 96 hex characters each, with the
    /// build that produced them). Empty allows nothing.
    #[serde(default)]
    pub mrtd: Vec<AllowedMeasurement>,
    /// Allowed RTMR0 values (firmware configuration). Absent: not checked. Empty: nothing allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr0: Option<Vec<AllowedMeasurement>>,
    /// Allowed RTMR1 values (OS loader / kernel). Absent: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr1: Option<Vec<AllowedMeasurement>>,
    /// Allowed RTMR2 values (OS: command line, initrd). Absent: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr2: Option<Vec<AllowedMeasurement>>,
    /// Allowed RTMR3 values (application-defined). Absent: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr3: Option<Vec<AllowedMeasurement>>,
    /// Boot events the guest's CC event log (ACPI CCEL) must hold, checked after the log's replay
    /// is found to equal the quote's RTMRs: how a policy pins the image a cloud's firmware
    /// booted (our UKI's Authenticode digest in RTMR1) without pinning every other firmware
    /// event. Absent: the log is not required (and not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_log: Option<crate::tdx::ccel::ExpectedEvents>,
    /// Allowed XFAM values (16 hex characters, the 8 bytes as in the report). Absent: not
    /// checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xfam: Option<Vec<String>>,
    /// TCB statuses accepted (Intel's names, e.g. `UpToDate`, `SWHardeningNeeded`,
    /// `OutOfDate`). Default: only `UpToDate`. `Revoked` is always refused.
    #[serde(default = "default_tcb_status")]
    pub allowed_tcb_status: Vec<String>,
    /// Accept a TD in debug mode (TD_ATTRIBUTES bit 0, or any other "TD under debug" bit): the
    /// host can then read its memory. Default: false.
    #[serde(default)]
    pub allow_debug: bool,
}

/// Where Intel's collateral comes from: `tdx.pccs` in the YAML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PccsConfig {
    /// Base URL of Intel PCS (`https://api.trustedservices.intel.com`) or of a PCCS
    /// (`https://pccs:8081`); the v4 paths are appended. Absent: offline, the cache only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The collateral cache folder (one JSON file per FMSPC and PCK CA). A relative path is
    /// resolved like `collateral`.
    pub cache_dir: PathBuf,
}

/// The source of collateral a [`TdxPolicy`] names (`tdx.collateral` or `tdx.pccs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TdxCollateralSource<'a> {
    /// A pinned `QuoteCollateralV3` JSON file (`tdx.collateral`).
    File(&'a Path),
    /// Intel PCS / a PCCS with an on-disk cache, or the cache alone (`tdx.pccs`).
    Pccs(&'a PccsConfig),
}

impl Default for TdxPolicy {
    fn default() -> Self {
        Self {
            collateral: None,
            pccs: None,
            mrtd: Vec::new(),
            rtmr0: None,
            rtmr1: None,
            rtmr2: None,
            rtmr3: None,
            event_log: None,
            xfam: None,
            allowed_tcb_status: default_tcb_status(),
            allow_debug: false,
        }
    }
}

impl TdxPolicy {
    /// The RTMR allow-lists, by index.
    pub fn rtmr(&self) -> [Option<&Vec<AllowedMeasurement>>; 4] {
        [
            self.rtmr0.as_ref(),
            self.rtmr1.as_ref(),
            self.rtmr2.as_ref(),
            self.rtmr3.as_ref(),
        ]
    }

    /// Where the collateral comes from: the file, the PCCS, or nothing named (`None`). Naming
    /// both is refused ([`TdxError::CollateralAmbiguous`]); a loaded policy never does.
    pub fn collateral_source(&self) -> Result<Option<TdxCollateralSource<'_>>, TdxError> {
        match (&self.collateral, &self.pccs) {
            (Some(_), Some(_)) => Err(TdxError::CollateralAmbiguous),
            (Some(path), None) => Ok(Some(TdxCollateralSource::File(path))),
            (None, Some(pccs)) => Ok(Some(TdxCollateralSource::Pccs(pccs))),
            (None, None) => Ok(None),
        }
    }

    /// Checks every value's format.
    fn validate(&self) -> Result<(), String> {
        self.collateral_source().map_err(|_| {
            "tdx.collateral and tdx.pccs are exclusive: name one source".to_string()
        })?;
        if let Some(pccs) = &self.pccs {
            pccs.validate()?;
        }
        let lists = std::iter::once(("mrtd".to_string(), Some(&self.mrtd))).chain(
            self.rtmr()
                .into_iter()
                .enumerate()
                .map(|(i, l)| (format!("rtmr{i}"), l)),
        );
        for (field, list) in lists {
            for m in list.into_iter().flatten() {
                Measurement::from_hex(&m.measurement)
                    .map_err(|e| format!("tdx.{field} {:?}: {e}", m.measurement))?;
            }
        }
        if let Some(expected) = &self.event_log {
            expected
                .validate()
                .map_err(|e| format!("tdx.event_log: {e}"))?;
        }
        for x in self.xfam.iter().flatten() {
            let mut out = [0u8; 8];
            hex::decode_to_slice(x.trim(), &mut out)
                .map_err(|e| format!("tdx.xfam {x:?} is not 16 hex characters: {e}"))?;
        }
        for s in &self.allowed_tcb_status {
            if s == "Revoked" {
                return Err("tdx.allowed_tcb_status: Revoked is always refused".into());
            }
            if !KNOWN_TCB_STATUSES.contains(&s.as_str()) {
                return Err(format!(
                    "tdx.allowed_tcb_status: unknown status {s:?} (known: {})",
                    KNOWN_TCB_STATUSES.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Resolves a relative collateral file or PCCS cache folder against `base` (the policy
    /// file's folder).
    pub(crate) fn resolve_relative(&mut self, base: &Path) {
        let paths = [
            self.collateral.as_mut(),
            self.pccs.as_mut().map(|p| &mut p.cache_dir),
        ];
        for path in paths.into_iter().flatten() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}

impl PccsConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .ok_or_else(|| format!("tdx.pccs.url {url:?} is not an http(s):// URL"))?;
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if host.is_empty() || rest.contains(['?', '#']) || url.chars().any(char::is_whitespace)
            {
                return Err(format!(
                    "tdx.pccs.url {url:?}: expected a base URL such as https://pccs:8081"
                ));
            }
        }
        if self.cache_dir.as_os_str().is_empty() {
            return Err("tdx.pccs.cache_dir is empty".into());
        }
        Ok(())
    }
}

/// The rules between `tee` and the `tdx` section, checked when a policy is loaded: a TDX policy
/// has a `tdx:` section and leaves the SEV-SNP-only fields at their defaults (so that a value
/// there cannot look like it applies); a SEV-SNP policy has no `tdx:` section.
pub(crate) fn validate_policy(policy: &Policy) -> Result<(), String> {
    match (policy.tee, &policy.tdx) {
        (TeeKind::Tdx, None) => Err("tee: tdx requires a `tdx:` section".into()),
        (TeeKind::SevSnp, Some(_)) => Err("a `tdx:` section is only allowed with tee: tdx".into()),
        (TeeKind::SevSnp, None) => Ok(()),
        (TeeKind::Tdx, Some(tdx)) => {
            let snp_only = [
                (
                    "measurements (use tdx.mrtd)",
                    !policy.measurements.is_empty(),
                ),
                ("min_tcb", policy.min_tcb != MinTcb::default()),
                (
                    "min_tcb_by_product",
                    policy.min_tcb_by_product != ProductTcb::default(),
                ),
                ("allow_debug (use tdx.allow_debug)", policy.allow_debug),
                ("allow_migration_agent", policy.allow_migration_agent),
                ("max_vmpl", policy.max_vmpl != 0),
            ];
            if let Some((field, _)) = snp_only.iter().find(|(_, set)| *set) {
                return Err(format!("{field} applies to sev-snp only; tee is tdx"));
            }
            tdx.validate()
        }
    }
}
