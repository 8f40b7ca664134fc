//! The page-blob upload of `disk.vhd` (Blob service REST API: Put Blob, Put Page, Get Blob
//! Properties, Delete Blob). Page blobs are sparse: ranges that are all zeros are not sent.

use azure_core::http::{Method, Url};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::http::{AzureError, Call, Client};
use crate::Progress;

/// The token scope of the blob service.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Blob service version sent as `x-ms-version` (bearer tokens need 2017-11-09 or later).
pub const STORAGE_VERSION: &str = "2023-11-03";
/// The most one Put Page may carry.
pub const MAX_PAGE_WRITE: usize = 4 << 20;
/// Page blobs are written in 512-byte pages.
pub const PAGE: u64 = 512;

fn call<'a>(name: &'a str, method: Method, url: &'a Url) -> Call<'a> {
    Call {
        name,
        method,
        url,
        scope: STORAGE_SCOPE,
        headers: vec![("x-ms-version", STORAGE_VERSION.into())],
        body: None,
    }
}

/// What the upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    /// Bytes of the blob (the VHD's size).
    pub size: u64,
    /// Bytes actually sent (non-zero ranges).
    pub sent: u64,
}

/// Creates the page blob at `url` (`size` bytes, a multiple of 512).
pub async fn create(client: &Client, url: &Url, size: u64) -> Result<(), AzureError> {
    let mut c = call("blobs.put", Method::Put, url);
    c.headers.push(("x-ms-blob-type", "PageBlob".into()));
    c.headers
        .push(("x-ms-blob-content-length", size.to_string()));
    c.headers
        .push(("x-ms-blob-content-type", "application/octet-stream".into()));
    client.send(&c).await.map(drop)
}

/// Writes the VHD at `path` into the blob at `url`, skipping all-zero ranges, and returns the
/// SHA-256 of everything but the footer (the raw disk's hash, checked by the caller).
pub async fn write_pages(
    client: &Client,
    url: &Url,
    path: &std::path::Path,
    size: u64,
    progress: Progress<'_>,
) -> Result<(Uploaded, [u8; 32]), AzureError> {
    let read_error = |source| AzureError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(read_error)?;
    let mut page_url = url.clone();
    page_url.query_pairs_mut().append_pair("comp", "page");
    let disk_len = size
        .checked_sub(PAGE)
        .ok_or_else(|| AzureError::Check(format!("{} is too small to be a VHD", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; MAX_PAGE_WRITE];
    let mut offset: u64 = 0;
    let mut sent: u64 = 0;
    let mut reported = 0;
    while offset < size {
        let left = size - offset;
        let len = usize::try_from(left.min(MAX_PAGE_WRITE as u64))
            .map_err(|_| AzureError::Check("chunk size overflow".into()))?;
        let chunk = &mut buf[..len];
        file.read_exact(chunk).await.map_err(read_error)?;
        // The raw disk's hash: everything before the footer.
        let disk_part = disk_len.saturating_sub(offset).min(len as u64) as usize;
        hasher.update(&chunk[..disk_part]);
        // Nonzero runs, in whole pages, each sent as one Put Page.
        let mut page = 0;
        while page < len {
            let is_zero = |p: usize| chunk[p..p + PAGE as usize].iter().all(|b| *b == 0);
            if is_zero(page) {
                page += PAGE as usize;
                continue;
            }
            let start = page;
            while page < len && !is_zero(page) {
                page += PAGE as usize;
            }
            let first = offset
                .checked_add(start as u64)
                .ok_or_else(|| AzureError::Check("offset overflow".into()))?;
            let last = offset
                .checked_add(page as u64)
                .and_then(|end| end.checked_sub(1))
                .ok_or_else(|| AzureError::Check("offset overflow".into()))?;
            let mut c = call("blobs.putPage", Method::Put, &page_url);
            c.headers.push(("x-ms-page-write", "update".into()));
            c.headers
                .push(("x-ms-range", format!("bytes={first}-{last}")));
            c.body = Some(&chunk[start..page]);
            client.send(&c).await?;
            sent = sent.saturating_add((page - start) as u64);
        }
        offset = offset.saturating_add(len as u64);
        // A line per 10 % (and the last), not per request.
        let tenth = offset.saturating_mul(10) / size.max(1);
        if tenth > reported || offset == size {
            reported = tenth;
            progress(&format!(
                "uploaded {} of {} MiB ({} MiB of data, zeros skipped)",
                offset >> 20,
                size >> 20,
                sent >> 20
            ));
        }
    }
    let digest: [u8; 32] = hasher.finalize().into();
    Ok((Uploaded { size, sent }, digest))
}

/// The blob's length, as Get Blob Properties reports it.
pub async fn length(client: &Client, url: &Url) -> Result<u64, AzureError> {
    let reply = client
        .send(&call("blobs.getProperties", Method::Head, url))
        .await?;
    reply
        .header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| AzureError::Check("Get Blob Properties gave no Content-Length".into()))
}

/// Deletes the blob; one that is not there is fine.
pub async fn delete(client: &Client, url: &Url) -> Result<(), AzureError> {
    match client
        .send(&call("blobs.delete", Method::Delete, url))
        .await
    {
        Err(e) if e.status() == Some(404) => Ok(()),
        other => other.map(drop),
    }
}
