//! The confidential RAG job (docs/rag.md): where the time goes, on the test models, one
//! inference thread, against llama.cpp's own speed on the same GGUF as the floor.
//!
//! ```text
//! scripts/fetch-models
//! cargo build --bins && cargo bench -p cdvm-e2e --bench rag --profile dev
//! ```
//!
//! (`--profile dev`: llama.cpp itself is built in Release in every profile, see
//! .cargo/config.toml; only the Rust glue would differ, and a release build of the workspace
//! costs another llama.cpp compile.)
//!
//! Prints markdown tables (docs/benchmarks.md records a run):
//! 1. **The stack in-process** (crates/rag on llama.cpp): model file hash checks, model load,
//!    embedding throughput over the bundled corpus (chunks/s), prefill and decode tokens/s and
//!    time to first token of `Generator::generate` on a fixed RAG prompt of four corpus passages
//!    (greedy, at most 128 tokens; the question asks for a long answer). Median of 3.
//! 2. **The floor**: llama.cpp alone on the same GGUF doing the same work (prefill of the same
//!    prompt tokens in batches of 512, then as many greedy single-token decodes as ours made),
//!    straight through the binding with none of our code in the loop, alternating with ours in
//!    the same run (llama-bench's own source is not in the vendored llama.cpp; its method, pp then
//!    tg, is what the floor follows, at our prompt length).
//! 3. **End to end** through the relay, the orchestrator and the process provider (one
//!    inference thread): whole job time, and the per-job overhead — submission to attested
//!    (VM launch + attestation), input sent, model load — apart from the inference itself,
//!    read from the guest's own log line (`rag job done …`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cdvm_client::demo::{vms_dir, DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, JobSpec, Stage, Timeouts};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::rag::{RagAnswer, RagParams};
use cdvm_protocol::{kinds, Data, InputBody};
use cdvm_rag::document::{self, Format};
use cdvm_rag::llama::{LlamaEmbedder, LlamaGenerator};
use cdvm_rag::models::{verified_path, Manifest};
use cdvm_rag::{prompt, Embedder, GenParams, Generator};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn corpus_texts() -> Vec<String> {
    let dir = root().join("examples/rag-docs");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let params = RagParams::default();
    let mut chunks = Vec::new();
    for name in names {
        let doc = document::read(
            &name,
            Format::from_path(&name).unwrap(),
            std::fs::read(dir.join(&name)).unwrap(),
        )
        .unwrap();
        chunks.extend(
            cdvm_rag::chunk::chunk(
                &doc.text,
                params.chunk_words as usize,
                params.overlap_words as usize,
            )
            .into_iter()
            .map(str::to_owned),
        );
    }
    chunks
}

/// The log without terminal colour sequences (ESC [ … m).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct Floor {
    prefill: f64,
    decode: f64,
}

/// The floor: llama.cpp alone on the same GGUF, straight through its binding with none of our
/// code in the loop (no chat template, no text assembly, no streaming callback), doing the same
/// work as one `generate` call: prefill `prompt`'s tokens in batches of 512, then `n` greedy
/// single-token decodes. (llama-bench's own source is not in the vendored llama.cpp; its
/// method, pp then tg, is what this follows, at our prompt length.)
fn llama_floor(
    model: &cdvm_rag::llama::llama_cpp_2::model::LlamaModel,
    prompt: &str,
    n: usize,
) -> (f64, f64) {
    use cdvm_rag::llama::llama_cpp_2::context::params::LlamaContextParams;
    use cdvm_rag::llama::llama_cpp_2::llama_batch::LlamaBatch;
    use cdvm_rag::llama::llama_cpp_2::sampling::LlamaSampler;
    let backend = cdvm_rag::llama::backend().unwrap();
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let params = LlamaContextParams::default()
        .with_n_ctx(std::num::NonZeroU32::new(2048))
        .with_n_batch(512)
        .with_n_threads(1)
        .with_n_threads_batch(1);
    let mut ctx = model.new_context(backend, params).unwrap();
    let mut batch = LlamaBatch::new(512, 1);
    let t = Instant::now();
    for (b, part) in tokens.chunks(512).enumerate() {
        batch.clear();
        for (j, tok) in part.iter().enumerate() {
            let last = b * 512 + j + 1 == tokens.len();
            batch.add(*tok, (b * 512 + j) as i32, &[0], last).unwrap();
        }
        ctx.decode(&mut batch).unwrap();
    }
    let prefill = tokens.len() as f64 / t.elapsed().as_secs_f64();
    let mut sampler = LlamaSampler::greedy();
    let t = Instant::now();
    for step in 0..n {
        let tok = sampler.sample(&ctx, batch.n_tokens() - 1);
        batch.clear();
        batch
            .add(tok, (tokens.len() + step) as i32, &[0], true)
            .unwrap();
        ctx.decode(&mut batch).unwrap();
    }
    (prefill, n as f64 / t.elapsed().as_secs_f64())
}

fn main() {
    let dir = root().join("target/models");
    assert!(
        dir.join("models.json").is_file(),
        "run scripts/fetch-models first"
    );
    let manifest = Manifest::load(&dir).unwrap();
    let g = manifest.generator(None).unwrap();
    let e = manifest.embedder().unwrap();

    // 1. The stack in-process.
    let t = Instant::now();
    let gpath = verified_path(&dir, g).unwrap();
    let epath = verified_path(&dir, e).unwrap();
    let hash_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut gen = LlamaGenerator::load(&gpath, g.reference(), 1, g.context_length).unwrap();
    let gen_load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut emb = LlamaEmbedder::load(&epath, e.reference(), 1, 256).unwrap();
    let emb_load = t.elapsed().as_secs_f64();

    let chunks = corpus_texts();
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let embed_rates: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            emb.embed(&refs).unwrap();
            refs.len() as f64 / t.elapsed().as_secs_f64()
        })
        .collect();

    let passages: Vec<prompt::Passage<'_>> = chunks[..4]
        .iter()
        .map(|c| prompt::Passage {
            document: "bench.txt",
            text: c,
        })
        .collect();
    let text = gen
        .chat_prompt(&prompt::messages(
            "Retell every passage in full detail, one paragraph per passage, then summarise them.",
            &passages,
        ))
        .unwrap();
    let params = GenParams {
        max_tokens: 128,
        temperature: 0.0,
        top_k: 40,
        top_p: 0.95,
        frequency_penalty: 0.0,
        seed: 0,
        stream_every: 8,
    };
    // Ours and the floor alternate, so a change in the machine's load hits both alike.
    let floor_model = cdvm_rag::llama::llama_cpp_2::model::LlamaModel::load_from_file(
        cdvm_rag::llama::backend().unwrap(),
        &gpath,
        &cdvm_rag::llama::llama_cpp_2::model::params::LlamaModelParams::default(),
    )
    .unwrap();
    let mut runs = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..3 {
        let r = gen.generate(&text, &params, &mut |_| true).unwrap();
        // The floor decodes exactly as many tokens as ours produced.
        floors.push(llama_floor(&floor_model, &text, r.completion_tokens.max(2)));
        runs.push(r);
    }
    let prompt_tokens = runs[0].prompt_tokens;
    let prefill = median(
        runs.iter()
            .map(|r| r.prompt_tokens as f64 / r.prefill_secs)
            .collect(),
    );
    let decode = median(
        runs.iter()
            .map(|r| (r.completion_tokens.saturating_sub(1)) as f64 / r.decode_secs)
            .collect(),
    );
    let ttft = median(runs.iter().map(|r| r.first_token_secs).collect());
    let generated = runs[0].completion_tokens;

    // 2. The floor (measured above, alternating with ours).
    let floor = Floor {
        prefill: median(floors.iter().map(|f| f.0).collect()),
        decode: median(floors.iter().map(|f| f.1).collect()),
    };

    println!(
        "### RAG stack in-process ({}, {}, 1 thread)\n",
        g.name, e.name
    );
    println!("| step | value |");
    println!("|---|---|");
    println!(
        "| SHA-256 check of both model files ({:.0} MB) | {:.2} s |",
        (std::fs::metadata(&gpath).unwrap().len() + std::fs::metadata(&epath).unwrap().len())
            as f64
            / 1e6,
        hash_secs
    );
    println!("| generator load | {:.3} s |", gen_load);
    println!("| embedder load | {:.3} s |", emb_load);
    println!(
        "| embedding, {} corpus chunks | {:.1} chunks/s |",
        refs.len(),
        median(embed_rates)
    );
    println!("| prefill, {prompt_tokens}-token prompt | {prefill:.1} tok/s |");
    println!("| time to first token | {ttft:.3} s |");
    println!("| decode, {generated} tokens | {decode:.1} tok/s |");
    println!("\n### Floor: llama.cpp alone, same GGUF, same prompt and token count, 1 thread\n");
    println!("| | ours (Generator::generate) | llama.cpp alone | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| prefill ({prompt_tokens}-token RAG prompt) | {prefill:.1} tok/s | {:.1} tok/s | {:.2}× |",
        floor.prefill,
        prefill / floor.prefill
    );
    println!(
        "| decode ({generated} tokens after the prompt) | {decode:.1} tok/s | {:.1} tok/s | {:.2}× |",
        floor.decode,
        decode / floor.decode
    );
    drop(floor_model);
    drop(gen);
    drop(emb);

    // 3. End to end.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(end_to_end(&dir));
}

async fn end_to_end(models: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let deployment = LocalDeployment::start(
        &state,
        &DeploymentOptions {
            models_dir: Some(models.to_path_buf()),
            inference_threads: Some(1),
            ..DeploymentOptions::default()
        },
    )
    .await
    .unwrap();
    let docs: String =
        std::fs::read_to_string(root().join("examples/rag-docs/meeting-minutes-2024-09-board.txt"))
            .unwrap();
    let mut rows = Vec::new();
    for rep in 0..3 {
        let spec = JobSpec {
            relays: vec![deployment.relay.url().to_string()],
            dvm: deployment.dvm.public_key(),
            kind: kinds::TEXT_GENERATION,
            input: InputBody::Rag {
                documents: Data::Inline(docs.clone()),
                name: Some("minutes.txt".into()),
                media_type: None,
                question: "In which city did the board decide to open the new engineering office?"
                    .into(),
                params: RagParams::default(),
            },
            policy: deployment.dev_policy.clone(),
            user: Keys::generate(),
            timeouts: Timeouts {
                attest: Duration::from_secs(60),
                result: Duration::from_secs(240),
                destroyed: Duration::from_secs(30),
            },
            vcek: None,
            result_servers: Vec::new(),
            result_file: None,
            transfer_progress: None,
        };
        // The guest's console log (the provider deletes the VM folder when it destroys the VM):
        // hold each new console.log open as it appears.
        let vms = vms_dir(&state);
        let watcher = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                if let Some(dir) = std::fs::read_dir(&vms)
                    .ok()
                    .and_then(|mut d| d.next())
                    .and_then(|e| e.ok())
                {
                    if let Ok(f) = std::fs::File::open(dir.path().join("console.log")) {
                        return Some(f);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        });
        let mut attested = 0.0;
        let mut input_sent = 0.0;
        let started = Instant::now();
        let outcome = run_job(spec, |stage, t| match stage {
            Stage::Attested { .. } => attested = t.as_secs_f64(),
            Stage::InputSent => input_sent = t.as_secs_f64(),
            _ => {}
        })
        .await
        .unwrap();
        let total = started.elapsed().as_secs_f64();
        let answer: RagAnswer = serde_json::from_str(&outcome.output).unwrap();
        assert!(answer.answer.contains("Tartu"), "{:?}", answer.answer);
        let mut log = String::new();
        if let Some(mut f) = watcher.join().unwrap() {
            // The agent has exited by now (VM destroyed): its log is complete.
            std::io::Read::read_to_string(&mut f, &mut log).unwrap();
        }
        let log = strip_ansi(&log);
        let field = |name: &str| -> f64 {
            log.lines()
                .find(|l| l.contains("rag job done"))
                .and_then(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{name}=")))
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        rows.push((
            rep,
            total,
            attested,
            input_sent,
            field("load_secs"),
            field("embed_secs"),
            field("first_token_secs"),
            field("decode_secs"),
            answer.usage.completion_tokens,
        ));
    }
    println!("\n### End to end (process provider, relay, orchestrator; 1 inference thread; inline document)\n");
    println!("| run | whole job | submitted → attested (launch + attestation) | attested → input sent | model load (guest) | embed | first token (after load) | decode | tokens |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (rep, total, att, sent, load, embed, ttft, decode, toks) in rows {
        println!("| {} | {total:.2} s | {att:.2} s | {:.2} s | {load:.2} s | {embed:.2} s | {ttft:.2} s | {decode:.2} s | {toks} |", rep + 1, sent - att);
    }
    drop(deployment);
}
