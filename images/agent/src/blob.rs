//! Blob inputs and results (docs/protocol.md §5.8): the input's data downloaded from Blossom,
//! checked and decrypted as a stream into the executor; a result too large for one event
//! encrypted under a fresh key and uploaded, signed with the guest's one-time key.
//!
//! Plaintext exists only in this process's memory, one chunk at a time on its way to the
//! executor; nothing is written to a disk.

use std::io::Read;
use std::sync::{Arc, Mutex};

use cdvm_blob::{BlobKey, Decryptor, NoncePrefix};
use std::net::Ipv4Addr;

use cdvm_blossom::{BlossomClient, Expected, TransportPolicy, Url};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::{BlobRef, BLOB_ALGORITHM};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::executors::DataSource;

/// Plaintext chunks buffered between the download and the executor: bounds memory to about
/// this many 64 KiB chunks whatever the input size.
const CHANNEL_CHUNKS: usize = 8;

/// Why a blob could not be used. Each names the server and the step.
#[derive(Debug, thiserror::Error)]
pub enum BlobInputError {
    /// The reference itself is unusable (bad hex, unsupported algorithm).
    #[error("the blob reference is unusable: {0}")]
    Reference(String),
    /// The blob is larger than this job kind accepts.
    #[error("the input blob holds {plaintext} bytes; this job kind accepts at most {max}")]
    TooLarge {
        /// Plaintext bytes the blob's size implies.
        plaintext: u64,
        /// The cap.
        max: u64,
    },
    /// Fetching from one server failed (unreachable, status, size, hash).
    #[error("{url}: {source}")]
    Fetch {
        /// The URL tried.
        url: String,
        /// What went wrong.
        #[source]
        source: cdvm_blossom::BlossomError,
    },
    /// The bytes arrived but do not decrypt: altered, truncated, reordered, or the wrong key.
    #[error("{url}: {source}")]
    Decrypt {
        /// The URL the bytes came from.
        url: String,
        /// The decryption failure.
        #[source]
        source: cdvm_blob::BlobError,
    },
    /// All chunks authenticated but the plaintext does not hash to `ox`.
    #[error("{url}: the decrypted input hashes to {actual}, the reference says {expected}")]
    PlaintextHash {
        /// The URL.
        url: String,
        /// `ox` from the reference.
        expected: String,
        /// What the plaintext hashed to.
        actual: String,
    },
    /// The download task ended without saying how.
    #[error("{0}: the download stopped unexpectedly")]
    Stopped(String),
}

/// What the download task hands the executor.
enum Piece {
    Plain(Zeroizing<Vec<u8>>),
    Failed,
    Done,
}

/// The download's failure message, shared with the executor's reader.
#[derive(Clone, Default)]
struct Status(Arc<Mutex<Option<String>>>);

impl Status {
    fn set(&self, e: &BlobInputError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert_with(|| e.to_string());
        }
    }
}

/// The running download. [`Download::verdict`] says, once the executor is done, whether every
/// check passed: the executor's success counts only then.
pub struct Download {
    task: tokio::task::JoinHandle<Result<(), BlobInputError>>,
    url: String,
}

impl Download {
    /// Waits for the download to end (it reads to the end even when the executor stopped
    /// early, so the final chunk, `x` and `ox` are always checked).
    pub async fn verdict(self) -> Result<(), BlobInputError> {
        self.task
            .await
            .unwrap_or_else(|_| Err(BlobInputError::Stopped(self.url)))
    }
}

/// Checks a blob reference against the cap before anything is fetched.
pub fn precheck(blob: &BlobRef, max_plaintext: u64) -> Result<(), BlobInputError> {
    if blob.encryption_algorithm != BLOB_ALGORITHM {
        return Err(BlobInputError::Reference(format!(
            "encryption-algorithm `{}`",
            blob.encryption_algorithm
        )));
    }
    let plaintext = cdvm_blob::plaintext_len(blob.size)
        .map_err(|e| BlobInputError::Reference(format!("size {}: {e}", blob.size)))?;
    if plaintext > max_plaintext {
        return Err(BlobInputError::TooLarge {
            plaintext,
            max: max_plaintext,
        });
    }
    Ok(())
}

/// Starts downloading `blob` from `url` and returns the plaintext as a [`DataSource`] for the
/// executor, plus the [`Download`] whose verdict tells, once the executor is done, whether the
/// blob checked out (and so whether an executor's read error came from the download).
pub fn open(
    transport: &Transport,
    blob: &BlobRef,
    url: &str,
) -> Result<(DataSource<'static>, Download), BlobInputError> {
    let key = BlobKey::from_hex(&blob.decryption_key)
        .map_err(|e| BlobInputError::Reference(e.to_string()))?;
    let nonce = NoncePrefix::from_hex(&blob.decryption_nonce)
        .map_err(|e| BlobInputError::Reference(e.to_string()))?;
    let parsed = transport.url(url).map_err(BlobInputError::Reference)?;
    let expected = Expected {
        x: blob.x.clone(),
        size: blob.size,
        max: blob.size,
    };
    let ox = blob.ox.clone();
    let status = Status::default();
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let task_status = status.clone();
    let client = transport.client.clone();
    let url = url.to_owned();
    let task_url = url.clone();
    let task = tokio::spawn(async move {
        let outcome = pump(
            &client, &parsed, &expected, &key, &nonce, &ox, &task_url, &tx,
        )
        .await;
        match &outcome {
            Ok(()) => {
                let _ = tx.send(Piece::Done).await;
            }
            Err(e) => {
                // The console is the host's to read: the reason (it names the server and the
                // blob) goes only to the user, encrypted; the log says that a download failed.
                tracing::warn!("a blob download failed; the reason goes to the user, encrypted");
                task_status.set(e);
                let _ = tx.send(Piece::Failed).await;
            }
        }
        outcome
    });
    let reader = ChannelReader {
        rx,
        current: Zeroizing::new(Vec::new()),
        pos: 0,
        finished: false,
        status,
        url: url.clone(),
    };
    Ok((
        DataSource {
            file_type: blob.file_type.clone(),
            reader: Box::new(reader),
        },
        Download { task, url },
    ))
}

#[allow(clippy::too_many_arguments)]
async fn pump(
    client: &BlossomClient,
    url: &cdvm_blossom::Url,
    expected: &Expected,
    key: &BlobKey,
    nonce: &NoncePrefix,
    ox: &str,
    url_text: &str,
    tx: &mpsc::Sender<Piece>,
) -> Result<(), BlobInputError> {
    let fetch = |source| BlobInputError::Fetch {
        url: url_text.to_owned(),
        source,
    };
    let mut reader = client.open(url, expected).await.map_err(fetch)?;
    // Decryption runs on its own thread, so the network and the cipher work in parallel.
    let (cipher_tx, cipher_rx) = mpsc::channel::<Cipher>(CHANNEL_CHUNKS);
    let decrypting = {
        let (key, nonce, tx) = (key.clone(), *nonce, tx.clone());
        let (ox, url) = (ox.to_owned(), url_text.to_owned());
        tokio::task::spawn_blocking(move || decrypt_loop(cipher_rx, &key, &nonce, &ox, &url, &tx))
    };
    let fetched = loop {
        match reader.next_chunk().await {
            Ok(Some(bytes)) => {
                if cipher_tx.send(Cipher::Bytes(bytes)).await.is_err() {
                    // The decryption failed; its error is the verdict.
                    break Ok(());
                }
            }
            Ok(None) => {
                let _ = cipher_tx.send(Cipher::End).await;
                break Ok(());
            }
            Err(e) => break Err(fetch(e)),
        }
    };
    drop(cipher_tx);
    let decrypted = decrypting
        .await
        .unwrap_or_else(|_| Err(BlobInputError::Stopped(url_text.to_owned())));
    // A transport failure explains a decryption that stopped short: it is the reason.
    fetched?;
    decrypted
}

/// Ciphertext from the network to the decryption thread.
enum Cipher {
    Bytes(bytes::Bytes),
    /// Every byte arrived and matched `x`.
    End,
}

/// Decrypts what arrives and hands each authenticated chunk to the executor; the final chunk
/// goes only after the end was seen and the whole plaintext hashed to `ox`.
fn decrypt_loop(
    mut rx: mpsc::Receiver<Cipher>,
    key: &BlobKey,
    nonce: &NoncePrefix,
    ox: &str,
    url: &str,
    tx: &mpsc::Sender<Piece>,
) -> Result<(), BlobInputError> {
    let decrypt = |source| BlobInputError::Decrypt {
        url: url.to_owned(),
        source,
    };
    let mut decryptor = Decryptor::new(key, nonce);
    let mut out = Vec::new();
    // Once the executor stops reading (done early, or failed on its own), the rest is still
    // decrypted and checked, only not passed on: its verdict decides whether a success counts.
    let mut listening = true;
    let mut pass_on = |out: &mut Vec<Zeroizing<Vec<u8>>>| {
        for plain in out.drain(..) {
            if listening && tx.blocking_send(Piece::Plain(plain)).is_err() {
                listening = false;
            }
        }
    };
    loop {
        match rx.blocking_recv() {
            Some(Cipher::Bytes(bytes)) => {
                decryptor.update(&bytes, &mut out).map_err(decrypt)?;
                pass_on(&mut out);
            }
            Some(Cipher::End) => break,
            // The download stopped; the caller reports why.
            None => return Err(BlobInputError::Stopped(url.to_owned())),
        }
    }
    let summary = decryptor.finish(&mut out).map_err(decrypt)?;
    let actual = hex::encode(summary.plaintext_sha256);
    if actual != ox {
        return Err(BlobInputError::PlaintextHash {
            url: url.to_owned(),
            expected: ox.to_owned(),
            actual,
        });
    }
    pass_on(&mut out);
    Ok(())
}

/// The executor's end of the channel: a blocking `Read` over the plaintext chunks. It reports
/// end of data only after the download task said every check passed.
struct ChannelReader {
    rx: mpsc::Receiver<Piece>,
    current: Zeroizing<Vec<u8>>,
    pos: usize,
    finished: bool,
    status: Status,
    url: String,
}

impl ChannelReader {
    fn failure(&self) -> std::io::Error {
        let message = match self.status.0.lock() {
            Ok(slot) => slot
                .clone()
                .unwrap_or_else(|| format!("{}: the download stopped unexpectedly", self.url)),
            Err(_) => "the download failed".to_owned(),
        };
        std::io::Error::new(std::io::ErrorKind::InvalidData, message)
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = buf.len().min(self.current.len() - self.pos);
                buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Plain(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Some(Piece::Done) => self.finished = true,
                Some(Piece::Failed) => return Err(self.failure()),
                None => return Err(self.failure()),
            }
        }
    }
}

/// Encrypts `output` under a fresh key and uploads it to each of `servers` (the user's choice,
/// from the input), signing the upload with the guest key. Returns the reference for the result
/// payload; every server that took it is a URL in it.
pub async fn upload_result(
    transport: &Transport,
    guest: &Keys,
    servers: &[String],
    media_type: &str,
    output: Zeroizing<String>,
) -> Result<BlobRef, String> {
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    let output = Arc::new(output);
    // First pass: the ciphertext's hash and size (the upload's auth names the hash).
    let (x, ox, size) = {
        let output = Arc::clone(&output);
        let (key, nonce) = (key.clone(), nonce);
        tokio::task::spawn_blocking(move || -> std::io::Result<(String, String, u64)> {
            use sha2::Digest;
            let mut enc = cdvm_blob::EncryptReader::new(&key, &nonce, output.as_bytes());
            let mut hasher = sha2::Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut size = 0u64;
            loop {
                let n = enc.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            let ox = enc.plaintext_sha256().ok_or_else(|| {
                std::io::Error::other("the encryptor stopped before the end of the output")
            })?;
            Ok((hex::encode(hasher.finalize()), hex::encode(ox), size))
        })
        .await
        .map_err(|e| format!("encrypting the result: {e}"))?
        .map_err(|e| format!("encrypting the result: {e}"))?
    };
    let mut urls = Vec::new();
    let mut failures = Vec::new();
    for server in servers {
        let server_url = match transport.url(server) {
            Ok(u) => u,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let body = || {
            let output = Arc::clone(&output);
            let reader = cdvm_blob::EncryptReader::new(&key, &nonce, OwnedBytes(output, 0));
            cdvm_blossom::body_from_reader(reader)
        };
        match transport
            .client
            .upload_auto(&server_url, guest, &x, size, media_type, &body, &|_| {})
            .await
        {
            Ok(descriptor) => urls.push(descriptor.url),
            Err(e) => failures.push(format!("{server}: {e}")),
        }
    }
    if urls.is_empty() {
        return Err(format!(
            "no Blossom server took the result: {}",
            failures.join("; ")
        ));
    }
    if !failures.is_empty() {
        tracing::warn!(
            failed = failures.len(),
            "some result servers refused the upload"
        );
    }
    BlobRef::uploaded(
        urls,
        x,
        ox,
        size,
        media_type,
        key.to_hex().to_string(),
        nonce.to_hex(),
    )
    .map_err(|e| format!("the result's reference: {e}"))
}

/// A `Read` over shared bytes, for encrypting the same output once per server.
struct OwnedBytes(Arc<Zeroizing<String>>, usize);

impl Read for OwnedBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.0.as_bytes()[self.1..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.1 += n;
        Ok(n)
    }
}

/// The agent's Blossom transport: https only, unless the development flag allows plain http to
/// loopback (the process provider's local Blossom server), optionally reached through an alias
/// address (a QEMU guest reaches the host's loopback at its gateway).
#[derive(Clone, Debug)]
pub struct Transport {
    client: BlossomClient,
    loopback_alias: Option<Ipv4Addr>,
}

impl Transport {
    /// The URL to connect to for `url`: loopback hosts rewritten to the alias, if there is one.
    fn url(&self, url: &str) -> Result<Url, String> {
        let mut parsed = Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if let Some(alias) = self.loopback_alias {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback && parsed.scheme() == "http" {
                parsed
                    .set_ip_host(alias.into())
                    .map_err(|()| format!("cannot rewrite `{url}`"))?;
            }
        }
        Ok(parsed)
    }
}

/// Builds the transport. `loopback_alias` only matters with `allow_insecure_loopback`.
pub fn client(
    allow_insecure_loopback: bool,
    loopback_alias: Option<Ipv4Addr>,
) -> anyhow::Result<Transport> {
    let policy = TransportPolicy {
        allow_insecure_loopback,
        insecure_hosts: loopback_alias
            .filter(|_| allow_insecure_loopback)
            .map(|a| vec![a.into()])
            .unwrap_or_default(),
        ..TransportPolicy::default()
    };
    Ok(Transport {
        client: BlossomClient::new(policy)?,
        loopback_alias: loopback_alias.filter(|_| allow_insecure_loopback),
    })
}
