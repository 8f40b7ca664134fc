//! What Compute Engine checks in an `instances.insert` body before it creates anything.

use serde_json::Value;

use super::catalog::{self, MachineType};
use super::errors::GceError;
use cdvm_provider_api::metadata::GCE_BOOTSTRAP_KEY;

/// An accepted insert request.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// The instance name.
    pub(crate) name: String,
    /// The machine type's short name (`n2d-standard-2`).
    pub(crate) machine_type: String,
    /// Its shape.
    pub(crate) machine: MachineType,
    /// `SEV`, `SEV_SNP` or `TDX`, when confidential.
    pub(crate) confidential: Option<String>,
    /// The bootstrap metadata item, when present.
    pub(crate) bootstrap: Option<String>,
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

pub(crate) fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// Label keys: a lowercase letter first; values may be empty. Both: lowercase letters, digits,
/// `_`, `-`, at most 63 characters.
pub(crate) fn label_ok(s: &str, key: bool) -> bool {
    s.len() <= 63
        && (!key || s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Checks `body` for an instance in `zone` the way GCE does.
pub(crate) fn insert(zone: &str, body: &Value) -> Result<Accepted, GceError> {
    let name = str_at(body, &["name"]).ok_or_else(|| GceError::required("resource.name"))?;
    if !is_name(name) {
        return Err(GceError::invalid_field(
            "resource.name",
            name,
            "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
        ));
    }
    let machine_type_url =
        str_at(body, &["machineType"]).ok_or_else(|| GceError::required("resource.machineType"))?;
    let (machine_type, machine) = machine_type(zone, machine_type_url)?;
    disks(body)?;
    if body
        .get("networkInterfaces")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
    {
        return Err(GceError::required("resource.networkInterfaces"));
    }
    labels(body)?;
    let bootstrap = metadata(body)?;
    let confidential = confidential(body, &machine_type, machine.series)?;
    Ok(Accepted {
        name: name.to_string(),
        machine_type,
        machine,
        confidential,
        bootstrap,
    })
}

fn machine_type(zone: &str, url: &str) -> Result<(String, MachineType), GceError> {
    let field = "resource.machineType";
    let short = url.rsplit("machineTypes/").next().unwrap_or(url);
    if let Some((_, rest)) = url.split_once("zones/") {
        let url_zone = rest.split('/').next().unwrap_or_default();
        if url_zone != zone {
            return Err(GceError::invalid_field(
                field,
                url,
                &format!("Machine type zone '{url_zone}' does not match instance zone '{zone}'."),
            ));
        }
    }
    let machine = catalog::lookup(short).ok_or_else(|| {
        GceError::invalid_field(
            field,
            url,
            &format!("Machine type with name '{short}' does not exist in zone '{zone}'."),
        )
    })?;
    Ok((short.to_string(), machine))
}

fn disks(body: &Value) -> Result<(), GceError> {
    let disks = body
        .get("disks")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| GceError::required("resource.disks"))?;
    for (i, disk) in disks.iter().enumerate() {
        let image = str_at(disk, &["initializeParams", "sourceImage"]);
        if let Some(image) = image {
            // projects/P/global/images/NAME or …/images/family/F, optionally as a full URL.
            let path = image.split_once("/compute/v1/").map_or(image, |(_, p)| p);
            let parts: Vec<&str> = path.split('/').collect();
            let well_formed = matches!(
                parts.as_slice(),
                ["projects", p, "global", "images", n] if !p.is_empty() && !n.is_empty()
            ) || matches!(
                parts.as_slice(),
                ["projects", p, "global", "images", "family", f] if !p.is_empty() && !f.is_empty()
            );
            if !well_formed {
                return Err(GceError::invalid_field(
                    &format!("resource.disks[{i}].initializeParams.sourceImage"),
                    image,
                    "The URL is malformed.",
                ));
            }
        } else if str_at(disk, &["source"]).is_none() {
            return Err(GceError::required(&format!(
                "resource.disks[{i}].initializeParams.sourceImage"
            )));
        }
    }
    Ok(())
}

fn labels(body: &Value) -> Result<(), GceError> {
    let Some(labels) = body.get("labels").and_then(Value::as_object) else {
        return Ok(());
    };
    for (k, v) in labels {
        let v = v.as_str().unwrap_or_default();
        if !label_ok(k, true) || !label_ok(v, false) {
            let bad = if label_ok(k, true) { v } else { k.as_str() };
            return Err(GceError::invalid_field(
                "resource.labels",
                "",
                &format!(
                    "Label value '{bad}' violates format constraints. The key must start with a \
                     lowercase character, can only contain lowercase letters, numeric characters, \
                     underscores and dashes. The key can be at most 63 characters long. \
                     International characters are allowed."
                ),
            ));
        }
    }
    Ok(())
}

/// Checks metadata keys and sizes; returns the bootstrap item's value.
fn metadata(body: &Value) -> Result<Option<String>, GceError> {
    let Some(items) = body
        .get("metadata")
        .and_then(|m| m.get("items"))
        .and_then(Value::as_array)
    else {
        return Ok(None);
    };
    let mut seen = std::collections::HashSet::new();
    let mut bootstrap = None;
    for (i, item) in items.iter().enumerate() {
        let key = str_at(item, &["key"]).unwrap_or_default();
        let value = str_at(item, &["value"]).unwrap_or_default();
        let key_ok = (1..=128).contains(&key.len())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !key_ok {
            return Err(GceError::invalid_field(
                &format!("resource.metadata.items[{i}].key"),
                key,
                "Metadata keys can only contain letters, digits, '-' and '_', at most 128.",
            ));
        }
        if !seen.insert(key) {
            return Err(GceError::invalid_field(
                "resource.metadata",
                key,
                "Duplicate metadata key.",
            ));
        }
        if value.len() > 256 * 1024 {
            return Err(GceError::invalid_field(
                &format!("resource.metadata.items[{i}].value"),
                key,
                "Metadata values can be at most 256 KB.",
            ));
        }
        if key == GCE_BOOTSTRAP_KEY {
            bootstrap = Some(value.to_string());
        }
    }
    Ok(bootstrap)
}

fn confidential(
    body: &Value,
    machine_type: &str,
    series: &str,
) -> Result<Option<String>, GceError> {
    let config = body.get("confidentialInstanceConfig");
    let kind = match config
        .and_then(|c| c.get("confidentialInstanceType"))
        .and_then(Value::as_str)
    {
        Some(t) => t.to_string(),
        None if config
            .and_then(|c| c.get("enableConfidentialCompute"))
            .and_then(Value::as_bool)
            == Some(true) =>
        {
            "SEV".to_string()
        }
        None => return Ok(None),
    };
    if let Some(why) = catalog::confidential_mismatch(&kind, machine_type, series) {
        return Err(GceError::invalid_field(
            "resource.confidentialInstanceConfig.confidentialInstanceType",
            &kind,
            &why,
        ));
    }
    if kind == "SEV_SNP" {
        let platform = str_at(body, &["minCpuPlatform"]).unwrap_or_default();
        if platform != "AMD Milan" {
            return Err(GceError::invalid_field(
                "resource.minCpuPlatform",
                platform,
                "Confidential instance type SEV_SNP requires minimum CPU platform 'AMD Milan'.",
            ));
        }
    }
    let maintenance = str_at(body, &["scheduling", "onHostMaintenance"]).unwrap_or("MIGRATE");
    if kind != "SEV" && maintenance != "TERMINATE" {
        return Err(GceError::invalid_field(
            "resource.scheduling.onHostMaintenance",
            maintenance,
            &format!(
                "Confidential instance type {kind} does not support live migration; set \
                 onHostMaintenance to TERMINATE."
            ),
        ));
    }
    Ok(Some(kind))
}
