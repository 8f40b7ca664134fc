//! `cdvm-image inputs …`: the input lock on the command line (scripts/build-image reads the lock
//! only through these commands, never by parsing it).

use std::path::PathBuf;

use anyhow::Context;
use cdvm_image::inputs::Places;
use cdvm_image::lock::{InputId, Lock};
use clap::Subcommand;

/// What `cdvm-image inputs` does.
#[derive(Debug, Subcommand)]
pub enum InputsCommand {
    /// Check every input against the lock: the Debian packages in the cache, the committed
    /// firmware, models.json and the model files. Lists what is missing or different; fails
    /// unless all match.
    Check,
    /// Print where the build reads an input (the cached .deb, the committed one, the model
    /// directory) after checking it against the lock.
    Path {
        /// kernel, efi-stub, ovmf, ovmf-amdsev or models.
        id: String,
        /// Print the path even when the file is missing or differs (where to fetch it to).
        #[arg(long)]
        unchecked: bool,
    },
    /// List the Debian packages to fetch, one per line: id suite package version sha256 path
    /// follows (`-` when none).
    Debian,
    /// Re-pin one entry and rewrite the lock (only that entry's lines change): a Debian package
    /// takes --version and --sha256 (and --package when its name changes); ovmf-amdsev and
    /// models are re-hashed from the file (--path, default the pinned one).
    Update {
        /// The entry.
        #[arg(long)]
        id: String,
        /// The new package name (Debian entries).
        #[arg(long)]
        package: Option<String>,
        /// The new version (Debian entries).
        #[arg(long)]
        version: Option<String>,
        /// The new SHA-256 (Debian entries: what apt's signed index gives).
        #[arg(long)]
        sha256: Option<String>,
        /// A file to pin, relative to the repository root (ovmf-amdsev, models).
        #[arg(long)]
        path: Option<PathBuf>,
    },
}

pub fn load_lock(path: &std::path::Path) -> anyhow::Result<Lock> {
    Ok(Lock::load(path)
        .with_context(|| format!("reading the input lock {}", path.display()))?
        .0)
}

pub fn inputs(lock_path: PathBuf, places: Places, command: InputsCommand) -> anyhow::Result<()> {
    let lock = load_lock(&lock_path)?;
    match command {
        InputsCommand::Check => {
            let checked = cdvm_image::inputs::check_all(&lock, &places);
            for c in &checked {
                let state = match (&c.result, c.missing) {
                    (Ok(()), _) => "ok",
                    (Err(_), true) => "MISSING",
                    (Err(_), false) => "DIFFERS",
                };
                println!("{:<13} {:<8} {}", c.id.as_str(), state, c.path.display());
                if let Err(e) = &c.result {
                    println!("             {e}");
                }
            }
            let bad: Vec<&str> = checked
                .iter()
                .filter(|c| c.result.is_err())
                .map(|c| c.id.as_str())
                .collect();
            if !bad.is_empty() {
                anyhow::bail!(
                    "{} input(s) not as {} pins: {}",
                    bad.len(),
                    lock_path.display(),
                    bad.join(", ")
                );
            }
        }
        InputsCommand::Path { id, unchecked } => {
            let id = InputId::parse(&id)?;
            let path = places.path(&lock, id);
            if !unchecked {
                match id {
                    InputId::Models => cdvm_image::inputs::verify_models(&lock, &path)?,
                    _ => drop(cdvm_image::inputs::verify_deb(&lock, id, &path)?),
                }
            }
            println!("{}", path.display());
        }
        InputsCommand::Debian => {
            for id in InputId::DEBIAN {
                let p = lock.debian(id)?;
                println!(
                    "{id} {} {} {} {} {} {}",
                    p.suite,
                    p.package,
                    p.version,
                    p.sha256,
                    places.path(&lock, id).display(),
                    p.follows.as_deref().unwrap_or("-")
                );
            }
        }
        InputsCommand::Update {
            id,
            package,
            version,
            sha256,
            path,
        } => {
            let id = InputId::parse(&id)?;
            let mut updated = lock.clone();
            updated.update(
                id,
                &cdvm_image::lock::Update {
                    package,
                    version,
                    sha256,
                    path,
                },
                &places.repo,
            )?;
            if updated == lock {
                println!(
                    "[cdvm-image] input {id}: unchanged in {}",
                    lock_path.display()
                );
            } else {
                std::fs::write(&lock_path, updated.to_text())
                    .with_context(|| format!("writing {}", lock_path.display()))?;
                println!(
                    "[cdvm-image] input {id}: re-pinned in {}: {}",
                    lock_path.display(),
                    serde_json::to_string(&entry(&updated, id))?
                );
            }
        }
    }
    Ok(())
}

/// One entry of the lock, as JSON (for the update's report).
fn entry(lock: &Lock, id: InputId) -> serde_json::Value {
    let all = serde_json::to_value(lock).unwrap_or_default();
    all.get(id.as_str()).cloned().unwrap_or_default()
}
