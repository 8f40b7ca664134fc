//! Our client against our strict server, including every refusal and fault.
#![cfg(all(feature = "client", feature = "server"))]

mod common;

use base64::Engine as _;
use cdvm_blossom::server::{BlossomServer, ServerConfig};
use cdvm_blossom::{
    auth_event, auth_header, blob_url, AuthVerb, BlossomError, Expected, FetchError,
    TransportPolicy, UploadAuth, Url,
};
use common::*;
use nostr::{EventBuilder, JsonUtil as _, Keys, Kind, Tag, TagKind, Timestamp};
use reqwest::StatusCode;

fn cfg() -> ServerConfig {
    ServerConfig {
        max_blob: 1 << 20,
        require_auth: true,
        public_url: None,
        discard_bodies: false,
    }
}

fn expected(bytes: &[u8]) -> Expected {
    Expected {
        x: sha(bytes),
        size: bytes.len() as u64,
        max: 1 << 30,
    }
}

fn in_an_hour() -> Timestamp {
    Timestamp::from_secs(Timestamp::now().as_secs() + 3600)
}

/// Downloads through `open`/`next_chunk`, returning the bytes or the first error.
async fn download(url: &Url, exp: &Expected) -> Result<Vec<u8>, BlossomError> {
    let mut reader = dev_client().open(url, exp).await?;
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await? {
        out.extend_from_slice(&chunk);
    }
    assert_eq!(reader.received(), out.len() as u64);
    Ok(out)
}

/// A raw `PUT /upload` so tests can send tokens our client never would.
async fn raw_put(
    server: &Url,
    data: &[u8],
    x_header: Option<&str>,
    authorization: Option<String>,
) -> (StatusCode, Option<String>) {
    let mut req = reqwest::Client::new()
        .put(server.join("upload").expect("url"))
        .body(data.to_vec());
    if let Some(x) = x_header {
        req = req.header("X-SHA-256", x);
    }
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.expect("send");
    let reason = resp
        .headers()
        .get("x-reason")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (resp.status(), reason)
}

fn token(keys: &Keys, x: &str) -> String {
    auth_header(&auth_event(keys, AuthVerb::Upload, x, in_an_hour(), "Upload blob").expect("sign"))
}

#[tokio::test]
async fn upload_201_then_200_download_and_only_ciphertext_stored() {
    let server = BlossomServer::start(cfg()).await.expect("start");
    let keys = Keys::generate();
    let client = dev_client();

    // Raw requests show the status codes the client folds together.
    let a = blob(5000, 1);
    let xa = sha(&a);
    let (s, _) = raw_put(&server.url(), &a, Some(&xa), Some(token(&keys, &xa))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = raw_put(&server.url(), &a, Some(&xa), Some(token(&keys, &xa))).await;
    assert_eq!(s, StatusCode::OK);

    let b = blob(300_000, 2);
    let xb = sha(&b);
    let (seen, progress) = recorder();
    let d = client
        .upload(
            &server.url(),
            &keys,
            &xb,
            b.len() as u64,
            "application/octet-stream",
            body(&b),
            &progress,
        )
        .await
        .expect("upload");
    assert_eq!((d.sha256.as_str(), d.size), (xb.as_str(), b.len() as u64));
    assert_eq!(d.url, format!("{}{xb}.bin", server.url()));
    assert_eq!(d.content_type.as_deref(), Some("application/octet-stream"));
    let last = *seen
        .lock()
        .expect("lock")
        .last()
        .expect("a progress report");
    assert_eq!((last.done, last.total), (b.len() as u64, b.len() as u64));
    // Re-upload (200) through the client is fine too.
    client
        .upload(
            &server.url(),
            &keys,
            &xb,
            b.len() as u64,
            "application/octet-stream",
            body(&b),
            &quiet,
        )
        .await
        .expect("re-upload");

    assert_eq!(
        download(&blob_url(&server.url(), &xb), &expected(&b))
            .await
            .expect("get"),
        b
    );
    // With an extension too.
    let with_ext = Url::parse(&format!("{}{xb}.bin", server.url())).expect("url");
    assert_eq!(
        download(&with_ext, &expected(&b)).await.expect("get .bin"),
        b
    );

    // HEAD answers the size without a body.
    let head = reqwest::Client::new()
        .head(blob_url(&server.url(), &xb))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        b.len().to_string().as_str()
    );
    assert_eq!(head.headers()["accept-ranges"], "bytes");

    // The server holds exactly the bytes uploaded, nothing else.
    let mut want = vec![(xa, a), (xb, b)];
    want.sort();
    assert_eq!(server.stored(), want);
    let c = server.counters();
    assert_eq!((c.uploads, c.downloads), (4, 2));

    // Missing blob: 404 with a reason.
    let missing = "0".repeat(64);
    match download(
        &blob_url(&server.url(), &missing),
        &Expected {
            x: missing.clone(),
            size: 1,
            max: 1,
        },
    )
    .await
    {
        Err(BlossomError::Status {
            status: 404,
            reason: Some(r),
            ..
        }) => assert!(r.contains("not found"), "{r}"),
        other => panic!("expected 404, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn range_requests() {
    let server = BlossomServer::start(cfg()).await.expect("start");
    let data = blob(1000, 3);
    let x = sha(&data);
    dev_client()
        .upload(
            &server.url(),
            &Keys::generate(),
            &x,
            1000,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await
        .expect("upload");
    let http = reqwest::Client::new();
    let url = blob_url(&server.url(), &x);
    for (range, start, end) in [
        ("bytes=10-19", 10usize, 19usize),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=900-5000", 900, 999),
    ] {
        let r = http
            .get(url.clone())
            .header("Range", range)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {start}-{end}/1000").as_str()
        );
        assert_eq!(
            r.bytes().await.expect("body").as_ref(),
            &data[start..=end],
            "{range}"
        );
    }
    let r = http
        .get(url.clone())
        .header("Range", "bytes=1000-")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */1000");
    let r = http.get(url).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    // Malformed names are refused, not guessed at.
    let r = http
        .get(server.url().join(&x.to_uppercase()).expect("url"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    server.shutdown().await;
}

#[tokio::test]
async fn tampered_downloads_each_fail_with_their_error() {
    let server = BlossomServer::start(cfg()).await.expect("start");
    let data = blob(200_000, 4);
    let x = sha(&data);
    dev_client()
        .upload(
            &server.url(),
            &Keys::generate(),
            &x,
            data.len() as u64,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await
        .expect("upload");
    let url = blob_url(&server.url(), &x);
    let exp = expected(&data);

    server.faults().set_serve_wrong_bytes(true);
    match download(&url, &exp).await {
        Err(BlossomError::HashMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, x);
            assert_ne!(actual, x);
        }
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    server.faults().set_serve_wrong_bytes(false);

    server.faults().set_truncate_at(Some(150_000));
    match download(&url, &exp).await {
        Err(BlossomError::Truncated {
            received: 150_000,
            expected: 200_000,
            ..
        }) => {}
        other => panic!("expected Truncated, got {other:?}"),
    }
    server.faults().set_truncate_at(None);

    // Oversize: refused from Content-Length, before any body byte is read.
    let small = Expected {
        size: 1000,
        ..exp.clone()
    };
    match dev_client().open(&url, &small).await {
        Err(BlossomError::TooLarge {
            size: 200_000,
            max: 1000,
            ..
        }) => {}
        other => panic!("expected TooLarge from open, got {other:?}"),
    }
    let capped = Expected {
        max: 1000,
        ..exp.clone()
    };
    assert!(matches!(
        dev_client().open(&url, &capped).await,
        Err(BlossomError::TooLarge { .. })
    ));
    let bigger = Expected {
        size: 300_000,
        ..exp.clone()
    };
    assert!(matches!(
        dev_client().open(&url, &bigger).await,
        Err(BlossomError::SizeMismatch {
            announced: 200_000,
            ..
        })
    ));
    // Truncated without Content-Length and smaller expectation: the stream itself refuses.
    server.faults().set_truncate_at(Some(199_999));
    let tiny = Expected {
        size: 10,
        ..exp.clone()
    };
    assert!(matches!(
        download(&url, &tiny).await,
        Err(BlossomError::TooLarge { max: 10, .. })
    ));
    server.faults().set_truncate_at(None);

    server.faults().set_down(true);
    assert!(matches!(
        download(&url, &exp).await,
        Err(BlossomError::Status { status: 503, .. })
    ));
    server.faults().set_down(false);
    assert_eq!(download(&url, &exp).await.expect("healthy again"), data);

    // A server that is gone is unreachable.
    let gone = server.url();
    server.shutdown().await;
    match download(&blob_url(&gone, &x), &exp).await {
        Err(e @ BlossomError::Unreachable { .. }) => {
            assert!(e.to_string().contains("cannot reach"))
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn upload_authorization_is_strict() {
    let server = BlossomServer::start(cfg()).await.expect("start");
    let keys = Keys::generate();
    let data = blob(4000, 5);
    let x = sha(&data);
    let url = server.url();
    let expect_401 = |(s, r): (StatusCode, Option<String>), needle: &str| {
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{needle}: {r:?}");
        let r = r.expect("X-Reason");
        assert!(r.contains(needle), "{r:?} should mention {needle:?}");
    };

    // No token.
    expect_401(
        raw_put(&url, &data, Some(&x), None).await,
        "missing Authorization",
    );
    match dev_client()
        .upload_with(
            &url,
            UploadAuth::Anonymous,
            &x,
            4000,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await
    {
        Err(BlossomError::Status {
            status: 401,
            reason: Some(r),
            ..
        }) => assert!(r.contains("missing")),
        other => panic!("expected 401, got {other:?}"),
    }
    // Expired.
    let past = Timestamp::from_secs(Timestamp::now().as_secs() - 10);
    let expired = auth_event(&keys, AuthVerb::Upload, &x, past, "Upload blob").expect("sign");
    expect_401(
        raw_put(&url, &data, Some(&x), Some(auth_header(&expired))).await,
        "expired",
    );
    // Foreign x: caught from X-SHA-256 before the body, and from the body's hash without it.
    let other = sha(b"another blob");
    expect_401(
        raw_put(&url, &data, Some(&x), Some(token(&keys, &other))).await,
        "no x tag",
    );
    expect_401(
        raw_put(&url, &data, None, Some(token(&keys, &other))).await,
        "no x tag",
    );
    // Wrong signature (one hex digit of sig flipped).
    let good = auth_event(&keys, AuthVerb::Upload, &x, in_an_hour(), "Upload blob").expect("sign");
    let mut json: serde_json::Value = serde_json::from_str(&good.as_json()).expect("json");
    let sig = json["sig"].as_str().expect("sig").to_owned();
    let flipped = format!(
        "{}{}",
        &sig[..127],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    json["sig"] = flipped.into();
    let forged = format!(
        "Nostr {}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    );
    expect_401(
        raw_put(&url, &data, Some(&x), Some(forged)).await,
        "signature",
    );
    // Wrong verb, wrong kind, dated in the future, not Nostr, not base64.
    let get = auth_event(&keys, AuthVerb::Get, &x, in_an_hour(), "Get blob").expect("sign");
    expect_401(
        raw_put(&url, &data, Some(&x), Some(auth_header(&get))).await,
        "t tag",
    );
    let tags = [
        Tag::custom(TagKind::custom("t"), ["upload"]),
        Tag::custom(TagKind::custom("x"), [x.as_str()]),
        Tag::expiration(in_an_hour()),
    ];
    let kind1 = EventBuilder::new(Kind::TextNote, "x")
        .tags(tags.clone())
        .sign_with_keys(&keys)
        .expect("sign");
    expect_401(
        raw_put(&url, &data, Some(&x), Some(auth_header(&kind1))).await,
        "kind",
    );
    let future = EventBuilder::new(Kind::Custom(24242), "x")
        .tags(tags.clone())
        .custom_created_at(Timestamp::from_secs(Timestamp::now().as_secs() + 600))
        .sign_with_keys(&keys)
        .expect("sign");
    expect_401(
        raw_put(&url, &data, Some(&x), Some(auth_header(&future))).await,
        "future",
    );
    let scoped = EventBuilder::new(Kind::Custom(24242), "x")
        .tags(tags.clone())
        .tag(Tag::custom(TagKind::custom("server"), ["cdn.example.com"]))
        .sign_with_keys(&keys)
        .expect("sign");
    expect_401(
        raw_put(&url, &data, Some(&x), Some(auth_header(&scoped))).await,
        "other servers",
    );
    expect_401(
        raw_put(&url, &data, Some(&x), Some("Bearer abc".to_owned())).await,
        "scheme",
    );
    expect_401(
        raw_put(&url, &data, Some(&x), Some("Nostr !!!".to_owned())).await,
        "base64",
    );
    assert!(server.stored().is_empty(), "nothing refused may be stored");

    // Standard base64 with padding (older BUD-01 wording) is accepted as well as base64url.
    let padded = format!(
        "Nostr {}",
        base64::engine::general_purpose::STANDARD.encode(good.as_json())
    );
    assert_eq!(
        raw_put(&url, &data, Some(&x), Some(padded)).await.0,
        StatusCode::CREATED
    );
    // A token scoped to this server's host is fine.
    let here = EventBuilder::new(Kind::Custom(24242), "x")
        .tags(tags)
        .tag(Tag::custom(TagKind::custom("server"), ["127.0.0.1"]))
        .sign_with_keys(&keys)
        .expect("sign");
    assert_eq!(
        raw_put(&url, &data, Some(&x), Some(auth_header(&here)))
            .await
            .0,
        StatusCode::OK
    );
    server.shutdown().await;
}

#[tokio::test]
async fn upload_body_checks() {
    let server = BlossomServer::start(ServerConfig {
        max_blob: 10_000,
        ..cfg()
    })
    .await
    .expect("start");
    let keys = Keys::generate();
    let url = server.url();

    // X-SHA-256 differing from the body: 409 (the token covers both hashes, so auth passes).
    let data = blob(100, 6);
    let real = sha(&data);
    let claimed = sha(b"claimed");
    let ev = EventBuilder::new(Kind::Custom(24242), "Upload blob")
        .tags([
            Tag::custom(TagKind::custom("t"), ["upload"]),
            Tag::custom(TagKind::custom("x"), [claimed.as_str()]),
            Tag::custom(TagKind::custom("x"), [real.as_str()]),
            Tag::expiration(in_an_hour()),
        ])
        .sign_with_keys(&keys)
        .expect("sign");
    let (s, r) = raw_put(&url, &data, Some(&claimed), Some(auth_header(&ev))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{r:?}");
    // The client declaring a hash its body does not have gets the same answer, as a Status.
    match dev_client()
        .upload(
            &url,
            &keys,
            &claimed,
            100,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await
    {
        Err(BlossomError::Status { status: 409, .. }) => {}
        other => panic!("expected 409, got {other:?}"),
    }

    // Larger than max_blob: 413 from Content-Length, before the body.
    let big = blob(20_000, 7);
    let xb = sha(&big);
    match dev_client()
        .upload(
            &url,
            &keys,
            &xb,
            20_000,
            "application/octet-stream",
            body(&big),
            &quiet,
        )
        .await
    {
        Err(e @ BlossomError::Status { status: 413, .. }) => {
            assert!(e.to_string().contains("too large"), "{e}")
        }
        other => panic!("expected 413, got {other:?}"),
    }
    // A body longer or shorter than declared is stopped by the client itself.
    match dev_client()
        .upload(
            &url,
            &keys,
            &real,
            99,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await
    {
        Err(BlossomError::Body { .. }) | Err(BlossomError::Status { status: 400, .. }) => {}
        other => panic!("expected a body error, got {other:?}"),
    }
    match dev_client()
        .upload(
            &url,
            &keys,
            &real,
            101,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await
    {
        Err(BlossomError::Body { .. }) | Err(BlossomError::Status { status: 400, .. }) => {}
        other => panic!("expected a body error, got {other:?}"),
    }
    assert!(server.stored().is_empty());

    // BUD-06 preflight.
    let http = reqwest::Client::new();
    let pre = |len: u64| {
        http.head(url.join("upload").expect("url"))
            .header("X-SHA-256", real.as_str())
            .header("X-Content-Length", len)
            .header("Authorization", token(&keys, &real))
            .send()
    };
    assert_eq!(pre(100).await.expect("head").status(), StatusCode::OK);
    assert_eq!(
        pre(20_000).await.expect("head").status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    server.shutdown().await;
}

#[tokio::test]
async fn insecure_urls_are_refused() {
    let x = sha(b"x");
    let exp = Expected {
        x: x.clone(),
        size: 1,
        max: 1,
    };
    let strict = cdvm_blossom::BlossomClient::new(TransportPolicy::default()).expect("client");
    let loopback = Url::parse("http://127.0.0.1:9/").expect("url");
    assert!(matches!(
        strict.open(&blob_url(&loopback, &x), &exp).await,
        Err(BlossomError::InsecureUrl { .. })
    ));
    let keys = Keys::generate();
    for bad in [
        "http://10.0.0.1/",
        "http://example.com/",
        "ftp://127.0.0.1/",
    ] {
        let u = Url::parse(bad).expect("url");
        assert!(
            matches!(
                dev_client().open(&blob_url(&u, &x), &exp).await,
                Err(BlossomError::InsecureUrl { .. })
            ),
            "{bad}"
        );
        let up = dev_client()
            .upload(
                &u,
                &keys,
                &x,
                1,
                "application/octet-stream",
                body(b"x"),
                &quiet,
            )
            .await;
        assert!(matches!(up, Err(BlossomError::InsecureUrl { .. })), "{bad}");
    }
    assert!(matches!(
        strict
            .upload(&loopback, &keys, &x, 1, "a/b", body(b"x"), &quiet)
            .await,
        Err(BlossomError::InsecureUrl { .. })
    ));
}

#[tokio::test]
async fn redirects_must_stay_secure_and_keep_the_hash() {
    use axum::response::Redirect;
    let data = blob(1000, 8);
    let x = sha(&data);
    let good = BlossomServer::start(cfg()).await.expect("start");
    dev_client()
        .upload(
            &good.url(),
            &Keys::generate(),
            &x,
            1000,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await
        .expect("upload");
    let target_ok = blob_url(&good.url(), &x).to_string();
    let target_other = blob_url(&good.url(), &"1".repeat(64)).to_string();
    let app = axum::Router::new()
        .route(
            "/ok/{x}",
            axum::routing::get(move || async move { Redirect::temporary(&target_ok) }),
        )
        .route(
            "/other/{x}",
            axum::routing::get(move || async move { Redirect::temporary(&target_other) }),
        )
        .route(
            "/insecure/{x}",
            axum::routing::get(|| async { Redirect::temporary("http://192.0.2.1/x") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let exp = expected(&data);
    let u = |p: &str| Url::parse(&format!("{base}/{p}/{x}")).expect("url");
    assert_eq!(
        download(&u("ok"), &exp).await.expect("same-hash redirect"),
        data
    );
    assert!(matches!(
        download(&u("other"), &exp).await,
        Err(BlossomError::Unreachable { .. })
    ));
    assert!(matches!(
        download(&u("insecure"), &exp).await,
        Err(BlossomError::Unreachable { .. })
    ));
    task.abort();
    good.shutdown().await;
}

#[tokio::test]
async fn descriptor_for_another_blob_is_refused() {
    let liar = axum::Router::new().route(
        "/upload",
        axum::routing::put(|body: axum::body::Bytes| async move {
            let _ = body;
            (
                axum::http::StatusCode::CREATED,
                format!(
                    r#"{{"url":"http://x/{0}","sha256":"{0}","size":3,"type":"a/b","uploaded":1}}"#,
                    "e".repeat(64)
                ),
            )
        }),
    );
    let junk = axum::Router::new().route("/upload", axum::routing::put(|| async { "not json" }));
    let data = blob(3, 9);
    let x = sha(&data);
    for (app, want_mismatch) in [(liar, true), (junk, false)] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url =
            Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
        let task = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        let r = dev_client()
            .upload(
                &url,
                &Keys::generate(),
                &x,
                3,
                "application/octet-stream",
                body(&data),
                &quiet,
            )
            .await;
        match r {
            Err(BlossomError::DescriptorMismatch { got_sha256, .. }) if want_mismatch => {
                assert_eq!(got_sha256, "e".repeat(64))
            }
            Err(BlossomError::BadDescriptor { .. }) if !want_mismatch => {}
            other => panic!("unexpected {other:?}"),
        }
        task.abort();
    }
}

#[tokio::test]
async fn fetch_first_falls_back_and_resets_the_sink() {
    let data = blob(250_000, 10);
    let x = sha(&data);
    let keys = Keys::generate();
    let mut servers = Vec::new();
    for _ in 0..4 {
        let s = BlossomServer::start(cfg()).await.expect("start");
        dev_client()
            .upload(
                &s.url(),
                &keys,
                &x,
                data.len() as u64,
                "application/octet-stream",
                body(&data),
                &quiet,
            )
            .await
            .expect("upload");
        servers.push(s);
    }
    servers[0].faults().set_serve_wrong_bytes(true); // writes everything, then fails the hash
    servers[1].faults().set_truncate_at(Some(1000));
    servers[2].faults().set_down(true);
    let gone = servers.remove(3);
    let gone_url = gone.url();
    gone.shutdown().await;
    let good = BlossomServer::start(cfg()).await.expect("start");
    dev_client()
        .upload(
            &good.url(),
            &keys,
            &x,
            data.len() as u64,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await
        .expect("upload");

    let mut urls: Vec<Url> = servers.iter().map(|s| blob_url(&s.url(), &x)).collect();
    urls.push(blob_url(&gone_url, &x));
    let exp = expected(&data);

    // Every server bad: one line per attempt.
    let mut sink = VecSink::default();
    let err = dev_client()
        .fetch_first(&urls, &exp, &mut sink, &quiet)
        .await
        .expect_err("all bad");
    let FetchError::AllFailed(attempts) = &err else {
        panic!("{err}")
    };
    assert_eq!(attempts.len(), 4);
    assert!(matches!(attempts[0].1, BlossomError::HashMismatch { .. }));
    assert!(matches!(attempts[1].1, BlossomError::Truncated { .. }));
    assert!(matches!(
        attempts[2].1,
        BlossomError::Status { status: 503, .. }
    ));
    assert!(matches!(attempts[3].1, BlossomError::Unreachable { .. }));
    let text = err.to_string();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(sink.data.is_empty());

    // Then a good one: the sink ends with exactly the blob, after a reset per failure.
    urls.push(blob_url(&good.url(), &x));
    let mut sink = VecSink::default();
    let (seen, progress) = recorder();
    let used = dev_client()
        .fetch_first(&urls, &exp, &mut sink, &progress)
        .await
        .expect("fallback");
    assert_eq!(used, blob_url(&good.url(), &x));
    assert_eq!(sink.resets, 4);
    assert!(sink.data == data, "sink holds exactly the blob");
    let last = *seen.lock().expect("lock").last().expect("progress");
    assert_eq!(last.done, data.len() as u64);

    // The sink's own failure also moves on to the next server.
    let mut sink = VecSink {
        fail_after: Some(100_000),
        ..VecSink::default()
    };
    let two = [blob_url(&good.url(), &x), blob_url(&good.url(), &x)];
    dev_client()
        .fetch_first(&two, &exp, &mut sink, &quiet)
        .await
        .expect("second try");
    assert_eq!(sink.resets, 1);
    assert!(sink.data == data);

    assert!(matches!(
        dev_client().fetch_first(&[], &exp, &mut VecSink::default(), &quiet).await,
        Err(FetchError::AllFailed(v)) if v.is_empty()
    ));
    for s in servers {
        s.shutdown().await;
    }
    good.shutdown().await;
}

#[tokio::test]
async fn stalled_upload_times_out() {
    // A server that takes the request but never reads the body.
    let app = axum::Router::new().route(
        "/upload",
        axum::routing::put(|_body: axum::body::Body| async {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url =
        Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    let task = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let client = cdvm_blossom::BlossomClient::new(TransportPolicy {
        allow_insecure_loopback: true,
        idle_timeout: std::time::Duration::from_secs(1),
        ..TransportPolicy::default()
    })
    .expect("client");
    let data = blob(32 * 1024 * 1024, 11);
    let x = sha(&data);
    let started = std::time::Instant::now();
    let r = client
        .upload(
            &url,
            &Keys::generate(),
            &x,
            data.len() as u64,
            "application/octet-stream",
            body(&data),
            &quiet,
        )
        .await;
    match r {
        Err(BlossomError::UploadInterrupted { sent, size, .. }) => assert!(sent < size),
        other => panic!("expected UploadInterrupted, got {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    task.abort();
}
