//! The socket protocol between the guest agent ([`crate::sim::SimAttester`]) and the provider's
//! simulated secure processor. Both sides call these functions so the format cannot drift.
//!
//! One request per connection: the client writes exactly [`REQUEST_LEN`] bytes (the raw
//! REPORT_DATA) and shuts down its write half; the server answers with the JSON of an
//! [`Evidence`] (`serde_json`) and closes.

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

/// Decodes a response.
pub fn decode_response(bytes: &[u8]) -> Result<Evidence, WireError> {
    if bytes.len() > MAX_RESPONSE_LEN {
        return Err(WireError::ResponseTooLarge);
    }
    Ok(serde_json::from_slice(bytes)?)
}
