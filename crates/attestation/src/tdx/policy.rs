//! The TDX part of a policy (`tdx:` in the YAML), and the rules that tie it to `tee: tdx`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::policy::{AllowedMeasurement, MinTcb, Policy, ProductTcb};
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
    /// valid about 30 days (its `nextUpdate`). A relative path is resolved against the policy
    /// file's folder ([`Policy::load`]) or the working directory ([`Policy::from_yaml`]).
    /// Absent: every quote is refused (`NoCollateral`) unless the verifier was given collateral.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral: Option<PathBuf>,
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

impl Default for TdxPolicy {
    fn default() -> Self {
        Self {
            collateral: None,
            mrtd: Vec::new(),
            rtmr0: None,
            rtmr1: None,
            rtmr2: None,
            rtmr3: None,
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

    /// Checks every value's format.
    fn validate(&self) -> Result<(), String> {
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

    /// Resolves a relative collateral path against `base` (the policy file's folder).
    pub(crate) fn resolve_relative(&mut self, base: &Path) {
        if let Some(path) = self.collateral.as_mut() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
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
