//! The host side of the simulated secure processor for a QEMU guest. QEMU connects its
//! virtio-serial chardev to this Unix socket when it starts; the guest writes 64 bytes of
//! REPORT_DATA and gets a framed evidence response (`cdvm_attestation::sim::wire`), as often as
//! it asks. The measurement in every report is the launch digest of what this VM booted.

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
        // One QEMU per VM connects once; accept again if it reconnects.
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; wire::REQUEST_LEN];
            while stream.read_exact(&mut request).await.is_ok() {
                let Ok(report_data) = wire::decode_request(&request) else {
                    break;
                };
                let evidence = sp.report(&report_data, &measurement, &SimReportOptions::default());
                let Ok(body) = wire::encode_framed_response(&evidence) else {
                    break;
                };
                if stream.write_all(&body).await.is_err() {
                    break;
                }
            }
        }
    }))
}
