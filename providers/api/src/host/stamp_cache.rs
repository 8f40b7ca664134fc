//! A value computed from files (a launch measurement) and kept while the files stay the same:
//! hashing a guest image or agent on every launch took about a second each, on the launching
//! task, and serialised concurrent launches (issue 16, fault 7). Files are told apart by their
//! identity as the file system sees it (device, inode, size, modification time), so a swapped
//! or rewritten file is hashed again; the computation runs on a blocking thread.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::ProviderError;

/// A file's identity: a change to any field means the content may have changed.
type Stamp = (PathBuf, u64, u64, u64, i64, i64);

fn stamps(files: &[PathBuf]) -> std::io::Result<Vec<Stamp>> {
    files
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p)?;
            Ok((
                p.clone(),
                m.dev(),
                m.ino(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
            ))
        })
        .collect()
}

/// Values by a caller's key (e.g. the vCPU count a launch digest is for), each valid while its
/// files keep their identity.
#[derive(Debug)]
pub struct StampCache<V> {
    provider: &'static str,
    last: Mutex<HashMap<u64, (Vec<Stamp>, V)>>,
}

impl<V: Clone + Send + 'static> StampCache<V> {
    /// An empty cache for `provider` (named in errors).
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The value for `key` over `files`: cached if no file changed since it was computed, else
    /// `compute()` on a blocking thread, cached only if no file changed while it ran.
    pub async fn get(
        &self,
        key: u64,
        files: Vec<PathBuf>,
        compute: impl FnOnce() -> Result<V, ProviderError> + Send + 'static,
    ) -> Result<V, ProviderError> {
        let failed = |path: &Path, e: std::io::Error| ProviderError::Backend {
            provider: self.provider.into(),
            call: format!("stat {}", path.display()),
            source: Box::new(e),
        };
        let first = files.first().cloned().unwrap_or_default();
        let before = stamps(&files).map_err(|e| failed(&first, e))?;
        if let Some((s, v)) = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            if *s == before {
                return Ok(v.clone());
            }
        }
        let value =
            tokio::task::spawn_blocking(compute)
                .await
                .map_err(|e| ProviderError::Backend {
                    provider: self.provider.into(),
                    call: "measure the image".into(),
                    source: Box::new(e),
                })??;
        let after = stamps(&files).map_err(|e| failed(&first, e))?;
        if after == before {
            self.last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, (after, value.clone()));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn computes_once_per_file_identity() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent");
        std::fs::write(&file, b"one").unwrap();
        let cache = StampCache::new("test");
        let calls = Arc::new(AtomicU32::new(0));
        let get = |key: u64| {
            let calls = Arc::clone(&calls);
            let file = file.clone();
            let files = vec![file.clone()];
            let cache = &cache;
            async move {
                cache
                    .get(key, files, move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok(std::fs::read(&file).unwrap())
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(get(1).await, b"one");
        assert_eq!(get(1).await, b"one");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "cached");
        assert_eq!(get(2).await, b"one");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "another key");
        // A swapped file (new inode, other size): computed again.
        let swapped = dir.path().join("agent.new");
        std::fs::write(&swapped, b"two!").unwrap();
        std::fs::rename(&swapped, &file).unwrap();
        assert_eq!(get(1).await, b"two!");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
