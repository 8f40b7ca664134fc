//! A minimal HTTP/1.1 client for link-local metadata services: plain HTTP, one request per
//! connection. Metadata services never use TLS, and a full client would grow the guest image.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer accepted: a bootstrap is a few hundred bytes; AWS caps user data at 16 KiB.
const MAX_RESPONSE: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a metadata request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The endpoint is not an `http://host[:port][/path]` URL.
    #[error("metadata endpoint {0:?} is not an http:// URL")]
    BadUrl(String),
    /// Connecting, sending or reading failed (the service may not be up yet).
    #[error("talking to {host}:{port}")]
    Io {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("no answer from {0} within {TIMEOUT:?}")]
    Timeout(String),
    /// The answer is not HTTP/1.x or is too large.
    #[error("malformed answer from the metadata service: {0}")]
    Malformed(&'static str),
}

/// A parsed `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Host (name or address).
    pub host: String,
    /// Port (80 if absent).
    pub port: u16,
    /// Path prefix without a trailing slash (empty for the root).
    pub prefix: String,
}

impl Url {
    /// Parses `http://host[:port][/prefix]`.
    pub fn parse(text: &str) -> Result<Self, HttpError> {
        let bad = || HttpError::BadUrl(text.to_string());
        let rest = text.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, 80),
        };
        if host.is_empty() || host.contains(['@', ' ', '?', '#']) {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

/// An answer: status code and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body bytes (chunked encoding already undone).
    pub body: Vec<u8>,
}

/// Sends one request (`path` is appended to the URL's prefix) and reads the whole answer.
pub async fn request(
    url: &Url,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, HttpError> {
    let target = format!("{}:{}", url.host, url.port);
    let io = |source| HttpError::Io {
        host: url.host.clone(),
        port: url.port,
        source,
    };
    let exchange = async {
        let mut stream = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(io)?;
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n",
            url.prefix, url.host
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut raw)
            .await
            .map_err(io)?;
        Ok(raw)
    };
    let raw = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| HttpError::Timeout(target))??;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<Response, HttpError> {
    if raw.len() > MAX_RESPONSE {
        return Err(HttpError::Malformed("answer too large"));
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(HttpError::Malformed("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split])
        .map_err(|_| HttpError::Malformed("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(HttpError::Malformed("not an HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(HttpError::Malformed("no status code"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = &raw[split + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(HttpError::Malformed("chunk size line"))?;
        let size_text =
            std::str::from_utf8(&body[..eol]).map_err(|_| HttpError::Malformed("chunk size"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| HttpError::Malformed("chunk size"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body
            .get(..size)
            .ok_or(HttpError::Malformed("short chunk"))?;
        out.extend_from_slice(chunk);
        body = body
            .get(size + 2..)
            .ok_or(HttpError::Malformed("short chunk"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("http://169.254.169.254").ok(),
            Some(Url {
                host: "169.254.169.254".into(),
                port: 80,
                prefix: String::new()
            })
        );
        assert_eq!(
            Url::parse("http://127.0.0.1:4000/metadata/aws/i-1/").ok(),
            Some(Url {
                host: "127.0.0.1".into(),
                port: 4000,
                prefix: "/metadata/aws/i-1".into()
            })
        );
        for bad in [
            "https://x",
            "http://",
            "http://h:99999",
            "ftp://h",
            "http://u@h",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").expect("plain");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .expect("chunked");
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc")
                .is_err()
        );
        assert!(parse_response(b"HTTP/1.1 200 OK").is_err());
    }
}
