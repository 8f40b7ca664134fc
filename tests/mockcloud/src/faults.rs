//! Fault injection: per-request draws from a seeded generator.

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::FaultConfig;

/// A fault to answer a request with instead of serving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A 5xx (500 or 503) in the cloud's error shape.
    ServerError,
    /// The cloud's throttling answer (HTTP 429 with `Retry-After`, or EC2's `RequestLimitExceeded`).
    Throttle,
}

/// The fault injector shared by all emulated clouds.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    rng: Mutex<StdRng>,
    injected: Mutex<Vec<(String, Fault)>>,
    /// What is left of `config.fail_calls`.
    fail_once: Mutex<Vec<String>>,
}

impl Faults {
    /// An injector drawing from `config`.
    pub fn new(config: FaultConfig) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            fail_once: Mutex::new(config.fail_calls.clone()),
            config,
            injected: Mutex::new(Vec::new()),
        }
    }

    fn draw(&self) -> f64 {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .gen_range(0.0..1.0)
    }

    /// Whether to fail this API call (`call` names it in the injection log).
    pub fn on_call(&self, call: &str) -> Option<Fault> {
        let x = self.draw();
        let fault = if x < self.config.throttle_rate {
            Some(Fault::Throttle)
        } else if x < self.config.throttle_rate + self.config.error_rate {
            Some(Fault::ServerError)
        } else {
            None
        };
        if let Some(f) = fault {
            tracing::info!(call, fault = ?f, "injecting fault");
            self.injected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((call.to_string(), f));
        }
        fault
    }

    /// Whether this call is one of `fail_calls` not failed yet (then it is failed now: the
    /// caller answers a 5xx and does not carry it out).
    pub fn fail_named(&self, call: &str) -> bool {
        let mut left = self.fail_once.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = left.iter().position(|c| c == call) else {
            return false;
        };
        left.remove(i);
        tracing::info!(call, "failing a named call");
        self.injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((call.to_string(), Fault::ServerError));
        true
    }

    /// Whether to acknowledge this delete without doing it.
    pub fn lose_delete(&self) -> bool {
        let lost = self.draw() < self.config.lost_delete_rate;
        if lost {
            tracing::info!("losing a delete");
            self.injected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(("delete".into(), Fault::ServerError));
        }
        lost
    }

    /// How long new instances stay provisioning.
    pub fn provisioning_delay(&self) -> Duration {
        Duration::from_millis(self.config.provisioning_delay_ms)
    }

    /// How many faults have been injected so far (tests assert the faults really happened).
    pub fn injected(&self) -> usize {
        self.injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_honoured_and_seeded() {
        let cfg = FaultConfig {
            seed: 7,
            error_rate: 0.2,
            throttle_rate: 0.1,
            ..FaultConfig::default()
        };
        let a = Faults::new(cfg.clone());
        let draws: Vec<_> = (0..1000).map(|_| a.on_call("x")).collect();
        let errors = draws
            .iter()
            .filter(|f| **f == Some(Fault::ServerError))
            .count();
        let throttles = draws
            .iter()
            .filter(|f| **f == Some(Fault::Throttle))
            .count();
        assert!(
            (150..250).contains(&errors),
            "{errors} errors of 1000 at 20%"
        );
        assert!(
            (60..140).contains(&throttles),
            "{throttles} throttles of 1000 at 10%"
        );
        let b = Faults::new(cfg);
        let replay: Vec<_> = (0..1000).map(|_| b.on_call("x")).collect();
        assert_eq!(draws, replay, "same seed, same faults");
        let named = Faults::new(FaultConfig {
            fail_calls: vec!["A".into(), "A".into(), "B".into()],
            ..FaultConfig::default()
        });
        let fails: Vec<_> = ["A", "B", "A", "A", "B", "C"]
            .iter()
            .map(|c| named.fail_named(c))
            .collect();
        assert_eq!(fails, [true, true, true, false, false, false]);
        assert_eq!(named.injected(), 3);
        let none = Faults::new(FaultConfig::default());
        assert!((0..1000).all(|_| none.on_call("x").is_none() && !none.lose_delete()));
    }
}
