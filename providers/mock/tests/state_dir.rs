//! Issue 16, fault 6: a `state_dir` so long that a VM's secure-processor socket would not fit a
//! Unix socket path (`sun_path`, 108 bytes) is refused when the provider starts, with the length
//! allowed, instead of a daemon that looks ready and fails every job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use cdvm_provider_api::host::vm_dir::{check_socket_path_fits, MAX_SOCKET_PATH};
use cdvm_provider_api::ProviderError;
use cdvm_provider_mock::{ProcessProvider, ProcessProviderConfig};

fn provider(state_dir: PathBuf) -> Result<ProcessProvider, ProviderError> {
    ProcessProvider::new(ProcessProviderConfig {
        state_dir,
        agent_binary: PathBuf::from("/bin/true"),
        platform: Default::default(),
        models_dir: None,
        inference_threads: None,
    })
}

/// `base` padded with a folder name so the whole state path is `len` bytes.
fn state_of_len(base: &Path, len: usize) -> PathBuf {
    let pad = len - base.as_os_str().len() - 1;
    base.join("s".repeat(pad))
}

#[test]
fn a_state_dir_whose_sockets_would_not_fit_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // `<state>/vms/proc-<16 hex>/sp.sock` adds 34 bytes: the longest state_dir is 73 bytes.
    let fits = state_of_len(dir.path(), MAX_SOCKET_PATH - 34);
    check_socket_path_fits(&fits, "proc").unwrap();
    provider(fits).expect("a state_dir at the limit works");
    let too_long = state_of_len(dir.path(), MAX_SOCKET_PATH - 33);
    let err = provider(too_long.clone()).expect_err("one byte more is refused");
    let text = err.to_string();
    assert!(matches!(err, ProviderError::InvalidSpec { .. }), "{err:?}");
    assert!(
        text.contains("too long") && text.contains("at most 73 bytes"),
        "{text}"
    );
    // Nothing was created for the refused one.
    assert!(!too_long.exists());
}
