//! Text generation with a chat GGUF: the model's own chat template (from its GGUF metadata),
//! prefill in batches, then one token at a time, greedy at temperature 0.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Instant;

use cdvm_protocol::rag::{Finish, ModelRef};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;

use crate::engine::{GenParams, Generation, Generator, Message};
use crate::error::RagError;

/// Prompt tokens per prefill batch.
const PREFILL_BATCH: usize = 512;
/// Tokens the frequency penalty looks back over.
const PENALTY_WINDOW: i32 = 256;

/// A generator on llama.cpp.
pub struct LlamaGenerator {
    model: LlamaModel,
    template: LlamaChatTemplate,
    reference: ModelRef,
    threads: i32,
    context: u32,
}

impl std::fmt::Debug for LlamaGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LlamaGenerator({}, ctx {})",
            self.reference.name, self.context
        )
    }
}

impl LlamaGenerator {
    /// Loads the model at `path` (already hash-checked by the caller), with a context of
    /// `context` tokens (at most what the model was trained on).
    pub fn load(
        path: &Path,
        reference: ModelRef,
        threads: usize,
        context: u32,
    ) -> Result<Self, RagError> {
        let model = super::load(path)?;
        let template = model.chat_template(None).map_err(|e| RagError::ModelFile {
            path: path.display().to_string(),
            reason: format!("no chat template in the GGUF metadata: {e}"),
        })?;
        let context = context.clamp(64, model.n_ctx_train().max(64));
        Ok(Self {
            model,
            template,
            reference,
            threads: super::threads(threads),
            context,
        })
    }

    /// The token ids of `text` read as plain text (no special tokens added or parsed).
    pub fn token_ids(&self, text: &str) -> Vec<i32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .iter()
            .map(|t| t.0)
            .collect()
    }

    /// The text of `ids` (special tokens as text).
    pub fn detokenize(&self, ids: &[i32]) -> String {
        let vocab = self.model.vocab();
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| vocab.token_to_piece(llama_cpp_2::token::LlamaToken(id), true, None))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn sampler(&self, p: &GenParams) -> LlamaSampler {
        let mut chain = Vec::new();
        if p.frequency_penalty != 0.0 {
            chain.push(LlamaSampler::penalties(
                self.model.n_vocab(),
                PENALTY_WINDOW,
                1.0,
                p.frequency_penalty,
                0.0,
            ));
        }
        if p.temperature == 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if p.top_k > 0 {
                chain.push(LlamaSampler::top_k(
                    i32::try_from(p.top_k).unwrap_or(i32::MAX),
                ));
            }
            chain.push(LlamaSampler::top_p(p.top_p, 1));
            chain.push(LlamaSampler::temp(p.temperature));
            chain.push(LlamaSampler::dist(p.seed));
        }
        LlamaSampler::chain_simple(chain)
    }
}

impl Generator for LlamaGenerator {
    fn model(&self) -> &ModelRef {
        &self.reference
    }

    fn context_tokens(&self) -> usize {
        self.context as usize
    }

    fn chat_prompt(&self, messages: &[Message]) -> Result<String, RagError> {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().into(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                RagError::Engine("the question or a document contains a NUL character".into())
            })?;
        self.model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| RagError::Engine(format!("applying the chat template: {e}")))
    }

    fn count_tokens(&self, prompt: &str) -> Result<usize, RagError> {
        Ok(self
            .model
            .vocab()
            .tokenize(prompt.as_bytes(), true, true)
            .len())
    }

    fn generate(
        &mut self,
        prompt: &str,
        p: &GenParams,
        sink: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, RagError> {
        let started = Instant::now();
        let backend = super::backend()?;
        let engine =
            |what: &str, e: &dyn std::fmt::Display| RagError::Engine(format!("{what}: {e}"));
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        let context = self.context as usize;
        if tokens.len() >= context {
            return Err(RagError::QuestionTooLong {
                question_tokens: tokens.len(),
                max_tokens: p.max_tokens,
                context,
            });
        }
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.context))
            .with_n_batch(PREFILL_BATCH as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = self
            .model
            .new_context(backend, params)
            .map_err(|e| engine("generation context", &e))?;
        let mut batch = LlamaBatch::new(PREFILL_BATCH, 1);
        let prefill_start = Instant::now();
        for (b, part) in tokens.chunks(PREFILL_BATCH).enumerate() {
            batch.clear();
            let last_part = (b + 1) * PREFILL_BATCH >= tokens.len();
            for (j, t) in part.iter().enumerate() {
                let pos = i32::try_from(b * PREFILL_BATCH + j).unwrap_or(i32::MAX);
                batch
                    .add(*t, pos, &[0], last_part && j + 1 == part.len())
                    .map_err(|e| engine("prompt batch", &e))?;
            }
            ctx.decode(&mut batch).map_err(|e| engine("prefill", &e))?;
        }
        let prefill_secs = prefill_start.elapsed().as_secs_f64();

        let mut sampler = self.sampler(p);
        let mut bytes = Vec::new();
        let mut text_len = 0usize; // valid UTF-8 prefix of `bytes`
        let mut generated = 0usize;
        let mut first_token_secs = 0.0;
        let mut decode_start = Instant::now();
        let mut pos = tokens.len();
        let finish = loop {
            if generated == p.max_tokens || pos >= context {
                break Finish::Length;
            }
            let token = sampler.sample(&ctx, batch.n_tokens() - 1);
            if generated == 0 {
                first_token_secs = started.elapsed().as_secs_f64();
                decode_start = Instant::now();
            }
            if vocab.is_eog(token) {
                break Finish::Stop;
            }
            bytes.extend(vocab.token_to_piece(token, false, None));
            text_len = match std::str::from_utf8(&bytes) {
                Ok(_) => bytes.len(),
                Err(e) => e.valid_up_to(),
            };
            generated += 1;
            if generated.is_multiple_of(p.stream_every) {
                let so_far = String::from_utf8_lossy(&bytes[..text_len]);
                if !sink(so_far.trim_start()) {
                    return Err(RagError::Stopped("generation stopped by its caller".into()));
                }
            }
            batch.clear();
            batch
                .add(token, i32::try_from(pos).unwrap_or(i32::MAX), &[0], true)
                .map_err(|e| engine("token batch", &e))?;
            pos += 1;
            ctx.decode(&mut batch).map_err(|e| engine("decode", &e))?;
        };
        let decode_secs = if generated > 0 {
            decode_start.elapsed().as_secs_f64()
        } else {
            0.0
        };
        // A token sequence cut mid-character at the limit ends at the last whole character.
        let text = String::from_utf8_lossy(&bytes[..text_len]).into_owned();
        sink(text.trim_start());
        Ok(Generation {
            text,
            prompt_tokens: tokens.len(),
            completion_tokens: generated,
            finish,
            prefill_secs,
            first_token_secs,
            decode_secs,
        })
    }
}
