//! A minimal blocking HTTP/1.1 client for Azure's Instance Metadata Service (IMDS) over std
//! (no TLS: IMDS is plain HTTP on the link-local address; the agent is static). The SNP chain
//! from THIM and the TDX quote from `/acc/tdquote` are checked by the verifier, not trusted here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// IMDS's address on every Azure VM.
pub const AZURE_IMDS: &str = "169.254.169.254:80";
/// THIM: the VCEK and its ASK/ARK chain for this VM's chip and TCB.
pub const THIM_AMD_CERTIFICATION: &str = "/metadata/THIM/amd/certification";
/// The TDX quoting endpoint: POST a TD report, get a quote.
pub const ACC_TDQUOTE: &str = "/acc/tdquote";
/// The largest response accepted.
pub const MAX_IMDS_RESPONSE: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// A failed IMDS request; the message names the path and the step.
#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    /// Connecting, sending or receiving failed.
    #[error("imds: {method} {path}: I/O with {addr} failed")]
    Io {
        /// GET or POST.
        method: &'static str,
        /// Request path.
        path: String,
        /// IMDS address.
        addr: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// IMDS answered with another status than 200.
    #[error("imds: {method} {path}: HTTP status {status}")]
    Status {
        /// GET or POST.
        method: &'static str,
        /// Request path.
        path: String,
        /// The status code.
        status: u16,
    },
    /// The response is not HTTP/1.x, or its body is not what the endpoint returns.
    #[error("imds: {path}: malformed response: {reason}")]
    Malformed {
        /// Request path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Reaches IMDS (a local server in tests).
pub trait ImdsClient: Send + Sync {
    /// GET `path` with `Metadata: true`; the body of a 200 response.
    fn get(&self, path: &str) -> Result<Vec<u8>, ImdsError>;
    /// POST a JSON `body` to `path` with `Metadata: true`; the body of a 200 response.
    fn post_json(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, ImdsError>;
}

/// IMDS over plain HTTP/1.1, one connection per request.
#[derive(Clone, Debug)]
pub struct HttpImds {
    addr: SocketAddr,
}

impl HttpImds {
    /// IMDS at `addr` (tests: a local server).
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }
    /// Azure's IMDS, 169.254.169.254:80.
    pub fn azure() -> Self {
        Self {
            addr: SocketAddr::from(([169, 254, 169, 254], 80)),
        }
    }

    fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, ImdsError> {
        let io = |source| ImdsError::Io {
            method,
            path: path.to_string(),
            addr: self.addr.to_string(),
            source,
        };
        let mut s = TcpStream::connect_timeout(&self.addr, TIMEOUT).map_err(io)?;
        s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\nConnection: close\r\n"
        );
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).map_err(io)?;
        if let Some(b) = body {
            s.write_all(b).map_err(io)?;
        }
        let mut raw = Vec::new();
        (&mut s)
            .take(MAX_IMDS_RESPONSE as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(io)?;
        if raw.len() > MAX_IMDS_RESPONSE {
            return Err(ImdsError::Malformed {
                path: path.to_string(),
                reason: format!("response over {MAX_IMDS_RESPONSE} bytes"),
            });
        }
        let (status, body) = parse_http_response(&raw).map_err(|reason| ImdsError::Malformed {
            path: path.to_string(),
            reason,
        })?;
        if status != 200 {
            return Err(ImdsError::Status {
                method,
                path: path.to_string(),
                status,
            });
        }
        Ok(body)
    }
}

impl ImdsClient for HttpImds {
    fn get(&self, path: &str) -> Result<Vec<u8>, ImdsError> {
        self.request("GET", path, None)
    }
    fn post_json(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, ImdsError> {
        self.request("POST", path, Some(body))
    }
}

/// Splits a whole HTTP/1.x response (read to EOF) into status and body, decoding
/// `Transfer-Encoding: chunked` and honouring `Content-Length`.
pub fn parse_http_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("header line {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("Content-Length {value:?}"))?,
            );
        }
    }
    if chunked {
        return Ok((status, dechunk(body)?));
    }
    match length {
        Some(n) => body
            .get(..n)
            .map(|b| (status, b.to_vec()))
            .ok_or_else(|| format!("body is {} bytes, Content-Length {n}", body.len())),
        None => Ok((status, body.to_vec())),
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line unterminated")?;
        let line = std::str::from_utf8(&body[..eol]).map_err(|_| "chunk size not text")?;
        let hex_len = line.split(';').next().unwrap_or_default().trim();
        let n = usize::from_str_radix(hex_len, 16).map_err(|_| format!("chunk size {line:?}"))?;
        body = &body[eol + 2..];
        if n == 0 {
            return Ok(out);
        }
        let end = n.checked_add(2).ok_or("chunk size overflows")?;
        let chunk = body.get(..end).ok_or("chunk truncated")?;
        if &chunk[n..] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        out.extend_from_slice(&chunk[..n]);
        body = &body[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::parse_http_response;

    #[test]
    fn content_length_chunked_and_bad_responses() {
        assert_eq!(
            parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra"),
            Ok((200, b"{}".to_vec()))
        );
        assert_eq!(
            parse_http_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
            ),
            Ok((200, b"abcde".to_vec()))
        );
        assert_eq!(
            parse_http_response(b"HTTP/1.0 404 Not Found\r\n\r\nnope"),
            Ok((404, b"nope".to_vec()))
        );
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
        assert!(parse_http_response(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_http_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab"
        )
        .is_err());
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
