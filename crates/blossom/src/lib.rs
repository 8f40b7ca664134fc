//! Blossom (BUD-01/02/06/11) for ConfidentialDVM: a streaming client and a strict in-process
//! server.
//!
//! Only ciphertext flows through this crate: it never sees keys or plaintext. Blobs can be
//! gigabytes, so nothing here holds a whole blob in memory on the client side; the server
//! (a test/dev tool) keeps blobs in memory unless told to discard them.
//!
//! - feature `client` (default): `BlossomClient` uploads a `BodyStream` with a BUD-11
//!   authorization and downloads through `BlobReader`, which checks size and sha256 as it goes.
//! - feature `server`: `server::BlossomServer`, strict about the spec, with fault switches.
#![deny(missing_docs)]

mod auth;
mod error;
mod hash;

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "server")]
pub mod server;

pub use auth::{auth_event, auth_header, decode_auth_header, AuthVerb, AUTH_KIND};
pub use error::{BlossomError, BoxError, FetchError};
pub use hash::is_sha256_hex;
pub use url::Url;

#[cfg(feature = "client")]
pub use client::{
    blob_url, body_from_reader, BlobDescriptor, BlobReader, BlossomClient, BodyStream,
    DownloadSink, Expected, Progress, TransportPolicy, UploadAuth,
};

/// Largest JSON or error body either side reads: descriptors and error messages are tiny, and a
/// misbehaving peer must not make us buffer more.
pub const MAX_SMALL_BODY: usize = 64 * 1024;
