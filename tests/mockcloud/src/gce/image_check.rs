//! What Compute Engine checks in an `images.insert` body, and in the archive it names.

use std::io::Read;

use serde_json::Value;

use super::errors::GceError;
use super::validate::{is_name, label_ok, str_at};

/// Guest OS feature types GCE knows (`GuestOsFeature.type`).
const FEATURES: &[&str] = &[
    "BARE_METAL_LINUX_COMPATIBLE",
    "CCA_CAPABLE",
    "GVNIC",
    "IDPF",
    "MULTI_IP_SUBNET",
    "SECURE_BOOT",
    "SEV_CAPABLE",
    "SEV_LIVE_MIGRATABLE",
    "SEV_LIVE_MIGRATABLE_V2",
    "SEV_SNP_CAPABLE",
    "SNP_SVSM_CAPABLE",
    "SUSPEND_RESUME_COMPATIBLE",
    "TDX_CAPABLE",
    "UEFI_COMPATIBLE",
    "VIRTIO_SCSI_MULTIQUEUE",
    "WINDOWS",
];

/// Where `rawDisk.source` points: Cloud Storage's public URL form, which the mock resolves
/// against its own Cloud Storage.
const STORAGE_URL: &str = "https://storage.googleapis.com/";

/// An accepted `images.insert` request.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) name: String,
    pub(crate) bucket: String,
    pub(crate) object: String,
}

/// Checks `body` the way GCE does before creating anything.
pub(crate) fn insert(body: &Value) -> Result<Accepted, GceError> {
    let name = str_at(body, &["name"]).ok_or_else(|| GceError::required("resource.name"))?;
    if !is_name(name) {
        return Err(GceError::invalid_field(
            "resource.name",
            name,
            "Must be a match of regex '[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?'",
        ));
    }
    if let Some(family) = str_at(body, &["family"]).filter(|f| !is_name(f)) {
        return Err(GceError::invalid_field(
            "resource.family",
            family,
            "Must be a match of regex '[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?'",
        ));
    }
    if let Some(labels) = body.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let value = v.as_str().unwrap_or_default();
            if !label_ok(k, true) || !label_ok(value, false) {
                return Err(GceError::invalid_field(
                    &format!("labels.{k}"),
                    value,
                    "Label keys and values: lowercase letters, digits, _ and -, at most 63 \
                     characters; keys start with a letter.",
                ));
            }
        }
    }
    for (i, f) in body
        .get("guestOsFeatures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let t = f.get("type").and_then(Value::as_str).unwrap_or_default();
        if !FEATURES.contains(&t) {
            return Err(GceError::invalid_field(
                &format!("resource.guestOsFeatures[{i}].type"),
                t,
                "Unknown guest OS feature.",
            ));
        }
    }
    if let Some(a) = str_at(body, &["architecture"]).filter(|a| !["X86_64", "ARM64"].contains(a)) {
        return Err(GceError::invalid_field(
            "resource.architecture",
            a,
            "Must be X86_64 or ARM64.",
        ));
    }
    if let Some(c) = str_at(body, &["rawDisk", "containerType"]).filter(|c| *c != "TAR") {
        return Err(GceError::invalid_field(
            "resource.rawDisk.containerType",
            c,
            "Must be TAR.",
        ));
    }
    let source = str_at(body, &["rawDisk", "source"])
        .ok_or_else(|| GceError::required("resource.rawDisk.source"))?;
    let (bucket, object) = source
        .strip_prefix(STORAGE_URL)
        .and_then(|rest| rest.split_once('/'))
        .filter(|(b, o)| !b.is_empty() && !o.is_empty())
        .ok_or_else(|| {
            GceError::invalid_field(
                "resource.rawDisk.source",
                source,
                "Must be a Cloud Storage URL: https://storage.googleapis.com/BUCKET/OBJECT.",
            )
        })?;
    Ok(Accepted {
        name: name.into(),
        bucket: bucket.into(),
        object: object.into(),
    })
}

/// Checks that `archive` is a gzip'd tar whose first member is a regular file `disk.raw`, as
/// GCE requires; returns that file's size.
pub(crate) fn disk_tar(archive: &[u8]) -> Result<u64, String> {
    let mut header = [0u8; 512];
    flate2::read::GzDecoder::new(archive)
        .read_exact(&mut header)
        .map_err(|e| format!("not a gzip-compressed tar archive ({e})"))?;
    let stored = octal(&header[148..156]).ok_or("not a tar archive: no header checksum")?;
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    if sum != stored {
        return Err("not a tar archive: bad header checksum".into());
    }
    let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
    let name = String::from_utf8_lossy(&header[..name_end]);
    if name != "disk.raw" {
        return Err(format!(
            "the archive's first member is {name:?}; it must be \"disk.raw\""
        ));
    }
    if !matches!(header[156], b'0' | 0) {
        return Err("disk.raw is not a regular file".into());
    }
    octal(&header[124..136]).ok_or_else(|| "disk.raw has no readable size".into())
}

fn octal(field: &[u8]) -> Option<u64> {
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| char::from(*b))
        .collect();
    u64::from_str_radix(text.trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;

    use super::*;

    fn tar_gz(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar ");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&h).unwrap();
        gz.write_all(data).unwrap();
        gz.write_all(&[0u8; 1024]).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn the_archive_must_hold_disk_raw_first() {
        assert_eq!(disk_tar(&tar_gz("disk.raw", &[1; 600])), Ok(600));
        let wrong = disk_tar(&tar_gz("disk.img", &[1; 600])).unwrap_err();
        assert!(wrong.contains("\"disk.img\""), "{wrong}");
        let plain = disk_tar(b"disk.raw, but not compressed").unwrap_err();
        assert!(plain.contains("gzip"), "{plain}");
        // A gzip of 512 zero bytes: a tar end-of-archive block, no header.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[0u8; 512]).unwrap();
        assert!(disk_tar(&gz.finish().unwrap()).is_err());
    }

    #[test]
    fn bodies_are_checked_like_gce() {
        let ok = serde_json::json!({
            "name": "cdvm-guest-1",
            "rawDisk": {"source": "https://storage.googleapis.com/b/o.tar.gz", "containerType": "TAR"},
            "guestOsFeatures": [{"type": "UEFI_COMPATIBLE"}, {"type": "SEV_SNP_CAPABLE"}],
            "architecture": "X86_64",
            "labels": {"cdvm-disk-sha256-prefix": "ab"},
        });
        let a = insert(&ok).unwrap();
        assert_eq!((a.bucket.as_str(), a.object.as_str()), ("b", "o.tar.gz"));
        let mut bad = ok.clone();
        bad["guestOsFeatures"][1]["type"] = "SEV_SNPP".into();
        assert!(insert(&bad).is_err());
        let mut bad = ok.clone();
        bad["rawDisk"]["source"] = "gs://b/o.tar.gz".into();
        assert!(insert(&bad).is_err());
        let mut bad = ok.clone();
        bad["name"] = "Guest".into();
        assert!(insert(&bad).is_err());
        let mut bad = ok;
        bad["labels"]["k"] = "UPPER".into();
        assert!(insert(&bad).is_err());
    }
}
