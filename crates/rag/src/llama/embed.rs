//! Sentence embeddings with a BERT-family GGUF (all-MiniLM-L6-v2): llama.cpp's WordPiece
//! tokenizer and mean pooling, then L2 normalisation, as sentence-transformers does.

use std::num::NonZeroU32;
use std::path::Path;

use cdvm_protocol::rag::ModelRef;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::engine::Embedder;
use crate::error::RagError;
use crate::retrieve::normalize;

/// Tokens per llama.cpp batch (several chunks, one sequence each).
const BATCH_TOKENS: u32 = 2048;
/// Sequences per batch.
const BATCH_SEQS: usize = 16;

/// An embedder on llama.cpp.
pub struct LlamaEmbedder {
    model: LlamaModel,
    reference: ModelRef,
    threads: i32,
    max_tokens: usize,
}

impl std::fmt::Debug for LlamaEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LlamaEmbedder({})", self.reference.name)
    }
}

impl LlamaEmbedder {
    /// Loads the model at `path` (already hash-checked by the caller). A text is cut to
    /// `max_tokens` tokens (all-MiniLM-L6-v2 was trained on 256).
    pub fn load(
        path: &Path,
        reference: ModelRef,
        threads: usize,
        max_tokens: usize,
    ) -> Result<Self, RagError> {
        let model = super::load(path)?;
        let trained = usize::try_from(model.n_ctx_train()).unwrap_or(usize::MAX);
        Ok(Self {
            model,
            reference,
            threads: super::threads(threads),
            max_tokens: max_tokens.clamp(2, trained.min(BATCH_TOKENS as usize)),
        })
    }

    /// The token ids the model reads for `text`: `[CLS] … [SEP]`, cut to the token limit.
    pub fn token_ids(&self, text: &str) -> Vec<i32> {
        self.tokens(text).iter().map(|t| t.0).collect()
    }

    fn tokens(&self, text: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        let mut t = vocab.tokenize(text.as_bytes(), true, false);
        if t.len() > self.max_tokens {
            // Keep [CLS] … and end with [SEP], as a truncating BERT tokenizer does.
            t.truncate(self.max_tokens - 1);
            t.push(vocab.sep());
        }
        t
    }
}

impl Embedder for LlamaEmbedder {
    fn model(&self) -> &ModelRef {
        &self.reference
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, RagError> {
        let backend = super::backend()?;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(BATCH_TOKENS))
            .with_n_batch(BATCH_TOKENS)
            .with_n_ubatch(BATCH_TOKENS)
            .with_n_seq_max(BATCH_SEQS as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads)
            .with_embeddings(true);
        let mut ctx = self
            .model
            .new_context(backend, params)
            .map_err(|e| RagError::Engine(format!("embedding context: {e}")))?;
        let engine =
            |what: &str, e: &dyn std::fmt::Display| RagError::Engine(format!("{what}: {e}"));
        let mut out = Vec::with_capacity(texts.len());
        let mut batch = LlamaBatch::new(BATCH_TOKENS as usize, BATCH_SEQS as i32);
        let mut pending = texts.iter().map(|t| self.tokens(t)).peekable();
        while pending.peek().is_some() {
            batch.clear();
            let mut seqs = 0usize;
            let mut used = 0usize;
            while let Some(next) = pending.peek() {
                if seqs == BATCH_SEQS || (seqs > 0 && used + next.len() > BATCH_TOKENS as usize) {
                    break;
                }
                let toks = pending.next().unwrap_or_default();
                let seq = i32::try_from(seqs).unwrap_or(0);
                for (pos, t) in toks.iter().enumerate() {
                    let pos = i32::try_from(pos).unwrap_or(i32::MAX);
                    batch
                        .add(*t, pos, &[seq], true)
                        .map_err(|e| engine("embedding batch", &e))?;
                }
                used += toks.len();
                seqs += 1;
            }
            ctx.clear_kv_cache();
            ctx.decode(&mut batch)
                .map_err(|e| engine("embedding", &e))?;
            for s in 0..seqs {
                let seq = i32::try_from(s).unwrap_or(0);
                let mut v = ctx
                    .embeddings_seq_ith(seq)
                    .map_err(|e| engine("reading an embedding", &e))?
                    .to_vec();
                normalize(&mut v);
                out.push(v);
            }
        }
        Ok(out)
    }
}
