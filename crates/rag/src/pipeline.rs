//! The whole job: chunk, embed, rank, fit the prompt, generate, cite.

use std::time::Instant;

use cdvm_protocol::rag::{Citation, RagAnswer, RagParams, Usage};

use crate::chunk::{chunk, MAX_CHUNKS};
use crate::document::{Document, MAX_DOCUMENTS};
use crate::engine::{Embedder, GenParams, Generator};
use crate::error::RagError;
use crate::prompt::{self, Passage};
use crate::retrieve::top_k;

/// The job's documents, in the order received.
#[derive(Debug, Default)]
pub struct Corpus {
    docs: Vec<Document>,
}

impl Corpus {
    /// An empty corpus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a document; refuses one past [`MAX_DOCUMENTS`].
    pub fn push(&mut self, doc: Document) -> Result<(), RagError> {
        if self.docs.len() >= MAX_DOCUMENTS {
            return Err(RagError::TooManyDocuments {
                count: self.docs.len() + 1,
                max: MAX_DOCUMENTS,
            });
        }
        self.docs.push(doc);
        Ok(())
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

/// Where the time went (for the benchmark and the guest log; holds no content).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Chunks embedded (the question not counted).
    pub chunks: usize,
    /// Seconds embedding the chunks.
    pub embed_secs: f64,
    /// Seconds for the prompt's prefill.
    pub prefill_secs: f64,
    /// Seconds from the start of generation to the first token.
    pub first_token_secs: f64,
    /// Seconds generating after the first token.
    pub decode_secs: f64,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// Answers `question` from `corpus`. `on_partial` gets the answer so far every `stream_every`
/// tokens and may stop generation by returning `false`.
pub fn answer(
    corpus: &Corpus,
    question: &str,
    params: &RagParams,
    embedder: &mut dyn Embedder,
    generator: &mut dyn Generator,
    stream_every: usize,
    on_partial: &mut dyn FnMut(&str) -> bool,
) -> Result<(RagAnswer, Stats), RagError> {
    if let Some(asked) = &params.model {
        if asked != &generator.model().name {
            return Err(RagError::UnknownModel {
                asked: asked.clone(),
                available: generator.model().name.clone(),
            });
        }
    }
    // (document index, chunk index in the document, text)
    let mut chunks: Vec<(usize, u32, &str)> = Vec::new();
    for (d, doc) in corpus.docs.iter().enumerate() {
        for (i, text) in chunk(
            &doc.text,
            params.chunk_words as usize,
            params.overlap_words as usize,
        )
        .into_iter()
        .enumerate()
        {
            if chunks.len() == MAX_CHUNKS {
                return Err(RagError::TooManyChunks {
                    chunks: count_chunks(corpus, params),
                    max: MAX_CHUNKS,
                });
            }
            chunks.push((d, u32::try_from(i).unwrap_or(u32::MAX), text));
        }
    }
    if chunks.is_empty() {
        return Err(RagError::NoText);
    }
    let mut stats = Stats {
        chunks: chunks.len(),
        ..Stats::default()
    };

    let started = Instant::now();
    let texts: Vec<&str> = chunks.iter().map(|c| c.2).collect();
    let vectors = embedder.embed(&texts)?;
    if vectors.len() != chunks.len() {
        return Err(RagError::Engine(format!(
            "the embedder returned {} vectors for {} chunks",
            vectors.len(),
            chunks.len()
        )));
    }
    stats.embed_secs = started.elapsed().as_secs_f64();
    let query = embedder
        .embed(&[question])?
        .pop()
        .ok_or_else(|| RagError::Engine("the embedder returned no vector".into()))?;

    let ranked = top_k(&query, &vectors, params.retrieve as usize);
    let passages: Vec<Passage<'_>> = ranked
        .iter()
        .map(|&(i, _)| Passage {
            document: &corpus.docs[chunks[i].0].name,
            text: chunks[i].2,
        })
        .collect();
    let (prompt, used, _) =
        prompt::fit(generator, question, &passages, params.max_tokens as usize)?;

    let gen = generator.generate(
        &prompt,
        &GenParams {
            max_tokens: params.max_tokens as usize,
            temperature: params.temperature,
            top_k: params.top_k,
            top_p: params.top_p,
            frequency_penalty: params.frequency_penalty,
            seed: params.seed,
            stream_every: stream_every.max(1),
        },
        on_partial,
    )?;
    stats.prefill_secs = gen.prefill_secs;
    stats.first_token_secs = gen.first_token_secs;
    stats.decode_secs = gen.decode_secs;
    stats.prompt_tokens = gen.prompt_tokens;
    stats.completion_tokens = gen.completion_tokens;

    let citations = ranked[..used]
        .iter()
        .map(|&(i, similarity)| Citation {
            document: corpus.docs[chunks[i].0].name.clone(),
            chunk: chunks[i].1,
            similarity,
            text: chunks[i].2.to_owned(),
        })
        .collect();
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let answer = RagAnswer {
        answer: gen.text.trim().to_owned(),
        citations,
        model: generator.model().clone(),
        embedder: embedder.model().clone(),
        usage: Usage {
            documents: to_u32(corpus.len()),
            chunks: to_u32(chunks.len()),
            prompt_tokens: to_u32(gen.prompt_tokens),
            completion_tokens: to_u32(gen.completion_tokens),
        },
        finish: gen.finish,
    };
    Ok((answer, stats))
}

/// All chunks the corpus would make (for the error message only).
fn count_chunks(corpus: &Corpus, params: &RagParams) -> usize {
    corpus
        .docs
        .iter()
        .map(|d| {
            chunk(
                &d.text,
                params.chunk_words as usize,
                params.overlap_words as usize,
            )
            .len()
        })
        .sum()
}
