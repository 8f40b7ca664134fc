//! The socket protocol between the guest agent ([`crate::sim::SimAttester`]) and the provider's
//! simulated secure processor. Both sides call these functions so the format cannot drift.
//!
//! Over a Unix socket, one request per connection: the client writes exactly [`REQUEST_LEN`] bytes
//! (the raw REPORT_DATA) and shuts down its write half; the server answers with the JSON of an
//! [`Evidence`] (`serde_json`) and closes.
//!
//! Over a virtio-serial port (a QEMU guest), there is no half-close: the client writes the same
//! [`REQUEST_LEN`] bytes and the server answers with a *framed* response, a 4-byte big-endian
//! length followed by the JSON ([`encode_framed_response`], [`read_framed_response`]).

use thiserror::Error;

use crate::{Evidence, ReportData};

/// Size of a request: the raw REPORT_DATA.
pub const REQUEST_LEN: usize = 64;
/// Largest response a client accepts (a report and three certificates are a few KiB).
pub const MAX_RESPONSE_LEN: usize = 1 << 20;

/// A malformed request or response.
#[derive(Debug, Error)]
pub enum WireError {
    /// The request is not exactly 64 bytes.
    #[error("request is {0} bytes, expected exactly {REQUEST_LEN}")]
    BadRequestLength(usize),
    /// The response is larger than [`MAX_RESPONSE_LEN`].
    #[error("response exceeds {MAX_RESPONSE_LEN} bytes")]
    ResponseTooLarge,
    /// The response is not the JSON of an [`Evidence`].
    #[error("response is not evidence JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The stream ended or failed before a whole framed response arrived.
    #[error("reading the response: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes a request.
pub fn encode_request(report_data: &ReportData) -> Vec<u8> {
    report_data.0.to_vec()
}

/// Decodes a request; anything but exactly 64 bytes is refused.
pub fn decode_request(bytes: &[u8]) -> Result<ReportData, WireError> {
    let raw: [u8; REQUEST_LEN] = bytes
        .try_into()
        .map_err(|_| WireError::BadRequestLength(bytes.len()))?;
    Ok(ReportData(raw))
}

/// Encodes a response.
pub fn encode_response(evidence: &Evidence) -> Result<Vec<u8>, WireError> {
    Ok(serde_json::to_vec(evidence)?)
}

/// Encodes a response for a stream without half-close: length prefix, then the JSON.
pub fn encode_framed_response(evidence: &Evidence) -> Result<Vec<u8>, WireError> {
    let body = encode_response(evidence)?;
    let len = u32::try_from(body.len()).map_err(|_| WireError::ResponseTooLarge)?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads one framed response from a stream; a length over [`MAX_RESPONSE_LEN`] is refused before
/// anything is allocated.
pub fn read_framed_response(stream: &mut impl std::io::Read) -> Result<Evidence, WireError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_RESPONSE_LEN {
        return Err(WireError::ResponseTooLarge);
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    decode_response(&body)
}

/// Decodes a response.
pub fn decode_response(bytes: &[u8]) -> Result<Evidence, WireError> {
    if bytes.len() > MAX_RESPONSE_LEN {
        return Err(WireError::ResponseTooLarge);
    }
    Ok(serde_json::from_slice(bytes)?)
}
