//! The DVM's secret key file: created with mode 0600 when missing, never logged.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use cdvm_protocol::nostr::Keys;

/// Loads the key, or creates a new one (hex, mode 0600) if the file does not exist.
pub(crate) fn load_or_create(path: &Path) -> std::io::Result<Keys> {
    match std::fs::read_to_string(path) {
        Ok(text) => Keys::parse(text.trim()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} does not hold a valid secret key (hex or nsec)",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let keys = Keys::generate();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            writeln!(f, "{}", keys.secret_key().to_secret_hex())?;
            Ok(keys)
        }
        Err(e) => Err(e),
    }
}
