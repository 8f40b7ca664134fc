//! Crash points for the restart tests (issue 16): with `CDVM_FAILPOINT=<name>` in its
//! environment the daemon aborts (as a SIGKILL would end it, no cleanup) when it reaches the named
//! point, so a test can crash it exactly between a stored state and the side effect after it.
//! Inert unless the variable is set; its value is logged at start.

use std::sync::OnceLock;

/// The environment variable.
pub const ENV: &str = "CDVM_FAILPOINT";

/// The points, in the order a job meets them.
pub mod points {
    /// After the guest's result arrived, before the job's end is stored (issue 16, fault 3).
    pub const AFTER_GUEST_RESULT: &str = "after-guest-result";
    /// After a job's end and its owed feedback are stored, before anything is published (fault 2).
    pub const AFTER_END_RECORDED: &str = "after-end-recorded";
}

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// Logs an armed failpoint (once, at start).
pub fn announce() {
    if let Some(name) = armed() {
        tracing::warn!(
            failpoint = name,
            "{ENV} is set: this daemon will abort at that point"
        );
    }
}

/// Aborts the process if `name` is the armed point.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        eprintln!("{ENV}: aborting at {name}");
        std::process::abort();
    }
}
