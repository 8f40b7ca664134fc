//! The two seams between the RAG pipeline and an inference stack.

use cdvm_protocol::rag::{Finish, ModelRef};

use crate::error::RagError;

/// Turns text into a vector; similar meanings give vectors with a high cosine.
pub trait Embedder {
    /// The model, as announced.
    fn model(&self) -> &ModelRef;
    /// Embeds each text (one vector per text, in order). A text longer than the model reads is
    /// truncated to its first tokens.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, RagError>;
}

/// Who says a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions.
    System,
    /// The question and its passages.
    User,
}

impl Role {
    /// The role's name in chat templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
        }
    }
}

/// One chat message.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Message({}, {} bytes)",
            self.role.as_str(),
            self.content.len()
        )
    }
}

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// 0: greedy.
    pub temperature: f32,
    /// Top-k (0: off).
    pub top_k: u32,
    /// Nucleus mass.
    pub top_p: f32,
    /// Frequency penalty (0: off).
    pub frequency_penalty: f32,
    /// Sampling seed.
    pub seed: u32,
    /// Call the sink at most every this many tokens (and at the end).
    pub stream_every: usize,
}

/// What generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The text.
    pub text: String,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Why it stopped.
    pub finish: Finish,
    /// Seconds to evaluate the prompt (prefill).
    pub prefill_secs: f64,
    /// Seconds from the start to the first generated token.
    pub first_token_secs: f64,
    /// Seconds spent generating after the first token.
    pub decode_secs: f64,
}

/// Writes text with a chat model.
pub trait Generator {
    /// The model, as announced.
    fn model(&self) -> &ModelRef;
    /// The context length, in tokens, that prompt and answer share.
    fn context_tokens(&self) -> usize;
    /// The prompt for `messages`, rendered with the model's own chat template, ending where the
    /// assistant's answer starts.
    fn chat_prompt(&self, messages: &[Message]) -> Result<String, RagError>;
    /// Tokens in a rendered prompt (special tokens of the template counted as the model sees them).
    fn count_tokens(&self, prompt: &str) -> Result<usize, RagError>;
    /// Generates after `prompt`; calls `sink` with the whole text so far every
    /// `params.stream_every` tokens. `sink` returning `false` stops generation (time limit).
    fn generate(
        &mut self,
        prompt: &str,
        params: &GenParams,
        sink: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, RagError>;
}
