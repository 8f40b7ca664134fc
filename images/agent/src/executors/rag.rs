//! Job kind 5050: answers a question from the user's documents with the image's models
//! (docs/rag.md). Documents come inline (one), or as a blob (one, or a folder as tar); the answer
//! grows in `partial` feedback and ends as JSON ([`cdvm_protocol::rag::RagAnswer`]).

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use cdvm_protocol::{kinds, InputBody};
use cdvm_rag::document::{self, Format};
use cdvm_rag::llama::{LlamaEmbedder, LlamaGenerator};
use cdvm_rag::models::{verified_path, Manifest};
use cdvm_rag::{Corpus, RagError};

use super::{input_type, media, DataSource, ExecError, Executor, Output, Partial};

/// Tokens between two partial answers.
const STREAM_EVERY: usize = 8;
/// Tokens the embedder reads of a chunk (all-MiniLM-L6-v2's training length).
const EMBED_TOKENS: usize = 256;

/// The RAG executor.
#[derive(Debug)]
pub struct Rag {
    models_dir: PathBuf,
    threads: usize,
}

impl Rag {
    /// An executor with the models in `models_dir`, inferring on `threads` threads.
    pub fn new(models_dir: PathBuf, threads: usize) -> Self {
        Self {
            models_dir,
            threads: threads.max(1),
        }
    }
}

fn exec_error(e: RagError) -> ExecError {
    match e {
        RagError::Unsupported { .. }
        | RagError::NoText
        | RagError::TooManyChunks { .. }
        | RagError::TooManyDocuments { .. }
        | RagError::QuestionTooLong { .. }
        | RagError::UnknownModel { .. } => ExecError::BadInput(e.to_string()),
        RagError::Stopped(_) => ExecError::TimeLimit(e.to_string()),
        RagError::ModelFile { .. } | RagError::Manifest { .. } | RagError::Engine(_) => {
            ExecError::Internal(e.to_string())
        }
    }
}

/// Reads the documents: a tar is a folder (every file by its extension), anything else is one
/// document of its media type.
fn read_corpus(data: DataSource<'_>, name: Option<&str>) -> Result<Corpus, ExecError> {
    let DataSource {
        file_type,
        mut reader,
    } = data;
    let mut corpus = Corpus::new();
    if file_type == media::TAR {
        super::for_each_file(&mut reader, |path, file| {
            let format = Format::from_path(path).map_err(exec_error)?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(super::read_error)?;
            corpus
                .push(document::read(path, format, bytes).map_err(exec_error)?)
                .map_err(exec_error)
        })?;
    } else {
        let name = name.unwrap_or("document");
        let format = Format::from_media_type(&file_type).ok_or_else(|| {
            exec_error(RagError::Unsupported {
                document: name.into(),
                reason: format!("media type `{file_type}` is not read"),
            })
        })?;
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(super::read_error)?;
        corpus
            .push(document::read(name, format, bytes).map_err(exec_error)?)
            .map_err(exec_error)?;
    }
    Ok(corpus)
}

impl Executor for Rag {
    fn kind(&self) -> u16 {
        kinds::TEXT_GENERATION
    }

    fn run(
        &self,
        input: &InputBody,
        data: DataSource<'_>,
        partial: &Partial,
    ) -> Result<Output, ExecError> {
        let InputBody::Rag {
            question,
            params,
            name,
            ..
        } = input
        else {
            return Err(ExecError::WrongInput {
                kind: self.kind(),
                got: input_type(input),
            });
        };
        // The documents first: a bad document is the user's error, found before any model loads.
        let corpus = read_corpus(data, name.as_deref())?;
        let manifest = Manifest::load(&self.models_dir).map_err(exec_error)?;
        let gen_entry = manifest
            .generator(params.model.as_deref())
            .map_err(exec_error)?;
        let emb_entry = manifest.embedder().map_err(exec_error)?;
        let started = Instant::now();
        // Each file's hash is checked before llama.cpp reads it: fail closed on a swapped model.
        let gen_path = verified_path(&self.models_dir, gen_entry).map_err(exec_error)?;
        let emb_path = verified_path(&self.models_dir, emb_entry).map_err(exec_error)?;
        let mut embedder =
            LlamaEmbedder::load(&emb_path, emb_entry.reference(), self.threads, EMBED_TOKENS)
                .map_err(exec_error)?;
        let mut generator = LlamaGenerator::load(
            &gen_path,
            gen_entry.reference(),
            self.threads,
            gen_entry.context_length,
        )
        .map_err(exec_error)?;
        let load_secs = started.elapsed().as_secs_f64();
        let (answer, stats) = cdvm_rag::answer(
            &corpus,
            question,
            params,
            &mut embedder,
            &mut generator,
            STREAM_EVERY,
            &mut |text| {
                partial.send(text);
                true
            },
        )
        .map_err(exec_error)?;
        // Counts and times only: never the documents, question or answer.
        tracing::info!(
            model = %gen_entry.name,
            gpu = cdvm_rag::llama::gpu_offload(),
            threads = self.threads,
            documents = corpus.len(),
            chunks = stats.chunks,
            load_secs,
            embed_secs = stats.embed_secs,
            prefill_secs = stats.prefill_secs,
            first_token_secs = stats.first_token_secs,
            prompt_tokens = stats.prompt_tokens,
            completion_tokens = stats.completion_tokens,
            decode_secs = stats.decode_secs,
            "rag job done"
        );
        let body = serde_json::to_string(&answer)
            .map_err(|e| ExecError::Internal(format!("encoding the answer: {e}")))?;
        Ok(Output {
            media_type: media::JSON,
            body,
        })
    }
}
