//! A real job's latency while the orchestrator is flooded with requests it refuses (issue 16,
//! fault 5): N requests of an unserved kind from N fresh keys are published, then one real SQL
//! job runs. Measured at the client: request → the DVM's first "processing" feedback (the
//! acknowledgement, which used to wait behind every refusal), request → verified attestation
//! (guest events routed through the same loop), and the whole job. The floor is the same job with
//! no flood, in the same run. Refusals beyond `limits.refusals_per_second` are dropped unanswered;
//! the table says how many were answered.
//!
//! Run: `cargo build --workspace --bins --features "$(scripts/features)" && cargo bench -p cdvm-e2e
//! --bench refusal_flood --profile dev --features "$(scripts/features)" [-- ROUNDS]` (default 3
//! jobs per flood size). docs/benchmarks.md records a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, JobSpec, Stage, Timeouts};
use cdvm_protocol::nostr::{EventBuilder, Filter, Keys, Kind, Tag, TagKind};
use cdvm_protocol::{kinds, FeedbackStatus, InputBody};
use nostr_sdk::Client;

struct Sample {
    ack: Duration,
    attested: Duration,
    whole: Duration,
}

async fn one_job(d: &LocalDeployment) -> Sample {
    let spec = JobSpec {
        relays: vec![d.relay.url().to_string()],
        dvm: d.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: "a\n1\n2\n".into(),
            query: "SELECT SUM(a) AS s FROM input".into(),
        },
        policy: d.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(120),
            result: Duration::from_secs(60),
            destroyed: Duration::from_secs(30),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let (mut ack, mut attested, mut done) = (None, None, None);
    run_job(spec, |stage, t| match stage {
        Stage::Dvm {
            status: FeedbackStatus::Processing,
            ..
        } if ack.is_none() => ack = Some(t),
        Stage::Attested { .. } => attested = Some(t),
        Stage::VmDestroyed => done = Some(t),
        _ => {}
    })
    .await
    .expect("job");
    Sample {
        ack: ack.expect("acknowledged"),
        attested: attested.expect("attested"),
        whole: done.expect("destroyed"),
    }
}

/// Publishes `n` requests the DVM refuses (an unserved kind), each from a fresh key.
async fn flood(client: &Client, d: &LocalDeployment, n: usize) {
    for i in 0..n {
        let e = EventBuilder::new(Kind::from(5999u16), "")
            .tags([
                Tag::public_key(d.dvm.public_key()),
                Tag::custom(TagKind::custom("param"), ["tee", "sev-snp"]),
                Tag::custom(TagKind::custom("alt"), [format!("flood {i}")]),
            ])
            .sign_with_keys(&Keys::generate())
            .unwrap();
        client.send_event(&e).await.unwrap();
    }
}

async fn answered(relay: &str, d: &LocalDeployment) -> usize {
    let c = Client::new(Keys::generate());
    c.add_relay(relay).await.unwrap();
    c.connect().await;
    let filter = Filter::new()
        .author(d.dvm.public_key())
        .kind(Kind::from(7000u16));
    let n = c
        .fetch_events(filter, Duration::from_secs(5))
        .await
        .map(|e| e.len())
        .unwrap_or(0);
    c.shutdown().await;
    n
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}

fn max(v: &[Duration]) -> f64 {
    v.iter().max().copied().unwrap_or_default().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    println!("| refused requests before the job | jobs | ack s (median / max) | attested s (median / max) | whole job s (median / max) | refusals answered | flood published in s |");
    println!("|---:|---:|---|---|---|---:|---:|");
    for n in [0usize, 400, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let opts = DeploymentOptions {
            deadlines: (120, 60, 60),
            per_user_per_minute: 1000,
            ..DeploymentOptions::default()
        };
        let d = LocalDeployment::start(&dir.path().join("state"), &opts)
            .await
            .expect("deployment");
        let url = d.relay.url().to_string();
        let sender = Client::new(Keys::generate());
        sender.add_relay(url.as_str()).await.unwrap();
        sender.connect().await;
        let mut samples = Vec::new();
        let mut publish = Duration::ZERO;
        for _ in 0..rounds {
            let t = Instant::now();
            flood(&sender, &d, n).await;
            publish += t.elapsed();
            samples.push(one_job(&d).await);
        }
        let before = answered(&url, &d).await;
        let ack: Vec<_> = samples.iter().map(|s| s.ack).collect();
        let att: Vec<_> = samples.iter().map(|s| s.attested).collect();
        let whole: Vec<_> = samples.iter().map(|s| s.whole).collect();
        // Each job gets two feedback events of its own (processing, success).
        let refusals = before.saturating_sub(2 * rounds);
        println!(
            "| {n} | {rounds} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {refusals} of {} | {:.1} |",
            median(ack.clone()),
            max(&ack),
            median(att.clone()),
            max(&att),
            median(whole.clone()),
            max(&whole),
            n * rounds,
            publish.as_secs_f64() / rounds as f64
        );
        sender.shutdown().await;
        drop(d);
    }
}
