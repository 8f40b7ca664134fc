//! Refusals off the event loop (issue 16, fault 5): every refused request used to be published
//! and awaited in the loop that also routes guest events, so a flood of cheap refusals (requests
//! from fresh keys) delayed real jobs by seconds. Now the loop only queues a refusal; one task
//! publishes them under a budget (a token bucket of `limits.refusals_per_second`), and a refusal
//! beyond the budget or the queue is dropped silently and counted, the count logged every
//! [`REPORT_EVERY`] while it grows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdvm_protocol::nostr::Event;
use cdvm_protocol::FeedbackStatus;
use tokio::sync::mpsc;

use crate::runtime::Shared;

/// How many refusals may wait to be published.
pub const QUEUE: usize = 256;
/// How often a growing drop count is logged.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// A token bucket: `rate` tokens a second, at most `rate` saved up (a one-second burst).
#[derive(Debug)]
pub struct Budget {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Budget {
    /// A full bucket of `per_second` tokens at `now`.
    pub fn new(per_second: u32, now: Instant) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            tokens: rate,
            at: now,
        }
    }

    /// Takes a token at `now` if one is there.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The queue the event loop hands refusals to, and the drop counter.
#[derive(Debug, Clone)]
pub struct Refusals {
    tx: mpsc::Sender<(Event, String)>,
    dropped: Arc<AtomicU64>,
}

impl Refusals {
    /// Starts the publishing task for `shared` and returns the queue.
    pub(crate) fn start(shared: Arc<Shared>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let per_second = shared.cfg.limits.refusals_per_second;
        tokio::spawn(publish(shared, rx, Arc::clone(&dropped), per_second));
        Self { tx, dropped }
    }

    /// Queues a refusal of `request` with `reason`; never waits. A full queue drops it.
    pub fn submit(&self, request: Event, reason: String) {
        if self.tx.try_send((request, reason)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn publish(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<(Event, String)>,
    dropped: Arc<AtomicU64>,
    per_second: u32,
) {
    let mut budget = Budget::new(per_second, Instant::now());
    let mut reported = 0;
    let mut last_report = Instant::now();
    while let Some((request, reason)) = rx.recv().await {
        if budget.take(Instant::now()) {
            shared
                .feedback(request.id, request.pubkey, FeedbackStatus::Error, &reason)
                .await;
        } else {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
        let now = dropped.load(Ordering::Relaxed);
        if now != reported && last_report.elapsed() >= REPORT_EVERY {
            tracing::warn!(
                dropped = now,
                "refusals dropped unanswered (over limits.refusals_per_second or the queue)"
            );
            reported = now;
            last_report = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_one_second_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(20, t0);
        let burst = (0..100).filter(|_| b.take(t0)).count();
        assert_eq!(burst, 20);
        // Half a second later: ten more.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| b.take(t1)).count(), 10);
        // Idle for a minute: still at most one second's worth.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| b.take(t2)).count(), 20);
        // A zero budget refuses everything (refusals never published).
        let mut none = Budget::new(0, t0);
        assert!(!none.take(t2));
    }
}
