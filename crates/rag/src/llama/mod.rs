//! [`Embedder`](crate::Embedder) and [`Generator`](crate::Generator) on llama.cpp (through the
//! `llama-cpp-2` crate): one static library, exact GGUF tokenizers and chat templates, CPU by
//! default and CUDA with the `cuda` feature (docs/rag.md, "Why llama.cpp").

mod embed;
mod generate;

use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;

use crate::error::RagError;

pub use embed::LlamaEmbedder;
pub use generate::LlamaGenerator;
/// The llama.cpp binding this crate is built on, for benchmarks that measure llama.cpp itself.
pub use llama_cpp_2;

/// llama.cpp's process-wide backend: initialised once, its own logging silenced (it writes to
/// stderr, which in the guest is the host-readable console).
pub fn backend() -> Result<&'static LlamaBackend, RagError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(|e| RagError::Engine(format!("initialising llama.cpp: {e}")))
}

/// Whether this build offloads to a GPU (the `cuda` feature, and a device present).
pub fn gpu_offload() -> bool {
    cfg!(feature = "cuda") && backend().map(|b| b.supports_gpu_offload()).unwrap_or(false)
}

/// Loads a GGUF file (memory-mapped), all layers on the GPU when [`gpu_offload`].
fn load(path: &Path) -> Result<LlamaModel, RagError> {
    let backend = backend()?;
    let layers = if gpu_offload() { 999 } else { 0 };
    let params = LlamaModelParams::default().with_n_gpu_layers(layers);
    LlamaModel::load_from_file(backend, path, &params).map_err(|e| RagError::ModelFile {
        path: path.display().to_string(),
        reason: format!("llama.cpp could not load it: {e}"),
    })
}

/// Threads as llama.cpp takes them.
fn threads(n: usize) -> i32 {
    i32::try_from(n.max(1)).unwrap_or(i32::MAX)
}
