//! Where everything goes: the `azure` section checked against Azure's naming rules (before any
//! call), and the URLs and ids derived from it.

use azure_core::http::Url;
use cdvm_provider_azure::auth::{is_loopback_emulator, may_carry_token};

use super::gallery::GALLERY_API_VERSION;
use super::http::AzureError;
use crate::config::AzurePublish;
use crate::error::PublishError;
use crate::ImageToPublish;

/// Resource Manager's public endpoint.
pub const ARM_ENDPOINT: &str = "https://management.azure.com";

/// The checked section and everything derived from it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Region of the definition and version.
    pub location: String,
    /// The definition's name.
    pub definition: String,
    /// The version's name (`1.A.B`, from the disk's SHA-256: [`version_name`]).
    pub version: String,
    /// `{ARM}/subscriptions/…/galleries/G/images/D?api-version=…`.
    pub definition_url: Url,
    /// The same for the version.
    pub version_url: Url,
    /// The definition's resource id.
    pub definition_id: String,
    /// The version's resource id (what providers name).
    pub version_id: String,
    /// The storage account's resource id.
    pub storage_account_id: String,
    /// The page blob: `https://ACCOUNT.blob.core.windows.net/CONTAINER/NAME.vhd`, or with an
    /// `endpoint`, `{endpoint}/blob/ACCOUNT/CONTAINER/NAME.vhd` (path style, the mock cloud).
    pub blob_url: Url,
    /// Plain http to a loopback address: the mock cloud (fixed token, short waits).
    pub emulator: bool,
    arm: Url,
}

fn config(message: String) -> PublishError {
    PublishError::Config(format!("azure: {message}"))
}

fn check(what: &str, value: &str, ok: bool, rule: &str) -> Result<(), PublishError> {
    if ok {
        Ok(())
    } else {
        Err(config(format!("{what} {value:?} is not valid: {rule}")))
    }
}

fn alnum_or(value: &str, extra: &[char]) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// The image version's name from the disk's SHA-256 (hex): `1.A.B`, A and B the first two
/// big-endian 32-bit words of the hash with the top bit cleared (Azure wants each part an int32).
/// The same disk always gets the same version; a different disk, another one (2^62 names).
pub fn version_name(disk_sha256: &str) -> Result<String, PublishError> {
    let bytes = hex::decode(disk_sha256)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            config(format!(
                "the disk SHA-256 {disk_sha256:?} is not 64 hex digits"
            ))
        })?;
    let word = |i: usize| {
        u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) & 0x7fff_ffff
    };
    Ok(format!("1.{}.{}", word(0), word(4)))
}

impl Target {
    /// Checks `section` and `image` and derives the URLs. Nothing is sent.
    pub fn new(section: &AzurePublish, image: &ImageToPublish) -> Result<Self, PublishError> {
        let s = section;
        check(
            "subscription_id",
            &s.subscription_id,
            !s.subscription_id.is_empty() && alnum_or(&s.subscription_id, &['-']),
            "a subscription GUID",
        )?;
        check(
            "resource_group",
            &s.resource_group,
            (1..=90).contains(&s.resource_group.len())
                && alnum_or(&s.resource_group, &['-', '_', '.', '(', ')'])
                && !s.resource_group.ends_with('.'),
            "1-90 letters, digits, - _ . ( ), not ending in a period",
        )?;
        check(
            "location",
            &s.location,
            !s.location.is_empty() && alnum_or(&s.location, &[]),
            "a region name such as westeurope",
        )?;
        check(
            "storage_account",
            &s.storage_account,
            (3..=24).contains(&s.storage_account.len())
                && s.storage_account
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "3-24 lowercase letters and digits",
        )?;
        let c = &s.container;
        check(
            "container",
            c,
            (3..=63).contains(&c.len())
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
                && !c.starts_with('-')
                && !c.ends_with('-')
                && !c.contains("--"),
            "3-63 lowercase letters, digits and single hyphens, starting and ending with a \
             letter or digit",
        )?;
        check(
            "gallery",
            &s.gallery,
            (1..=80).contains(&s.gallery.len())
                && alnum_or(&s.gallery, &['_', '.'])
                && !s.gallery.starts_with('.')
                && !s.gallery.ends_with('.'),
            "1-80 letters, digits, underscores and periods, not starting or ending with a period",
        )?;
        let d = &s.image_definition;
        check(
            "image_definition",
            d,
            (1..=80).contains(&d.len())
                && alnum_or(d, &['-', '_', '.'])
                && d.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && d.ends_with(|ch: char| ch.is_ascii_alphanumeric()),
            "1-80 letters, digits, - _ ., starting and ending with a letter or digit",
        )?;
        check(
            "image name",
            &image.name,
            (1..=1000).contains(&image.name.len()) && alnum_or(&image.name, &['-', '_', '.']),
            "letters, digits, - _ . (it names the blob)",
        )?;
        let version = version_name(&image.disk_sha256)?;
        let (arm, blob_url, emulator) = match &s.endpoint {
            None => {
                let arm = parse(ARM_ENDPOINT)?;
                let blob = parse(&format!(
                    "https://{}.blob.core.windows.net/",
                    s.storage_account
                ))?;
                (
                    arm,
                    with_segments(&blob, &[&s.container, &blob_name(image)]),
                    false,
                )
            }
            Some(endpoint) => {
                let arm = parse(endpoint)?;
                if !may_carry_token(&arm) {
                    return Err(config(format!(
                        "endpoint {endpoint} must be https, or plain http to a loopback address"
                    )));
                }
                let blob = with_segments(
                    &arm,
                    &["blob", &s.storage_account, &s.container, &blob_name(image)],
                );
                (arm, blob, is_loopback_emulator(endpoint))
            }
        };
        let group = [
            "subscriptions",
            s.subscription_id.as_str(),
            "resourceGroups",
            s.resource_group.as_str(),
        ];
        let definition_path: Vec<&str> = group
            .iter()
            .copied()
            .chain([
                "providers",
                "Microsoft.Compute",
                "galleries",
                &s.gallery,
                "images",
                d,
            ])
            .collect();
        let version_path: Vec<&str> = definition_path
            .iter()
            .copied()
            .chain(["versions", version.as_str()])
            .collect();
        let storage_path: Vec<&str> = group
            .iter()
            .copied()
            .chain([
                "providers",
                "Microsoft.Storage",
                "storageAccounts",
                &s.storage_account,
            ])
            .collect();
        let id = |segments: &[&str]| format!("/{}", segments.join("/"));
        let api = |segments: &[&str]| {
            let mut url = with_segments(&arm, segments);
            url.query_pairs_mut()
                .append_pair("api-version", GALLERY_API_VERSION);
            url
        };
        Ok(Self {
            location: s.location.clone(),
            definition: d.clone(),
            definition_url: api(&definition_path),
            version_url: api(&version_path),
            definition_id: id(&definition_path),
            version_id: id(&version_path),
            storage_account_id: id(&storage_path),
            version,
            blob_url,
            emulator,
            arm,
        })
    }

    /// A link ARM handed out (operation status), if it is under the ARM endpoint: the bearer
    /// token goes nowhere else.
    pub fn follow(&self, link: &str) -> Result<Url, AzureError> {
        let foreign = || AzureError::ForeignUrl { url: link.into() };
        let url = Url::parse(link).map_err(|_| foreign())?;
        if url.origin() == self.arm.origin() {
            Ok(url)
        } else {
            Err(foreign())
        }
    }
}

fn blob_name(image: &ImageToPublish) -> String {
    format!("{}.vhd", image.name)
}

fn parse(url: &str) -> Result<Url, PublishError> {
    Url::parse(url).map_err(|e| config(format!("endpoint {url:?}: {e}")))
}

/// `base/segment/…`, each segment escaped.
fn with_segments(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_are_three_int32_parts_from_the_hash() {
        let v = version_name(&format!("ffffffff00000001{}", "0".repeat(48))).expect("name");
        assert_eq!(v, "1.2147483647.1");
        assert!(version_name("abc").is_err());
    }
}
