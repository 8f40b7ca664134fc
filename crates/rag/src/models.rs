//! The image's model manifest (`models.json` beside the model files): which models the image
//! carries, their file hashes, licences and context lengths. The manifest is part of the measured
//! image, so the attestation covers it; the loader still checks each file's hash before use, so a
//! file swapped after measurement (or a wrong model directory in development) fails closed.

use std::io::Read;
use std::path::{Path, PathBuf};

use cdvm_protocol::rag::ModelRef;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::RagError;

/// The manifest's file name in a model directory.
pub const MANIFEST: &str = "models.json";

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelRole {
    /// A chat model that writes answers.
    Generator,
    /// A sentence-embedding model that ranks passages.
    Embedder,
}

/// One model file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Name used in job params and the announcement.
    pub name: String,
    /// Its role.
    pub role: ModelRole,
    /// File name in the model directory.
    pub file: String,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Licence (SPDX identifier).
    pub license: String,
    /// Context length in tokens that a job may use.
    pub context_length: u32,
    /// What a price is counted in (the announcement shows it): e.g. `generated token`.
    pub price_unit: String,
    /// Where the file comes from (package and its hash), for people.
    pub source: String,
}

impl ModelEntry {
    /// The name and hash, as results and attestations name the model.
    pub fn reference(&self) -> ModelRef {
        ModelRef {
            name: self.name.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

/// The parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version, 1.
    pub v: u32,
    /// The models; the first generator is the default.
    pub models: Vec<ModelEntry>,
}

impl Manifest {
    /// Reads and checks `dir/models.json`: version 1, unique names, one generator and one
    /// embedder at least, hashes of 64 hex digits, plain file names.
    pub fn load(dir: &Path) -> Result<Self, RagError> {
        Self::load_file(&dir.join(MANIFEST))
    }

    /// Reads and checks a manifest file by its own path (the orchestrator's `announce.models`);
    /// the same checks as [`Self::load`].
    pub fn load_file(path: &Path) -> Result<Self, RagError> {
        let bad = |reason: String| RagError::Manifest {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if m.v != 1 {
            return Err(bad(format!("version {}; this agent reads 1", m.v)));
        }
        for (i, e) in m.models.iter().enumerate() {
            if m.models[..i].iter().any(|o| o.name == e.name) {
                return Err(bad(format!("model `{}` listed twice", e.name)));
            }
            if e.sha256.len() != 64
                || !e
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(bad(format!(
                    "model `{}`: sha256 must be 64 lowercase hex digits",
                    e.name
                )));
            }
            if e.file.is_empty() || e.file.contains('/') || e.file.starts_with('.') {
                return Err(bad(format!(
                    "model `{}`: file must be a plain file name",
                    e.name
                )));
            }
        }
        for role in [ModelRole::Generator, ModelRole::Embedder] {
            if !m.models.iter().any(|e| e.role == role) {
                return Err(bad(format!("no {role:?} model")));
            }
        }
        Ok(m)
    }

    /// The models as the attestation's `model` tags name them.
    pub fn references(&self) -> Vec<ModelRef> {
        self.models.iter().map(ModelEntry::reference).collect()
    }

    /// The models as the NIP-89 announcement lists them.
    pub fn announced(&self) -> Vec<cdvm_protocol::rag::AnnouncedModel> {
        self.models
            .iter()
            .map(|e| cdvm_protocol::rag::AnnouncedModel {
                name: e.name.clone(),
                role: match e.role {
                    ModelRole::Generator => "generator",
                    ModelRole::Embedder => "embedder",
                }
                .into(),
                sha256: e.sha256.clone(),
                license: e.license.clone(),
                context_length: e.context_length,
                price_unit: e.price_unit.clone(),
            })
            .collect()
    }

    /// The generator named `name`, or the default (first) one.
    pub fn generator(&self, name: Option<&str>) -> Result<&ModelEntry, RagError> {
        let mut gens = self
            .models
            .iter()
            .filter(|e| e.role == ModelRole::Generator);
        match name {
            None => gens.next().ok_or_else(|| RagError::UnknownModel {
                asked: "(default)".into(),
                available: String::new(),
            }),
            Some(n) => self
                .models
                .iter()
                .find(|e| e.role == ModelRole::Generator && e.name == n)
                .ok_or_else(|| RagError::UnknownModel {
                    asked: n.into(),
                    available: self.names(ModelRole::Generator),
                }),
        }
    }

    /// The (first) embedder.
    pub fn embedder(&self) -> Result<&ModelEntry, RagError> {
        self.models
            .iter()
            .find(|e| e.role == ModelRole::Embedder)
            .ok_or_else(|| RagError::UnknownModel {
                asked: "(embedder)".into(),
                available: String::new(),
            })
    }

    fn names(&self, role: ModelRole) -> String {
        self.models
            .iter()
            .filter(|e| e.role == role)
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The path of `entry` in `dir`, after checking the file's SHA-256 against the manifest.
pub fn verified_path(dir: &Path, entry: &ModelEntry) -> Result<PathBuf, RagError> {
    let path = dir.join(&entry.file);
    let got = sha256_file(&path).map_err(|e| RagError::ModelFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if got != entry.sha256 {
        return Err(RagError::ModelFile {
            path: path.display().to_string(),
            reason: format!("SHA-256 {got}, the manifest says {}", entry.sha256),
        });
    }
    Ok(path)
}

/// SHA-256 of a file, lowercase hex, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(name: &str, role: ModelRole, file: &str, sha: &str) -> ModelEntry {
        ModelEntry {
            name: name.into(),
            role,
            file: file.into(),
            sha256: sha.into(),
            license: "Apache-2.0".into(),
            context_length: 2048,
            price_unit: "generated token".into(),
            source: "test".into(),
        }
    }

    fn write(dir: &Path, m: &Manifest) {
        std::fs::write(dir.join(MANIFEST), serde_json::to_string(m).unwrap()).unwrap();
    }

    #[test]
    fn manifest_checks_and_hash_verification_with_tamper_twin() {
        let dir = tempdir();
        std::fs::write(dir.join("g.gguf"), b"generator bytes").unwrap();
        std::fs::write(dir.join("e.gguf"), b"embedder bytes").unwrap();
        let gsha = sha256_file(&dir.join("g.gguf")).unwrap();
        let esha = sha256_file(&dir.join("e.gguf")).unwrap();
        let m = Manifest {
            v: 1,
            models: vec![
                entry("gen", ModelRole::Generator, "g.gguf", &gsha),
                entry("emb", ModelRole::Embedder, "e.gguf", &esha),
            ],
        };
        write(&dir, &m);
        let loaded = Manifest::load(&dir).unwrap();
        assert_eq!(loaded.generator(None).unwrap().name, "gen");
        assert!(verified_path(&dir, loaded.generator(None).unwrap()).is_ok());
        let e = loaded.generator(Some("gpt-9")).unwrap_err().to_string();
        assert!(e.contains("gpt-9") && e.contains("gen"), "{e}");
        // Tamper twin: one byte of the file changed.
        std::fs::write(dir.join("g.gguf"), b"generator bytez").unwrap();
        let e = verified_path(&dir, loaded.generator(None).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("the manifest says"), "{e}");
        // Bad manifests.
        let mut bad = m.clone();
        bad.models[1].role = ModelRole::Generator;
        write(&dir, &bad);
        assert!(Manifest::load(&dir)
            .unwrap_err()
            .to_string()
            .contains("no Embedder"));
        let mut bad = m.clone();
        bad.models[0].file = "../g.gguf".into();
        write(&dir, &bad);
        assert!(Manifest::load(&dir).is_err());
        let mut bad = m;
        bad.models[0].sha256 = gsha.to_uppercase();
        write(&dir, &bad);
        assert!(Manifest::load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "cdvm-rag-models-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
