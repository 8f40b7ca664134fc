//! The simulated launch measurement of the process provider's "image": the agent binary and the
//! model directory. Launches take it through a [`StampCache`] (hashed again only when a file
//! changed, off the async threads; issue 16, fault 7).

use std::path::{Path, PathBuf};

use cdvm_attestation::sim;
use cdvm_attestation::Measurement;
use cdvm_provider_api::host::stamp_cache::StampCache;
use cdvm_provider_api::ProviderError;

use crate::NAME;

/// The measurement of `agent` and `models` as they are now, through `cache`.
pub(crate) async fn cached(
    cache: &StampCache<Measurement>,
    agent: &Path,
    models: Option<&Path>,
) -> Result<Measurement, ProviderError> {
    let mut files = vec![agent.to_path_buf()];
    if let Some(dir) = models {
        files.extend(model_files(dir).map_err(|e| ProviderError::Backend {
            provider: NAME.into(),
            call: format!("read model directory {}", dir.display()),
            source: Box::new(e),
        })?);
    }
    let (a, m) = (agent.to_path_buf(), models.map(Path::to_path_buf));
    cache.get(0, files, move || measure(&a, m.as_deref())).await
}

/// The model directory's files, in name order.
fn model_files(models: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(models)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    Ok(names)
}

/// The simulated launch measurement: SHA-384 of the agent binary; with a model directory,
/// SHA-384 of the agent, then of every file in the directory in name order (name, length, bytes),
/// so a changed model changes the measurement as it would change a real image's.
pub(crate) fn measure(agent: &Path, models: Option<&Path>) -> Result<Measurement, ProviderError> {
    let failed = |what: String, e: std::io::Error| ProviderError::Backend {
        provider: NAME.into(),
        call: what,
        source: Box::new(e),
    };
    let bytes = std::fs::read(agent)
        .map_err(|e| failed(format!("read agent binary {}", agent.display()), e))?;
    let Some(models) = models else {
        return Ok(sim::measure_file_bytes(&bytes));
    };
    use sha2::{Digest, Sha384};
    let mut h = Sha384::new();
    h.update(&bytes);
    h.update(b"\ncdvm-process-models/v1\n");
    let names = model_files(models)
        .map_err(|e| failed(format!("read model directory {}", models.display()), e))?;
    for path in names {
        let mut f = std::fs::File::open(&path)
            .map_err(|e| failed(format!("read model file {}", path.display()), e))?;
        let len = f
            .metadata()
            .map_err(|e| failed(format!("read model file {}", path.display()), e))?
            .len();
        h.update(
            path.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.update(b"\n");
        h.update(len.to_be_bytes());
        std::io::copy(&mut f, &mut HashWriter(&mut h))
            .map_err(|e| failed(format!("read model file {}", path.display()), e))?;
    }
    Ok(Measurement(h.finalize().into()))
}

/// Feeds `std::io::copy` into a hasher.
struct HashWriter<'a>(&'a mut sha2::Sha384);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
