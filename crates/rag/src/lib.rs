//! Retrieval-augmented generation over one job's documents, run inside the attested guest
//! (docs/rag.md): documents are read ([`document`]), split into overlapping chunks ([`chunk`]),
//! embedded and ranked by cosine similarity to the question ([`retrieve`]); the best passages that
//! fit the model's context go into a prompt built with the model's own chat template ([`prompt`]),
//! and the answer is generated, streamed to a callback as it grows ([`pipeline`]).
//!
//! The models sit behind two seams, [`Embedder`] and [`Generator`]; the `llama` feature provides
//! both on llama.cpp ([`llama`]). Nothing here does I/O beyond reading model files, and nothing
//! logs document text, questions or answers.
#![deny(missing_docs)]

pub mod chunk;
pub mod document;
mod engine;
mod error;
mod html;
pub mod models;
pub mod pipeline;
pub mod prompt;
pub mod retrieve;

#[cfg(feature = "llama")]
pub mod llama;

pub use engine::{Embedder, GenParams, Generation, Generator, Message, Role};
pub use error::RagError;
pub use pipeline::{answer, Corpus, Stats};
