//! Interop with an independent implementation: blossom-rs 0.6 (open mode, memory backend),
//! served in-process.
//!
//! Deviations from the BUDs observed here, and how our client copes:
//! - new uploads get 200, not 201: the client accepts both;
//! - `Range` is ignored (200 with the whole blob): the client never relies on ranges;
//! - its auth is not BUD-11: it requires `expiration` at most 120 s after `created_at`
//!   (refused as "auth event has expired" otherwise), `created_at` within the last 60 s,
//!   `server` (a full URL, where BUD-11 wants a bare domain), `u` and `method` tags, and it
//!   checks any token that is sent even in open mode, so our BUD-11 token gets 401. The
//!   client uploads to it with `UploadAuth::Anonymous`, which its open mode accepts;
//! - no `HEAD /upload` (BUD-06): 405, which the client's preflight tolerates;
//! - it refuses a bad upload without reading the body and drops the connection, so for a
//!   large body the 401 is lost (the client reports `UploadInterrupted`).
#![cfg(feature = "client")]

mod common;

use blossom_rs::{BlobServer, MemoryBackend};
use cdvm_blossom::{blob_url, BlossomError, Expected, UploadAuth, Url};
use common::*;
use nostr::Keys;

async fn start_blossom_rs() -> (Url, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url =
        Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    let server = BlobServer::new(MemoryBackend::new(), url.as_str().trim_end_matches('/'));
    let router = server.router();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    (url, task)
}

#[tokio::test]
async fn upload_to_and_download_from_blossom_rs() {
    let (url, task) = start_blossom_rs().await;
    let client = dev_client();
    let data = blob(10 * 1024 * 1024, 42);
    let x = sha(&data);
    let size = data.len() as u64;

    // Observed deviation: a standard BUD-11 token is refused even in open mode. (A small blob,
    // so the 401 arrives before the server drops the connection; with 10 MB the refusal is
    // lost in a cut connection, which the client reports as UploadInterrupted.)
    let small = blob(1000, 41);
    let xs = sha(&small);
    match client
        .upload(
            &url,
            &Keys::generate(),
            &xs,
            1000,
            "application/octet-stream",
            body(&small),
            &quiet,
        )
        .await
    {
        Err(BlossomError::Status {
            status: 401,
            reason: Some(reason),
            ..
        }) => {
            // Our 30-minute token trips its 120 s window first.
            assert_eq!(reason, "auth event has expired");
        }
        other => panic!("blossom-rs behaviour changed (BUD-11 token): {other:?}"),
    }
    match client
        .upload(
            &url,
            &Keys::generate(),
            &x,
            size,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await
    {
        Err(
            e @ (BlossomError::Status { status: 401, .. } | BlossomError::UploadInterrupted { .. }),
        ) => {
            eprintln!("10 MB with a BUD-11 token: {e}");
        }
        other => panic!("blossom-rs behaviour changed (BUD-11 token, 10 MB): {other:?}"),
    }

    let (seen, progress) = recorder();
    let d = client
        .upload_with(
            &url,
            UploadAuth::Anonymous,
            &x,
            size,
            "application/octet-stream",
            body(&data),
            &progress,
        )
        .await
        .expect("anonymous upload to blossom-rs");
    assert_eq!((d.sha256.as_str(), d.size), (x.as_str(), size));
    assert_eq!(
        seen.lock().expect("lock").last().expect("progress").done,
        size
    );

    // Observed deviation: 200 (not 201) for a new blob.
    let other = blob(1000, 43);
    let status = reqwest::Client::new()
        .put(url.join("upload").expect("url"))
        .body(other)
        .send()
        .await
        .expect("put")
        .status();
    assert_eq!(
        status.as_u16(),
        200,
        "blossom-rs now answers {status} for a new blob"
    );

    // Observed deviation: Range is ignored.
    let ranged = reqwest::Client::new()
        .get(blob_url(&url, &x))
        .header("Range", "bytes=0-9")
        .send()
        .await
        .expect("get");
    assert_eq!(
        ranged.status().as_u16(),
        200,
        "blossom-rs now honours Range"
    );
    assert_eq!(ranged.content_length(), Some(size));
    drop(ranged);

    // Download, hash checked, through the fallback path.
    let exp = Expected {
        x: x.clone(),
        size,
        max: size,
    };
    let mut sink = VecSink::default();
    let used = client
        .fetch_first(&[blob_url(&url, &x)], &exp, &mut sink, &quiet)
        .await
        .expect("download from blossom-rs");
    assert_eq!(used, blob_url(&url, &x));
    assert!(sink.data == data, "bytes from blossom-rs match");
    assert_eq!(sink.resets, 0);

    // And its GET of a blob it lacks is a Status error.
    let missing = "0".repeat(64);
    let r = client
        .open(
            &blob_url(&url, &missing),
            &Expected {
                x: missing.clone(),
                size: 1,
                max: 1,
            },
        )
        .await;
    assert!(
        matches!(r, Err(BlossomError::Status { status: 404, .. })),
        "{r:?}"
    );
    task.abort();
}

/// A server that refuses the token and the anonymous upload alike: the error keeps both
/// reasons, so the operator sees why each way failed (not just the first).
#[tokio::test]
async fn a_server_refusing_token_and_anonymous_upload_gets_both_reasons() {
    use axum::http::{HeaderMap, StatusCode};
    async fn refuse(headers: HeaderMap) -> (StatusCode, [(&'static str, &'static str); 1]) {
        let reason = if headers.contains_key("authorization") {
            "token not accepted here"
        } else {
            "anonymous uploads are closed"
        };
        (StatusCode::UNAUTHORIZED, [("x-reason", reason)])
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url =
        Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    let router = axum::Router::new().route("/upload", axum::routing::put(refuse).head(refuse));
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    let data = blob(1000, 7);
    let x = sha(&data);
    let result = dev_client()
        .upload_auto(
            &url,
            &Keys::generate(),
            &x,
            1000,
            "application/octet-stream",
            &|| body(&data),
            &quiet,
        )
        .await;
    match result {
        Err(e @ BlossomError::TokenAndAnonymousFailed { .. }) => {
            let text = e.to_string();
            assert!(text.contains("token not accepted here"), "{text}");
            assert!(text.contains("anonymous uploads are closed"), "{text}");
        }
        other => panic!("expected both refusals, got {other:?}"),
    }
    task.abort();
}
