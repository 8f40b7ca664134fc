//! Known-answer and quality tests of the llama.cpp stack with the real models (docs/rag.md):
//! tokenizers and embeddings against values computed without llama.cpp
//! (tests/reference/make_reference.py), the chat template, a generation golden, retrieval recall
//! over the bundled corpus, and the context budget. The models come from `scripts/fetch-models`
//! (run by `scripts/test`); without them these tests fail and say so.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cdvm_protocol::rag::{Finish, RagParams};
use cdvm_rag::document::{self, Format};
use cdvm_rag::llama::{LlamaEmbedder, LlamaGenerator};
use cdvm_rag::models::{verified_path, Manifest};
use cdvm_rag::{answer, prompt, Corpus, Embedder, GenParams, Generator, RagError};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("CDVM_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/models"));
    assert!(
        dir.join("models.json").is_file(),
        "no models in {}: run scripts/fetch-models (scripts/test does)",
        dir.display()
    );
    dir
}

/// The loaded models, shared: one load per test binary.
struct Models {
    embedder: Mutex<LlamaEmbedder>,
    generator: Mutex<LlamaGenerator>,
}

fn models() -> &'static Models {
    static M: OnceLock<Models> = OnceLock::new();
    M.get_or_init(|| {
        let dir = models_dir();
        let manifest = Manifest::load(&dir).expect("manifest");
        let g = manifest.generator(None).expect("generator");
        let e = manifest.embedder().expect("embedder");
        Models {
            embedder: Mutex::new(
                LlamaEmbedder::load(
                    &verified_path(&dir, e).expect("hash"),
                    e.reference(),
                    1,
                    256,
                )
                .expect("embedder"),
            ),
            generator: Mutex::new(
                LlamaGenerator::load(
                    &verified_path(&dir, g).expect("hash"),
                    g.reference(),
                    1,
                    g.context_length,
                )
                .expect("generator"),
            ),
        }
    })
}

fn reference() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/reference.json"),
    )
    .expect("reference.json");
    serde_json::from_str(&text).expect("json")
}

fn ids(v: &Value) -> Vec<i32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_i64().expect("id") as i32)
        .collect()
}

#[test]
fn smollm2_tokenizer_matches_the_reference_and_round_trips() {
    let g = models().generator.lock().expect("lock");
    for case in reference()["smollm2"].as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let got = g.token_ids(text);
        assert_eq!(got, ids(&case["ids"]), "{text:?}");
        assert_eq!(g.detokenize(&got), text);
    }
}

#[test]
fn minilm_tokens_and_embeddings_match_a_numpy_forward_pass() {
    let mut e = models().embedder.lock().expect("lock");
    let cases = reference()["minilm"].as_array().expect("cases").clone();
    let texts: Vec<&str> = cases
        .iter()
        .map(|c| c["text"].as_str().expect("text"))
        .collect();
    let vectors = e.embed(&texts).expect("embed");
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(e.token_ids(texts[i]), ids(&case["ids"]), "{:?}", texts[i]);
        let want: Vec<f32> = case["embedding"]
            .as_array()
            .expect("embedding")
            .iter()
            .map(|x| x.as_f64().expect("f") as f32)
            .collect();
        let cos = cdvm_rag::retrieve::cosine(&vectors[i], &want);
        assert!(cos > 0.9995, "{:?}: cosine {cos}", texts[i]);
        // Tamper twin: another sentence's reference is clearly not a match.
        let other = &cases[(i + 1) % cases.len()]["embedding"];
        let other: Vec<f32> = other
            .as_array()
            .expect("embedding")
            .iter()
            .map(|x| x.as_f64().expect("f") as f32)
            .collect();
        assert!(cdvm_rag::retrieve::cosine(&vectors[i], &other) < 0.9);
    }
    // Batching does not change a vector: one text alone gives the same embedding.
    let alone = e.embed(&texts[1..2]).expect("embed");
    assert!(cdvm_rag::retrieve::cosine(&alone[0], &vectors[1]) > 0.99999);
}

#[test]
fn prompt_is_the_models_chatml_template_golden() {
    let g = models().generator.lock().expect("lock");
    let m = prompt::messages(
        "How long is the notice?",
        &[prompt::Passage {
            document: "contract.txt",
            text: "Notice: 14 days.",
        }],
    );
    let rendered = g.chat_prompt(&m).expect("template");
    let want = format!(
        "<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\nPassages:\n\n[1] From \"contract.txt\":\nNotice: 14 days.\n\nQuestion: How long is the notice?<|im_end|>\n<|im_start|>assistant\n",
        prompt::SYSTEM
    );
    assert_eq!(rendered, want);
    // The template's markers are special tokens, not text: <|im_start|> is one token.
    assert_eq!(g.count_tokens("<|im_start|>").expect("count"), 1);
}

fn corpus() -> Corpus {
    let dir = root().join("examples/rag-docs");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut c = Corpus::new();
    for name in names {
        let format = Format::from_path(&name).expect("format");
        let bytes = std::fs::read(dir.join(&name)).expect("read");
        c.push(document::read(&name, format, bytes).expect("document"))
            .expect("push");
    }
    c
}

fn questions() -> Vec<Value> {
    let text =
        std::fs::read_to_string(root().join("examples/rag-questions.json")).expect("questions");
    serde_json::from_str::<Vec<Value>>(&text).expect("json")
}

#[test]
fn retrieval_recall_over_the_bundled_corpus() {
    let corpus = corpus();
    let docs: Vec<String> = {
        let dir = root().join("examples/rag-docs");
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(corpus.len(), docs.len());
    let params = RagParams::default();
    let mut e = models().embedder.lock().expect("lock");
    // Chunks with their document, as the pipeline makes them.
    let mut chunks: Vec<(usize, String)> = Vec::new();
    for (d, name) in docs.iter().enumerate() {
        let bytes = std::fs::read(root().join("examples/rag-docs").join(name)).expect("read");
        let doc = document::read(name, Format::from_path(name).expect("fmt"), bytes).expect("doc");
        for c in cdvm_rag::chunk::chunk(
            &doc.text,
            params.chunk_words as usize,
            params.overlap_words as usize,
        ) {
            chunks.push((d, c.to_owned()));
        }
    }
    let texts: Vec<&str> = chunks.iter().map(|c| c.1.as_str()).collect();
    let vectors = e.embed(&texts).expect("embed");
    let k = params.retrieve as usize;
    let (mut at1, mut atk) = (0, 0);
    let qs = questions();
    for q in &qs {
        let query = e
            .embed(&[q["question"].as_str().expect("q")])
            .expect("embed")
            .remove(0);
        let top = cdvm_rag::retrieve::top_k(&query, &vectors, k);
        let want = q["document"].as_str().expect("doc");
        let ranked: Vec<&str> = top.iter().map(|t| docs[chunks[t.0].0].as_str()).collect();
        if ranked[0] == want {
            at1 += 1;
        }
        assert!(
            ranked.contains(&want),
            "{:?}: {want} not in the top {k}: {ranked:?}",
            q["question"]
        );
        atk += 1;
    }
    eprintln!(
        "recall@1 = {at1}/{n}, recall@{k} = {atk}/{n} over {} chunks",
        chunks.len(),
        n = qs.len()
    );
}

/// Questions of the bundled set whose fact SmolLM2-135M reproduces from its passages (a 135M
/// model is weak: `explore_answers` prints all ten; docs/rag.md reports the score).
const ANSWERED: [usize; 3] = [5, 7, 8];

#[test]
fn greedy_answers_contain_the_fact_and_the_golden_holds() {
    let corpus = corpus();
    let params = RagParams {
        max_tokens: 64,
        retrieve: 2,
        ..RagParams::default()
    };
    let mut e = models().embedder.lock().expect("lock");
    let mut g = models().generator.lock().expect("lock");
    let qs = questions();
    for &i in &ANSWERED {
        let q = &qs[i];
        let mut partials = Vec::new();
        let (a, stats) = answer(
            &corpus,
            q["question"].as_str().expect("q"),
            &params,
            &mut *e,
            &mut *g,
            8,
            &mut |text| {
                partials.push(text.to_owned());
                true
            },
        )
        .expect("answer");
        let fact = q["fact"].as_str().expect("fact").to_lowercase();
        assert!(
            a.answer.to_lowercase().contains(&fact),
            "{fact}: {:?}",
            a.answer
        );
        // The fact is in exactly one document, and that document was retrieved.
        assert!(
            a.citations.iter().any(|c| c.document == q["document"]),
            "{:?}",
            a.citations.iter().map(|c| &c.document).collect::<Vec<_>>()
        );
        assert!(a.usage.prompt_tokens as usize + params.max_tokens as usize <= 2048);
        // Partials grow and end with the final answer.
        assert!(partials.len() >= 2, "{}", partials.len());
        assert!(partials.windows(2).all(|w| w[1].starts_with(&w[0])));
        assert_eq!(partials.last().map(|s| s.trim()), Some(a.answer.as_str()));
        eprintln!("{fact}: {:?}; {stats:?}", a.answer);
    }

    // The golden: greedy decoding of one fixed prompt, to catch a silent change to the stack
    // (model file, llama.cpp version, sampler, template). Regenerate deliberately with
    // CDVM_BLESS=1 and say why in the commit.
    let prompt = g
        .chat_prompt(&prompt::messages(
            "How long is the notice?",
            &[prompt::Passage {
                document: "contract.txt",
                text: "Either party may terminate this agreement with 14 days' written notice.",
            }],
        ))
        .expect("prompt");
    let out = g
        .generate(&prompt, &gen_params(48), &mut |_| true)
        .expect("generate");
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/golden_generation.txt");
    if std::env::var_os("CDVM_BLESS").is_some() {
        std::fs::write(&golden, &out.text).expect("bless");
    }
    let want = std::fs::read_to_string(&golden).expect("golden file");
    assert_eq!(out.text, want);
}

fn gen_params(max_tokens: usize) -> GenParams {
    GenParams {
        max_tokens,
        temperature: 0.0,
        top_k: 40,
        top_p: 0.95,
        frequency_penalty: 0.0,
        seed: 0,
        stream_every: 8,
    }
}

#[test]
fn prompt_stays_within_the_context_and_an_oversized_question_is_refused() {
    let corpus = corpus();
    let mut e = models().embedder.lock().expect("lock");
    let mut g = models().generator.lock().expect("lock");
    // 32 passages of 200 words cannot all fit in 2048 tokens: retrieval keeps what fits.
    let params = RagParams {
        max_tokens: 4,
        chunk_words: 200,
        overlap_words: 0,
        retrieve: 32,
        ..RagParams::default()
    };
    let (a, _) = answer(
        &corpus,
        "What does the lease say about rent?",
        &params,
        &mut *e,
        &mut *g,
        8,
        &mut |_| true,
    )
    .expect("answer");
    assert!(
        a.citations.len() < 32 && !a.citations.is_empty(),
        "{}",
        a.citations.len()
    );
    assert!(a.usage.prompt_tokens as usize + 4 <= g.context_tokens());
    assert_eq!(a.finish, Finish::Length);
    // A question that alone overflows the context is a clear error.
    let long = "Why is the sky blue? ".repeat(390);
    let params = RagParams {
        max_tokens: 256,
        ..RagParams::default()
    };
    match answer(&corpus, &long, &params, &mut *e, &mut *g, 8, &mut |_| true) {
        Err(RagError::QuestionTooLong { context, .. }) => assert_eq!(context, 2048),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_model_not_in_the_image_is_refused_by_name() {
    let mut e = models().embedder.lock().expect("lock");
    let mut g = models().generator.lock().expect("lock");
    let params = RagParams {
        model: Some("gpt-5".into()),
        ..RagParams::default()
    };
    let err = answer(&corpus(), "q?", &params, &mut *e, &mut *g, 8, &mut |_| true).unwrap_err();
    assert!(err.to_string().contains("gpt-5"), "{err}");
}

#[test]
#[ignore = "exploration, not a check: prints the answer to every bundled question (run with --ignored --nocapture)"]
fn explore_answers() {
    let corpus = corpus();
    let mut e = models().embedder.lock().expect("lock");
    let mut g = models().generator.lock().expect("lock");
    for retrieve in [1u32, 2, 4] {
        for q in questions() {
            let params = RagParams {
                max_tokens: 64,
                retrieve,
                ..RagParams::default()
            };
            let (a, _) = answer(
                &corpus,
                q["question"].as_str().expect("q"),
                &params,
                &mut *e,
                &mut *g,
                64,
                &mut |_| true,
            )
            .expect("answer");
            let ok = a
                .answer
                .to_lowercase()
                .replace('-', " ")
                .contains(&q["fact"].as_str().expect("f").to_lowercase());
            eprintln!(
                "k={retrieve} {} {:?} => {:?}",
                if ok { "OK " } else { "BAD" },
                q["fact"],
                a.answer
            );
        }
    }
}
