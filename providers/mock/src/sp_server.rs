//! The host side of the simulated secure processor: one Unix socket per VM. It answers a 64-byte
//! report-data request with evidence carrying the measurement of what this VM actually launched.

use std::path::PathBuf;
use std::sync::Arc;

use cdvm_attestation::sim::{wire, SimReportOptions, SimSecureProcessor};
use cdvm_attestation::Measurement;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

pub(crate) fn serve(
    socket: PathBuf,
    sp: Arc<SimSecureProcessor>,
    measurement: Measurement,
) -> std::io::Result<JoinHandle<()>> {
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let sp = Arc::clone(&sp);
            tokio::spawn(async move {
                let mut request = [0u8; 64];
                if stream.read_exact(&mut request).await.is_err() {
                    return;
                }
                let Ok(report_data) = wire::decode_request(&request) else {
                    return;
                };
                let evidence = sp.report(&report_data, &measurement, &SimReportOptions::default());
                if let Ok(body) = serde_json::to_vec(&evidence) {
                    let _ = stream.write_all(&body).await;
                }
                let _ = stream.shutdown().await;
            });
        }
    }))
}
