//! Retries with exponential backoff and full jitter, for cloud calls that fail with throttling or
//! a 5xx. Behind the `retry` feature.
//!
//! Full jitter (a uniformly random wait below the exponential cap) spreads the retries of many
//! orchestrators hitting the same throttled API, as AWS's architecture blog recommends.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How often and how long to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// Cap of the first wait; doubles each attempt.
    pub base: Duration,
    /// Upper bound of any single wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            base: Duration::from_millis(200),
            max: Duration::from_secs(20),
        }
    }
}

/// A retry pace as a config file gives it (`retry: { attempts, base_ms, max_ms }`); the cloud
/// backends' configs take it for tests that must not wait seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Cap of the first backoff, in milliseconds.
    pub base_ms: u64,
    /// Upper bound of any wait (backoff, `Retry-After`, operation polling), in milliseconds.
    pub max_ms: u64,
}

impl From<RetrySettings> for RetryPolicy {
    fn from(s: RetrySettings) -> Self {
        RetryPolicy {
            attempts: s.attempts,
            base: Duration::from_millis(s.base_ms),
            max: Duration::from_millis(s.max_ms),
        }
    }
}

/// What to do with a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Give up: the error is final (bad request, not found, quota, …).
    No,
    /// Retry after the backoff.
    Backoff,
    /// Retry, waiting at least this long (the server's `Retry-After`).
    After(Duration),
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based): uniform in `[0, min(max, base·2^(attempt-1))]`,
    /// raised to the server's minimum if it gave one.
    pub fn wait(&self, attempt: u32, server_minimum: Option<Duration>) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let jittered = cap.mul_f64(rand::thread_rng().gen_range(0.0..=1.0));
        match server_minimum {
            Some(min) => jittered.max(min.min(self.max)),
            None => jittered,
        }
    }

    /// Runs `op` until it succeeds, `classify` says [`Retry::No`], or the attempts are spent;
    /// returns the last error then. `call` names the operation in the logs.
    pub async fn run<T, E, F, Fut>(
        &self,
        call: &str,
        mut op: F,
        classify: impl Fn(&E) -> Retry,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(e) => {
                    let decision = classify(&e);
                    if decision == Retry::No || attempt >= self.attempts.max(1) {
                        return Err(e);
                    }
                    let wait = self.wait(
                        attempt,
                        match decision {
                            Retry::After(d) => Some(d),
                            _ => None,
                        },
                    );
                    tracing::warn!(call, attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        }
    }

    #[test]
    fn waits_stay_under_the_exponential_cap() {
        let p = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..200 {
            assert!(p.wait(1, None) <= Duration::from_millis(100));
            assert!(p.wait(3, None) <= Duration::from_millis(400));
            assert!(p.wait(9, None) <= Duration::from_secs(1));
        }
        assert!(p.wait(1, Some(Duration::from_millis(700))) >= Duration::from_millis(700));
        // A server asking for an hour is capped at the policy's maximum.
        assert!(p.wait(1, Some(Duration::from_secs(3600))) <= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn retries_until_success_and_stops_on_final_errors() {
        let calls = AtomicU32::new(0);
        let out: Result<u32, String> = fast()
            .run(
                "flaky",
                || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    if n < 3 {
                        Err(format!("503 #{n}"))
                    } else {
                        Ok(n)
                    }
                },
                |_| Retry::Backoff,
            )
            .await;
        assert_eq!(out, Ok(3));

        let calls = AtomicU32::new(0);
        let out: Result<u32, String> = fast()
            .run(
                "bad request",
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err("400".to_string())
                },
                |_| Retry::No,
            )
            .await;
        assert_eq!(out, Err("400".into()));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a final error is not retried"
        );

        let calls = AtomicU32::new(0);
        let out: Result<u32, String> = fast()
            .run(
                "always throttled",
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err("429".to_string())
                },
                |_| Retry::Backoff,
            )
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4, "attempts are bounded");
    }
}
