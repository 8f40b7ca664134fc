//! Cloud Storage through its JSON API: the resumable upload of `disk.tar.gz` (chunks of whole
//! 256 KiB multiples, resumed from what the server says it holds after a failed chunk), an
//! object's metadata, and its deletion.

use std::path::Path;

use base64::Engine;
use cdvm_provider_api::retry::{Retry, RetryPolicy};
use google_cloud_auth::credentials::{CacheableResource, Credentials};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::{classify, CallError};
use crate::Progress;

/// Chunks must be multiples of this (all but the last), as Cloud Storage requires.
const QUANTUM: u64 = 256 * 1024;
/// One chunk: 4 MiB, so a progress line comes every 4 MiB.
const CHUNK: u64 = 16 * QUANTUM;
/// Google's Cloud Storage endpoint.
pub const GOOGLE: &str = "https://storage.googleapis.com";

/// What Cloud Storage says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its size in bytes.
    pub size: u64,
    /// Its CRC32C, base64 of the big-endian value, as Cloud Storage writes it.
    pub crc32c: Option<String>,
}

/// A Cloud Storage client for one endpoint.
#[derive(Debug)]
pub struct Storage {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    retry: RetryPolicy,
}

/// Where a resumable upload stands after a request.
enum Chunk {
    /// The server holds this many bytes.
    Persisted(u64),
    /// The object is complete.
    Done(ObjectInfo),
}

impl Storage {
    /// A client for `base` (no trailing `/`).
    pub fn new(
        base: &str,
        credentials: Credentials,
        retry: RetryPolicy,
    ) -> Result<Self, reqwest::Error> {
        // 308 is Cloud Storage's "Resume Incomplete", not a redirect to follow.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            credentials,
            retry,
        })
    }

    /// The `Authorization` header of the credential chain (none when anonymous).
    async fn auth(&self, call: &'static str) -> Result<http::HeaderMap, CallError> {
        match self.credentials.headers(http::Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => Ok(data),
            // Only answered to a caller that sent an entity tag; this one never does.
            Ok(CacheableResource::NotModified) => Ok(http::HeaderMap::new()),
            Err(source) => Err(CallError::Credentials { call, source }),
        }
    }

    /// Starts a resumable upload of `size` bytes to `bucket`/`object`; returns the session URL.
    /// Cloud Storage checks `crc32c` when the last chunk arrives and refuses a mismatch.
    pub async fn start_upload(
        &self,
        bucket: &str,
        object: &str,
        size: u64,
        crc32c: &str,
        disk_sha256: &str,
    ) -> Result<String, CallError> {
        const CALL: &str = "objects.insert";
        let url = format!("{}/upload/storage/v1/b/{bucket}/o", self.base);
        let body = json!({
            "name": object,
            "contentType": "application/gzip",
            "crc32c": crc32c,
            "metadata": { "cdvm-disk-sha256": disk_sha256 },
        });
        let (url, body) = (&url, &body);
        // Each try opens a new session; an abandoned one holds no object and expires by itself.
        let response = self
            .retry
            .run(
                CALL,
                move || async move {
                    let request = self
                        .http
                        .post(url)
                        .query(&[("uploadType", "resumable"), ("name", object)])
                        .headers(self.auth(CALL).await?)
                        .header("X-Upload-Content-Type", "application/gzip")
                        .header("X-Upload-Content-Length", size)
                        .json(body);
                    checked(CALL, request.send().await).await
                },
                classify,
            )
            .await?;
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| CallError::Unexpected {
                call: CALL,
                reason: "no Location header (session URL) in the answer".into(),
            })
    }

    /// Sends `file` (`size` bytes) to the upload `session`, chunk by chunk; after a failed
    /// chunk asks the server how much it holds and goes on from there. Each chunk has the
    /// policy's attempts.
    pub async fn upload(
        &self,
        session: &str,
        file: &Path,
        size: u64,
        progress: Progress<'_>,
    ) -> Result<ObjectInfo, CallError> {
        const CALL: &str = "objects.upload";
        let io = |e: std::io::Error| CallError::Unexpected {
            call: CALL,
            reason: format!("reading {}: {e}", file.display()),
        };
        let mut reader = tokio::fs::File::open(file).await.map_err(io)?;
        let mut offset: u64 = 0;
        let mut attempt: u32 = 1;
        let mut resync = false;
        loop {
            let step = async {
                let from = if resync {
                    match self.status(session, size).await? {
                        Chunk::Persisted(n) => n,
                        done @ Chunk::Done(_) => return Ok(done),
                    }
                } else {
                    offset
                };
                self.put(session, &mut reader, from, size).await
            };
            match step.await {
                Ok(Chunk::Done(info)) => {
                    progress(&format!("uploaded {} of {}", mib(size), mib(size)));
                    return Ok(info);
                }
                Ok(Chunk::Persisted(n)) => {
                    if n > size {
                        return Err(CallError::Unexpected {
                            call: CALL,
                            reason: format!("the server holds {n} bytes of {size}"),
                        });
                    }
                    offset = n;
                    attempt = 1;
                    resync = false;
                    progress(&format!("uploaded {} of {}", mib(n), mib(size)));
                }
                Err(e) => {
                    let decision = classify(&e);
                    if decision == Retry::No || attempt >= self.retry.attempts.max(1) {
                        return Err(e);
                    }
                    let server_minimum = match decision {
                        Retry::After(d) => Some(d),
                        _ => None,
                    };
                    let wait = self.retry.wait(attempt, server_minimum);
                    tracing::warn!(call = CALL, attempt, offset, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt = attempt.saturating_add(1);
                    resync = true;
                }
            }
        }
    }

    /// Sends the chunk starting at `from`.
    async fn put(
        &self,
        session: &str,
        reader: &mut tokio::fs::File,
        from: u64,
        size: u64,
    ) -> Result<Chunk, CallError> {
        const CALL: &str = "objects.upload";
        let unexpected = |reason: String| CallError::Unexpected { call: CALL, reason };
        let left = size
            .checked_sub(from)
            .filter(|l| *l > 0)
            .ok_or_else(|| unexpected(format!("chunk offset {from} beyond the file's {size}")))?;
        let len = left.min(CHUNK);
        let last = from
            .checked_add(len - 1)
            .ok_or_else(|| unexpected("chunk end overflows".into()))?;
        let mut buf = vec![0u8; usize::try_from(len).map_err(|e| unexpected(e.to_string()))?];
        let io = |e: std::io::Error| unexpected(format!("reading the file: {e}"));
        reader
            .seek(std::io::SeekFrom::Start(from))
            .await
            .map_err(io)?;
        reader.read_exact(&mut buf).await.map_err(io)?;
        // The session URL is the upload's credential: no token goes to it.
        let request = self
            .http
            .put(session)
            .header(
                reqwest::header::CONTENT_RANGE,
                format!("bytes {from}-{last}/{size}"),
            )
            .body(buf);
        chunk_answer(CALL, checked(CALL, request.send().await).await?).await
    }

    /// Asks the upload session how many bytes it holds.
    async fn status(&self, session: &str, size: u64) -> Result<Chunk, CallError> {
        const CALL: &str = "objects.upload (status)";
        let request = self
            .http
            .put(session)
            .header(reqwest::header::CONTENT_RANGE, format!("bytes */{size}"))
            .body(Vec::new());
        chunk_answer(CALL, checked(CALL, request.send().await).await?).await
    }

    /// `objects.get` (metadata); `None` when there is no such object.
    pub async fn get(&self, bucket: &str, object: &str) -> Result<Option<ObjectInfo>, CallError> {
        const CALL: &str = "objects.get";
        let url = &format!("{}/storage/v1/b/{bucket}/o/{object}", self.base);
        let got = self
            .retry
            .run(
                CALL,
                move || async move {
                    let request = self.http.get(url).headers(self.auth(CALL).await?);
                    checked(CALL, request.send().await).await
                },
                classify,
            )
            .await;
        match got {
            Ok(response) => Ok(Some(object_info(CALL, response).await?)),
            Err(e) if e.http_status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `objects.delete`; an object already gone counts as deleted.
    pub async fn delete(&self, bucket: &str, object: &str) -> Result<(), CallError> {
        const CALL: &str = "objects.delete";
        let url = &format!("{}/storage/v1/b/{bucket}/o/{object}", self.base);
        let deleted = self
            .retry
            .run(
                CALL,
                move || async move {
                    let request = self.http.delete(url).headers(self.auth(CALL).await?);
                    checked(CALL, request.send().await).await
                },
                classify,
            )
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The response if it is a success or a 308, else the error with the body's message.
async fn checked(
    call: &'static str,
    sent: Result<Response, reqwest::Error>,
) -> Result<Response, CallError> {
    let response = sent.map_err(|source| CallError::Transport { call, source })?;
    let status = response.status();
    if status.is_success() || status == StatusCode::PERMANENT_REDIRECT {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect());
    Err(CallError::Http {
        call,
        status: status.as_u16(),
        message,
        retry_after,
    })
}

/// A chunk's answer: 308 with `Range: bytes=0-N` (N+1 bytes held; no Range: none), or the
/// finished object.
async fn chunk_answer(call: &'static str, response: Response) -> Result<Chunk, CallError> {
    if response.status() != StatusCode::PERMANENT_REDIRECT {
        return Ok(Chunk::Done(object_info(call, response).await?));
    }
    let Some(range) = response.headers().get(reqwest::header::RANGE) else {
        return Ok(Chunk::Persisted(0));
    };
    range
        .to_str()
        .ok()
        .and_then(|r| r.strip_prefix("bytes=0-"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .and_then(|n| n.checked_add(1))
        .map(Chunk::Persisted)
        .ok_or_else(|| CallError::Unexpected {
            call,
            reason: format!("unreadable Range header {range:?}"),
        })
}

async fn object_info(call: &'static str, response: Response) -> Result<ObjectInfo, CallError> {
    let unexpected = |reason: String| CallError::Unexpected { call, reason };
    let v: Value = response
        .json()
        .await
        .map_err(|e| unexpected(format!("unreadable object: {e}")))?;
    // The JSON API writes sizes as strings (they may exceed 2^53).
    let size = v["size"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| unexpected(format!("object without a size: {v}")))?;
    Ok(ObjectInfo {
        size,
        crc32c: v["crc32c"].as_str().map(str::to_string),
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// CRC32C (Castagnoli) of `file`, as Cloud Storage writes it: base64 of the big-endian value.
pub async fn crc32c_file(file: &Path) -> Result<String, std::io::Error> {
    let mut reader = tokio::fs::File::open(file).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut crc = Crc32c::default();
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        crc.update(buf.get(..n).unwrap_or_default());
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(crc.finish().to_be_bytes()))
}

/// CRC32C, table-driven (no crate in the tree provides the Castagnoli polynomial).
#[derive(Debug)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Self(!0)
    }
}

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

impl Crc32c {
    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 = TABLE[((self.0 ^ u32::from(*b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    /// The checksum.
    pub fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_check_value() {
        // RFC 3720's check value.
        let mut c = Crc32c::default();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xE306_9283);
    }
}
