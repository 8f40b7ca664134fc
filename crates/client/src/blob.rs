//! Large inputs and results through Blossom (docs/protocol.md §5.8), from the user's side.
//!
//! An input too large for one event (or a folder) is encrypted under a fresh key, once, into an
//! unlinked temporary file while its hash is computed (the upload's authorization names the
//! ciphertext's hash, so it must be known before the upload starts); the ciphertext is then
//! streamed from that file to each server. Only the reference, key included, goes into the
//! gift-wrapped input, after the attestation verified. The Blossom server sees ciphertext only;
//! so does the disk. Nothing holds the whole plaintext or ciphertext in memory.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cdvm_blob::{BlobKey, EncryptReader, NoncePrefix};
use cdvm_blossom::{BlossomClient, Expected, TransportPolicy, Url};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::BlobRef;
use sha2::Digest;

use crate::ClientError;

/// Media type of a folder input (a deterministic tar, [`cdvm_blob::tarball`]).
pub const TAR: &str = "application/x-tar";

/// A transfer's progress, for display.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// What is moving: `encrypting`, `uploading to <server>`, `downloading from <server>`.
    pub what: String,
    /// Bytes done.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
    /// Seconds since this step started.
    pub secs: f64,
}

impl Transfer {
    /// Bytes per second so far.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.done as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// A shared progress callback for transfers.
#[derive(Clone)]
pub struct TransferProgress(pub std::sync::Arc<dyn Fn(&Transfer) + Send + Sync>);

impl std::fmt::Debug for TransferProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransferProgress")
    }
}

/// Where the input's bytes come from: a file, or a folder packed as tar on the fly.
#[derive(Debug, Clone)]
pub enum Source {
    /// One file.
    File(PathBuf),
    /// A folder, sent as a deterministic tar archive.
    Folder(PathBuf),
}

impl Source {
    /// The path as given, file or folder.
    pub fn from_path(path: &Path) -> Result<Self, ClientError> {
        let meta = std::fs::metadata(path).map_err(|source| ClientError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(if meta.is_dir() {
            Source::Folder(path.to_owned())
        } else {
            Source::File(path.to_owned())
        })
    }

    /// A fresh reader over the plaintext (called once per pass).
    fn open(&self) -> Result<Box<dyn Read + Send>, ClientError> {
        match self {
            Source::File(path) => std::fs::File::open(path)
                .map(|f| Box::new(std::io::BufReader::new(f)) as Box<dyn Read + Send>)
                .map_err(|source| ClientError::Io {
                    path: path.display().to_string(),
                    source,
                }),
            Source::Folder(dir) => {
                // Pack on a thread into a pipe: the archive is never held whole.
                let (reader, mut writer) = std::io::pipe().map_err(|source| ClientError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
                let dir = dir.clone();
                std::thread::spawn(move || {
                    if let Err(e) = cdvm_blob::tarball::pack_dir(&dir, &mut writer) {
                        tracing::debug!(error = %e, "packing stopped");
                    }
                });
                Ok(Box::new(reader))
            }
        }
    }

    /// Checks a folder packs (links or special files are refused) before anything is published.
    fn precheck(&self) -> Result<(), ClientError> {
        if let Source::Folder(dir) = self {
            cdvm_blob::tarball::pack_dir(dir, std::io::sink())
                .map_err(|e| ClientError::Usage(format!("--input {}: {e}", dir.display())))?;
        }
        Ok(())
    }
}

/// The transport: https, or plain http on loopback for local development (`--blossom
/// http://127.0.0.1:…`), which is the user's own choice for their own machine.
pub fn client() -> Result<BlossomClient, ClientError> {
    BlossomClient::new(TransportPolicy {
        allow_insecure_loopback: true,
        ..TransportPolicy::default()
    })
    .map_err(|e| ClientError::Blossom(e.to_string()))
}

/// Parses server URLs given by the user, the announcement or a kind-10063 list.
pub fn parse_servers(servers: &[String]) -> Result<Vec<Url>, ClientError> {
    servers
        .iter()
        .map(|s| {
            Url::parse(s).map_err(|e| ClientError::Usage(format!("Blossom server `{s}`: {e}")))
        })
        .collect()
}

/// Encrypts `source` under a fresh key and uploads it to every server in `servers` (each that
/// takes it becomes a URL of the reference, the first the primary). At least one must succeed.
/// `max_plaintext` is the DVM's cap: a larger input is refused before any upload.
pub async fn upload_input(
    blossom: &BlossomClient,
    source: &Source,
    file_type: &str,
    servers: &[Url],
    keys: &Keys,
    max_plaintext: u64,
    progress: &(dyn Fn(&Transfer) + Sync),
) -> Result<BlobRef, ClientError> {
    if servers.is_empty() {
        return Err(ClientError::Usage(
            "no Blossom server to upload the input to: give --blossom URL".into(),
        ));
    }
    source.precheck()?;
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    // Encrypt once, hashing, into an unlinked spool file (ciphertext only), on a blocking thread.
    let spool = tempfile::tempfile().map_err(|source| ClientError::Io {
        path: std::env::temp_dir().display().to_string(),
        source,
    })?;
    let (x, ox, size, plaintext, spool) = {
        let reader = source.open()?;
        let (key, nonce) = (key.clone(), nonce);
        let cap = max_plaintext;
        tokio::task::spawn_blocking(move || {
            let mut spool = spool;
            hash_pass(reader, &key, &nonce, cap, &mut spool)
                .map(|(x, ox, size, plain)| (x, ox, size, plain, spool))
        })
        .await
        .map_err(|e| ClientError::Blossom(format!("encrypting the input: {e}")))??
    };
    let spool = std::sync::Arc::new(spool);
    progress(&Transfer {
        what: "encrypted".into(),
        done: plaintext,
        total: plaintext,
        secs: 0.0,
    });
    // Pass 2: the upload, once per server.
    let mut urls = Vec::new();
    let mut failures = Vec::new();
    for server in servers {
        let body = || -> cdvm_blossom::BodyStream {
            cdvm_blossom::body_from_reader(SpoolReader {
                file: std::sync::Arc::clone(&spool),
                pos: 0,
            })
        };
        let what = format!("uploading to {server}");
        let report = |p: cdvm_blossom::Progress| {
            progress(&Transfer {
                what: what.clone(),
                done: p.done,
                total: p.total,
                secs: p.elapsed.as_secs_f64(),
            })
        };
        match blossom
            .upload_auto(
                server,
                keys,
                &x,
                size,
                "application/octet-stream",
                &body,
                &report,
            )
            .await
        {
            Ok(descriptor) => urls.push(descriptor.url),
            Err(e) => failures.push(format!("{server}: {e}")),
        }
    }
    if urls.is_empty() {
        return Err(ClientError::Blossom(format!(
            "no Blossom server took the encrypted input: {}",
            failures.join("; ")
        )));
    }
    for f in &failures {
        tracing::warn!(failure = %f, "a Blossom server refused the input; the others have it");
    }
    BlobRef::uploaded(
        urls,
        x,
        ox,
        size,
        file_type,
        key.to_hex().to_string(),
        nonce.to_hex(),
    )
    .map_err(ClientError::Protocol)
}

/// Reads the spool from the start, by position (each upload attempt has its own).
struct SpoolReader {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

/// Encrypts `reader` into `spool`, returning (x, ox, ciphertext size, plaintext size); refuses
/// a plaintext over `cap` as soon as it passes it.
fn hash_pass(
    reader: Box<dyn Read + Send>,
    key: &BlobKey,
    nonce: &NoncePrefix,
    cap: u64,
    spool: &mut std::fs::File,
) -> Result<(String, String, u64, u64), ClientError> {
    use std::io::Write;
    let spool_err = |source| ClientError::Io {
        path: "temporary ciphertext file".into(),
        source,
    };
    let mut enc = EncryptReader::new(key, nonce, reader);
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = enc
            .read(&mut buf)
            .map_err(|e| ClientError::Blossom(format!("reading the input: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        spool.write_all(&buf[..n]).map_err(spool_err)?;
        size = size.saturating_add(n as u64);
        if enc.plaintext_len() > cap {
            return Err(ClientError::InputOverCap {
                size: enc.plaintext_len(),
                max: cap,
            });
        }
    }
    let ox = enc
        .plaintext_sha256()
        .ok_or_else(|| ClientError::Blossom("the input ended before its last chunk".into()))?;
    spool.flush().map_err(spool_err)?;
    Ok((
        hex::encode(hasher.finalize()),
        hex::encode(ox),
        size,
        enc.plaintext_len(),
    ))
}

/// Downloads a result blob, decrypting into `dest` (written beside it first, renamed only
/// after every chunk authenticated and the plaintext hashed to `ox`). Tries each URL in turn.
pub async fn fetch_result(
    blossom: &BlossomClient,
    blob: &BlobRef,
    dest: &Path,
    progress: &(dyn Fn(&Transfer) + Sync),
) -> Result<u64, ClientError> {
    blob.check().map_err(ClientError::BadResult)?;
    let key = cdvm_blob::BlobKey::from_hex(&blob.decryption_key)
        .map_err(|e| ClientError::Blossom(e.to_string()))?;
    let nonce = cdvm_blob::NoncePrefix::from_hex(&blob.decryption_nonce)
        .map_err(|e| ClientError::Blossom(e.to_string()))?;
    let urls = blob
        .urls()
        .map(Url::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Blossom(format!("result URL: {e}")))?;
    let partial = dest.with_extension("partial");
    let io = |source| ClientError::Io {
        path: partial.display().to_string(),
        source,
    };
    let file = std::fs::File::create(&partial).map_err(io)?;
    let mut sink = DecryptSink {
        file,
        decryptor: cdvm_blob::Decryptor::new(&key, &nonce),
        key,
        nonce,
        written: 0,
    };
    let expected = Expected {
        x: blob.x.clone(),
        size: blob.size,
        max: blob.size,
    };
    let started = Instant::now();
    let report = |p: cdvm_blossom::Progress| {
        progress(&Transfer {
            what: "downloading the result".into(),
            done: p.done,
            total: p.total,
            secs: started.elapsed().as_secs_f64(),
        })
    };
    let fetched = blossom
        .fetch_first(&urls, &expected, &mut sink, &report)
        .await;
    if let Err(e) = fetched {
        let _ = std::fs::remove_file(&partial);
        return Err(ClientError::Blossom(format!("the result blob: {e}")));
    }
    let summary = match sink.finish() {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(ClientError::Blossom(format!("the result blob: {e}")));
        }
    };
    let actual = hex::encode(summary.plaintext_sha256);
    if actual != blob.ox {
        let _ = std::fs::remove_file(&partial);
        return Err(ClientError::Blossom(format!(
            "the result decrypts to data hashing to {actual}, the guest said {}",
            blob.ox
        )));
    }
    std::fs::rename(&partial, dest).map_err(|source| ClientError::Io {
        path: dest.display().to_string(),
        source,
    })?;
    Ok(summary.plaintext_len)
}

/// Decrypts into a file as bytes arrive; `reset` starts over for the next server.
struct DecryptSink {
    file: std::fs::File,
    key: BlobKey,
    nonce: NoncePrefix,
    decryptor: cdvm_blob::Decryptor,
    written: u64,
}

impl DecryptSink {
    fn finish(mut self) -> Result<cdvm_blob::Summary, Box<dyn std::error::Error + Send + Sync>> {
        use std::io::Write;
        let mut out = Vec::new();
        let decryptor = std::mem::replace(
            &mut self.decryptor,
            cdvm_blob::Decryptor::new(&self.key, &self.nonce),
        );
        let summary = decryptor.finish(&mut out)?;
        for chunk in out {
            self.file.write_all(&chunk)?;
        }
        self.file.sync_all()?;
        Ok(summary)
    }
}

impl cdvm_blossom::DownloadSink for DecryptSink {
    fn reset(&mut self) -> std::io::Result<()> {
        use std::io::Seek;
        self.file.set_len(0)?;
        self.file.seek(std::io::SeekFrom::Start(0))?;
        self.decryptor = cdvm_blob::Decryptor::new(&self.key, &self.nonce);
        self.written = 0;
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use std::io::Write;
        let mut out = Vec::new();
        self.decryptor.update(chunk, &mut out)?;
        for plain in out {
            self.file.write_all(&plain)?;
            self.written = self.written.saturating_add(plain.len() as u64);
        }
        Ok(())
    }
}
