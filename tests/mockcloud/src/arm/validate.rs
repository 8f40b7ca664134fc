//! Request body checks, with ARM's error codes and messages.

use axum::http::StatusCode;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::http::{refuse, Refusal};
use super::sizes::{self, Family};

/// A VM PUT that passed the checks.
#[derive(Debug)]
pub struct VmRequest {
    pub location: String,
    pub tags: Value,
    /// `properties` without `userData`.
    pub properties: Value,
    /// The base64 user data, as given.
    pub user_data: Option<String>,
    pub size: &'static str,
    pub family: Family,
    pub confidential: bool,
    pub admin: Option<String>,
    /// NIC ids, and whether each goes with the VM (`deleteOption: Delete`).
    pub nics: Vec<(String, bool)>,
}

/// A NIC PUT that passed the checks.
#[derive(Debug)]
pub struct NicRequest {
    pub location: String,
    pub tags: Value,
    pub properties: Value,
}

const CONFIDENTIAL: &str = "ConfidentialVM";
const ENCRYPTION_TYPES: &[&str] = &[
    "VMGuestStateOnly",
    "DiskWithVMGuestState",
    "NonPersistedTPM",
];
/// 64 KiB of user data, base64-encoded.
const MAX_USER_DATA: usize = 87_380;
/// Admin names ARM refuses on Linux.
const RESERVED_ADMINS: &[&str] = &["admin", "administrator", "root", "user", "guest", "test"];

fn bad(code: &str, message: impl Into<String>) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, code, message)
}

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    v.pointer(path).filter(|v| !v.is_null())
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

fn linked_invalid(id: &str, path: &str) -> Refusal {
    bad(
        "LinkedInvalidPropertyId",
        format!(
            "Property id '{id}' at path '{path}' is invalid. Expect fully qualified resource Id \
             that start with '/subscriptions/{{subscriptionId}}' or \
             '/providers/{{resourceProviderNamespace}}/'."
        ),
    )
}

/// Whether `id` is `/subscriptions/{s}/resourceGroups/{rg}/providers/{namespace}/{types[0]}/{n}[/{types[1]}/{n}…]`.
fn is_resource_id(id: &str, namespace: &str, types: &[&str]) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    let fixed = [
        (1, "subscriptions"),
        (3, "resourceGroups"),
        (5, "providers"),
        (6, namespace),
    ];
    parts.len() == 7 + 2 * types.len()
        && parts[0].is_empty()
        && fixed
            .iter()
            .all(|(i, want)| parts[*i].eq_ignore_ascii_case(want))
        && types
            .iter()
            .enumerate()
            .all(|(i, t)| parts[7 + 2 * i].eq_ignore_ascii_case(t))
        && parts.iter().skip(1).all(|p| !p.is_empty())
}

/// Parses the envelope every resource PUT has: a JSON object with `location`, `tags` and
/// `properties`.
fn envelope(body: &[u8]) -> Result<(String, Value, Value), Refusal> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        bad(
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: '{e}'."),
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(bad(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        ));
    };
    let location = match obj.get("location").and_then(Value::as_str) {
        Some(l) if !l.trim().is_empty() => l.to_string(),
        _ => {
            return Err(bad(
                "LocationRequired",
                "The location property is required for this definition.",
            ))
        }
    };
    let tags = obj.get("tags").cloned().unwrap_or_else(|| json!({}));
    if !tags
        .as_object()
        .is_some_and(|t| t.values().all(Value::is_string))
    {
        return Err(bad(
            "InvalidRequestContent",
            "The request content was invalid: 'tags' must map names to strings.",
        ));
    }
    let properties = obj
        .get("properties")
        .filter(|p| p.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    Ok((location, tags, properties))
}

/// Checks a NIC PUT.
pub fn nic(body: &[u8]) -> Result<NicRequest, Refusal> {
    let (location, tags, properties) = envelope(body)?;
    let configs = at(&properties, "/ipConfigurations")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            bad(
                "InvalidRequestFormat",
                "Cannot parse the request: a network interface needs at least one IP configuration.",
            )
        })?;
    for (i, config) in configs.iter().enumerate() {
        let path = format!("properties.ipConfigurations[{i}].properties.subnet.id");
        let Some(subnet) = str_at(config, "/properties/subnet/id") else {
            return Err(bad(
                "InvalidRequestFormat",
                format!("Cannot parse the request: {path} is required."),
            ));
        };
        if !is_resource_id(subnet, "Microsoft.Network", &["virtualNetworks", "subnets"]) {
            return Err(linked_invalid(subnet, &path));
        }
    }
    Ok(NicRequest {
        location,
        tags,
        properties,
    })
}

/// Checks a VM PUT.
pub fn vm(body: &[u8]) -> Result<VmRequest, Refusal> {
    let (location, tags, mut properties) = envelope(body)?;
    let user_data = match properties
        .as_object_mut()
        .and_then(|p| p.remove("userData"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(invalid_parameter("userData")),
    };
    let (size, family) = size(&properties)?;
    let confidential = security(&properties, size, family)?;
    storage(&properties)?;
    let nics = network(&properties)?;
    let admin = os_profile(&properties)?;
    if let Some(data) = &user_data {
        if data.len() > MAX_USER_DATA
            || base64::engine::general_purpose::STANDARD
                .decode(data)
                .is_err()
        {
            return Err(invalid_parameter("userData"));
        }
    }
    Ok(VmRequest {
        location,
        tags,
        properties,
        user_data,
        size,
        family,
        confidential,
        admin,
        nics,
    })
}

fn invalid_parameter(name: &str) -> Refusal {
    bad(
        "InvalidParameter",
        format!("The value of parameter {name} is invalid."),
    )
}

fn required(name: &str) -> Refusal {
    bad(
        "InvalidParameter",
        format!("Required parameter '{name}' is missing (null)."),
    )
}

fn size(p: &Value) -> Result<(&'static str, Family), Refusal> {
    let Some(given) = str_at(p, "/hardwareProfile/vmSize") else {
        return Err(required("hardwareProfile.vmSize"));
    };
    sizes::lookup(given).ok_or_else(|| {
        bad(
            "InvalidParameter",
            format!(
                "The value {given} provided for the VM size is not valid. The valid sizes in the \
                 current region are: {}.",
                sizes::SIZES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        )
    })
}

/// Whether the VM is a confidential VM, refusing inconsistent settings the way ARM does.
fn security(p: &Value, size: &str, family: Family) -> Result<bool, Refusal> {
    let security_type = str_at(p, "/securityProfile/securityType");
    let encryption = str_at(
        p,
        "/storageProfile/osDisk/managedDisk/securityProfile/securityEncryptionType",
    );
    let vtpm = at(p, "/securityProfile/uefiSettings/vTpmEnabled").and_then(Value::as_bool);
    if security_type != Some(CONFIDENTIAL) {
        if family != Family::General {
            return Err(bad(
                "BadRequest",
                format!(
                    "The VM size '{size}' is only supported for VMs with security type \
                     'ConfidentialVM'. Set 'securityProfile.securityType' to 'ConfidentialVM'."
                ),
            ));
        }
        if encryption.is_some() {
            return Err(bad(
                "BadRequest",
                "'securityEncryptionType' of the managed disk can only be set for VMs with \
                 security type 'ConfidentialVM'.",
            ));
        }
        return Ok(false);
    }
    if family == Family::General {
        return Err(bad(
            "BadRequest",
            format!(
                "The VM size '{size}' is not supported for creation of VMs and Virtual Machine \
                 Scale Set with 'ConfidentialVM' security type."
            ),
        ));
    }
    match encryption {
        None => {
            return Err(bad(
                "BadRequest",
                "'securityProfile.securityEncryptionType' of the managed OS disk is required \
                 for VMs with security type 'ConfidentialVM'.",
            ))
        }
        Some(e) if !ENCRYPTION_TYPES.contains(&e) => {
            return Err(bad(
                "BadRequest",
                format!(
                    "The value '{e}' of 'securityEncryptionType' is invalid; allowed: {}.",
                    ENCRYPTION_TYPES.join(", ")
                ),
            ))
        }
        Some(_) => {}
    }
    if vtpm != Some(true) {
        return Err(bad(
            "BadRequest",
            "Use of security type 'ConfidentialVM' requires \
             'securityProfile.uefiSettings.vTpmEnabled' to be true.",
        ));
    }
    Ok(true)
}

fn storage(p: &Value) -> Result<(), Refusal> {
    if str_at(p, "/storageProfile/osDisk/createOption").is_none() {
        return Err(required("storageProfile.osDisk.createOption"));
    }
    let Some(image) = at(p, "/storageProfile/imageReference") else {
        return Err(required("imageReference"));
    };
    match image.get("id").and_then(Value::as_str) {
        Some(id) if id.len() > 1 && is_compute_id(id) => Ok(()),
        Some(id) => Err(linked_invalid(
            id,
            "properties.storageProfile.imageReference.id",
        )),
        None if image.get("publisher").is_some() => Ok(()),
        None => Err(required("imageReference.id")),
    }
}

/// A Microsoft.Compute resource id of any type (images, gallery image versions).
fn is_compute_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() >= 9
        && parts.len() % 2 == 1
        && parts[1].eq_ignore_ascii_case("subscriptions")
        && parts[3].eq_ignore_ascii_case("resourceGroups")
        && parts[5].eq_ignore_ascii_case("providers")
        && parts[6].eq_ignore_ascii_case("Microsoft.Compute")
        && parts.iter().skip(1).all(|s| !s.is_empty())
}

fn network(p: &Value) -> Result<Vec<(String, bool)>, Refusal> {
    let nics = at(p, "/networkProfile/networkInterfaces")
        .and_then(Value::as_array)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| required("networkProfile.networkInterfaces"))?;
    nics.iter()
        .enumerate()
        .map(|(i, nic)| {
            let Some(id) = nic.get("id").and_then(Value::as_str) else {
                return Err(required(&format!(
                    "networkProfile.networkInterfaces[{i}].id"
                )));
            };
            if !is_resource_id(id, "Microsoft.Network", &["networkInterfaces"]) {
                return Err(linked_invalid(
                    id,
                    &format!("properties.networkProfile.networkInterfaces[{i}].id"),
                ));
            }
            let delete = str_at(nic, "/properties/deleteOption") == Some("Delete");
            Ok((id.to_string(), delete))
        })
        .collect()
}

fn os_profile(p: &Value) -> Result<Option<String>, Refusal> {
    let Some(os) = at(p, "/osProfile") else {
        return Ok(None);
    };
    let Some(admin) = str_at(os, "/adminUsername") else {
        return Err(required("adminUsername"));
    };
    if RESERVED_ADMINS.contains(&admin.to_ascii_lowercase().as_str()) || admin.len() > 32 {
        return Err(bad(
            "InvalidParameter",
            "The Admin Username specified is not allowed.",
        ));
    }
    let no_password = at(os, "/linuxConfiguration/disablePasswordAuthentication")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let keys = at(os, "/linuxConfiguration/ssh/publicKeys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if no_password && keys.is_empty() {
        return Err(bad(
            "InvalidParameter",
            "Authentication using either SSH or by user name and password must be enabled in \
             Linux profile.",
        ));
    }
    if !no_password && str_at(os, "/adminPassword").is_none() {
        return Err(required("adminPassword"));
    }
    for key in &keys {
        if !key
            .get("keyData")
            .and_then(Value::as_str)
            .is_some_and(valid_ssh_key)
        {
            return Err(invalid_parameter(
                "linuxConfiguration.ssh.publicKeys.keyData",
            ));
        }
    }
    Ok(Some(admin.to_string()))
}

/// An OpenSSH RSA or Ed25519 public key line whose blob names its algorithm.
fn valid_ssh_key(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    let (Some(algo), Some(blob)) = (parts.next(), parts.next()) else {
        return false;
    };
    if algo != "ssh-rsa" && algo != "ssh-ed25519" {
        return false;
    }
    let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(blob) else {
        return false;
    };
    let named = blob
        .get(..4)
        .and_then(|l| l.try_into().ok())
        .map(|l: [u8; 4]| u32::from_be_bytes(l) as usize)
        .and_then(|n| blob.get(4..4 + n));
    named == Some(algo.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_are_checked_segment_by_segment() {
        let subnet = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/n";
        assert!(is_resource_id(
            subnet,
            "Microsoft.Network",
            &["virtualNetworks", "subnets"]
        ));
        assert!(!is_resource_id(
            "not-a-subnet",
            "Microsoft.Network",
            &["virtualNetworks", "subnets"]
        ));
        assert!(!is_resource_id(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v",
            "Microsoft.Network",
            &["virtualNetworks", "subnets"]
        ));
        assert!(is_compute_id(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/x/images/y/versions/1.0.0"
        ));
        assert!(!is_compute_id("/img"));
    }

    #[test]
    fn ssh_keys_must_be_well_formed() {
        let blob = |algo: &[u8]| {
            let mut b = (algo.len() as u32).to_be_bytes().to_vec();
            b.extend_from_slice(algo);
            b.extend_from_slice(&[0, 0, 0, 32]);
            b.extend_from_slice(&[7; 32]);
            base64::engine::general_purpose::STANDARD.encode(b)
        };
        assert!(valid_ssh_key(&format!(
            "ssh-ed25519 {} c",
            blob(b"ssh-ed25519")
        )));
        assert!(!valid_ssh_key(&format!("ssh-ed25519 {}", blob(b"ssh-rsa"))));
        assert!(!valid_ssh_key("ssh-ed25519 not-base64!"));
        assert!(!valid_ssh_key("ecdsa-sha2-nistp256 AAAA"));
    }
}
