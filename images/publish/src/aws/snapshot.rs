//! The EBS direct APIs: StartSnapshot, one PutSnapshotBlock per non-zero 512 KiB block (a new
//! snapshot reads zeros where nothing was written, and the disk is mostly zeros), and
//! CompleteSnapshot with the linear aggregate of the block checksums.

use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::{ChecksumAggregationMethod, ChecksumAlgorithm, Tag};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt as _;

use super::{step, Resource, StepError, DISK_TAG};
use crate::image::ImageToPublish;
use crate::undo::Undo;
use crate::Progress;

/// The EBS direct APIs' block size.
pub const BLOCK: usize = 512 * 1024;
const GIB: u64 = 1 << 30;
/// A progress line at least every this many bytes.
const REPORT_EVERY: u64 = 32 << 20;

/// Uploads the disk; returns the snapshot id (recorded in `undo` as soon as it exists).
pub async fn upload(
    ebs: &aws_sdk_ebs::Client,
    image: &ImageToPublish,
    progress: Progress<'_>,
    undo: &mut Undo<Resource>,
) -> Result<String, StepError> {
    const STEP: &str = "upload the disk";
    let io = |e: std::io::Error| (STEP, format!("{}: {e}", image.disk_raw.display()).into());
    let mut file = tokio::fs::File::open(&image.disk_raw).await.map_err(io)?;
    let size = file.metadata().await.map_err(io)?.len();
    if size == 0 {
        return Err((
            STEP,
            format!("{} is empty", image.disk_raw.display()).into(),
        ));
    }
    let gib = size.div_ceil(GIB);
    let volume_size = i64::try_from(gib).map_err(|_| (STEP, "disk too large".into()))?;
    let blocks = size.div_ceil(BLOCK as u64);

    let started = ebs
        .start_snapshot()
        .volume_size(volume_size)
        .description(format!("ConfidentialDVM guest disk {}", image.name))
        .tags(
            Tag::builder()
                .key(DISK_TAG)
                .value(&image.disk_sha256)
                .build(),
        )
        .tags(Tag::builder().key("Name").value(&image.name).build())
        // The same token on a retried StartSnapshot returns the same snapshot, not a second one.
        .client_token(format!("{}-{}", image.name, std::process::id()))
        .send()
        .await
        .map_err(|e| step("start the snapshot")(aws_sdk_ebs::Error::from(e)))?;
    let snapshot = started
        .snapshot_id()
        .ok_or_else(|| ("start the snapshot", "StartSnapshot answered no id".into()))?
        .to_owned();
    undo.created(Resource::Snapshot(snapshot.clone()));
    progress(&format!(
        "snapshot {snapshot}: uploading {} MiB in {blocks} blocks of 512 KiB, zero blocks skipped",
        size >> 20
    ));

    let mut digests: Vec<[u8; 32]> = Vec::new();
    let mut buf = vec![0u8; BLOCK];
    let mut done = 0u64;
    let mut reported = 0u64;
    for index in 0..blocks {
        let want = usize::try_from((size - done).min(BLOCK as u64))
            .map_err(|_| (STEP, "block size overflow".into()))?;
        buf.fill(0);
        file.read_exact(&mut buf[..want]).await.map_err(io)?;
        done += want as u64;
        if buf.iter().all(|b| *b == 0) {
            continue;
        }
        let digest: [u8; 32] = Sha256::digest(&buf).into();
        let block_index = i32::try_from(index).map_err(|_| (STEP, "too many blocks".into()))?;
        ebs.put_snapshot_block()
            .snapshot_id(&snapshot)
            .block_index(block_index)
            .block_data(ByteStream::from(buf.clone()))
            .data_length(BLOCK as i32)
            .checksum(base64::engine::general_purpose::STANDARD.encode(digest))
            .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .send()
            .await
            .map_err(|e| step("upload a block")(aws_sdk_ebs::Error::from(e)))?;
        digests.push(digest);
        if done - reported >= REPORT_EVERY {
            reported = done;
            progress(&format!(
                "uploaded {} of {} MiB ({} blocks written)",
                done >> 20,
                size >> 20,
                digests.len()
            ));
        }
    }
    // LINEAR: the SHA-256 of the blocks' SHA-256s in index order.
    let mut aggregate = Sha256::new();
    for d in &digests {
        aggregate.update(d);
    }
    let written = i32::try_from(digests.len()).map_err(|_| (STEP, "too many blocks".into()))?;
    ebs.complete_snapshot()
        .snapshot_id(&snapshot)
        .changed_blocks_count(written)
        .checksum(base64::engine::general_purpose::STANDARD.encode(aggregate.finalize()))
        .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
        .checksum_aggregation_method(ChecksumAggregationMethod::ChecksumAggregationLinear)
        .send()
        .await
        .map_err(|e| step("complete the snapshot")(aws_sdk_ebs::Error::from(e)))?;
    progress(&format!(
        "snapshot {snapshot} complete: {written} of {blocks} blocks written ({} MiB)",
        (u64::try_from(written).unwrap_or(0) * BLOCK as u64) >> 20
    ));
    Ok(snapshot)
}
