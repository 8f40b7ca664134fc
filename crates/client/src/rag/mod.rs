//! The confidential RAG job (kind 5050, docs/protocol.md §5.9) from the user's side: the
//! documents checked before anything is uploaded ([`RagRequest`]), the answer followed as the
//! guest generates it ([`PartialTracker`], [`AnswerDisplay`]), and the final answer read and shown
//! ([`parse_answer`], [`render_answer`], [`write_answer_json`]).

mod answer;
mod documents;
mod partial;

pub use answer::{parse_answer, render_answer, write_answer_json, EXCERPT_CHARS};
pub use documents::RagRequest;
pub use partial::{AnswerDisplay, PartialTracker};
