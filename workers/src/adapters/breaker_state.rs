//! What every circuit breaker reports about itself, in one place: its state
//! for its own callers ([`StateReporter::state`]), for operators
//! (`operator::breakers`, which `boxoffice queues` shows), as the
//! `circuit_breaker_state{dependency}` gauge (0 closed, 1 half-open, 2 open),
//! and in the logs when it changes. It is the `failsafe` instrument of each
//! breaker's state machine, since the machine does not expose its state.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use failsafe::Instrument;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Rejecting calls. Stays `Open` (as reported here) until the first call
    /// after the open delay finds it half-open: failsafe moves on lazily.
    Open,
    /// Letting calls through to see whether the dependency is back.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The value of the `circuit_breaker_state` gauge.
    fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }

    fn code(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => BreakerState::HalfOpen,
            2 => BreakerState::Open,
            _ => BreakerState::Closed,
        }
    }
}

/// The state of one dependency's breaker. Clones share it.
#[derive(Debug, Clone)]
pub struct StateReporter {
    dependency: Arc<str>,
    state: Arc<AtomicU8>,
}

impl StateReporter {
    /// A new breaker starts closed, and says so at once: operators and the
    /// gauge see every dependency a process guards, not only those that failed.
    pub fn new(dependency: &str) -> Self {
        let reporter = StateReporter {
            dependency: Arc::from(dependency),
            state: Arc::new(AtomicU8::new(BreakerState::Closed.code())),
        };
        reporter.set(BreakerState::Closed);
        reporter
    }

    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::SeqCst))
    }

    fn set(&self, state: BreakerState) {
        let previous = BreakerState::from_u8(self.state.swap(state.code(), Ordering::SeqCst));
        crate::operator::breakers::record(&self.dependency, state.as_str());
        metrics::gauge!("circuit_breaker_state", "dependency" => self.dependency.to_string())
            .set(state.gauge());
        if previous != state {
            match state {
                BreakerState::Open => {
                    tracing::warn!(dependency = %self.dependency, "circuit breaker opened")
                }
                _ => tracing::info!(
                    dependency = %self.dependency,
                    breaker.state = state.as_str(),
                    "circuit breaker state changed"
                ),
            }
        }
    }
}

impl Instrument for StateReporter {
    fn on_call_rejected(&self) {
        metrics::counter!("circuit_breaker_rejected_total", "dependency" => self.dependency.to_string())
            .increment(1);
    }
    fn on_open(&self) {
        self.set(BreakerState::Open);
    }
    fn on_half_open(&self) {
        self.set(BreakerState::HalfOpen);
    }
    fn on_closed(&self) {
        self.set(BreakerState::Closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::breakers;

    fn reported(dependency: &str) -> Option<&'static str> {
        breakers::snapshot()
            .into_iter()
            .find(|(d, _)| d == dependency)
            .map(|(_, state)| state)
    }

    #[test]
    fn every_transition_reaches_operators_and_the_gauge() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let reporter = StateReporter::new("reporter-test");
            assert_eq!(reporter.state(), BreakerState::Closed);
            assert_eq!(reported("reporter-test"), Some("closed"));
            assert!(
                handle
                    .render()
                    .contains("circuit_breaker_state{dependency=\"reporter-test\"} 0"),
                "{}",
                handle.render()
            );

            for (transition, state, gauge) in [
                (StateReporter::on_open as fn(&StateReporter), "open", 2),
                (StateReporter::on_half_open, "half_open", 1),
                (StateReporter::on_open, "open", 2),
                (StateReporter::on_half_open, "half_open", 1),
                (StateReporter::on_closed, "closed", 0),
            ] {
                transition(&reporter);
                assert_eq!(reporter.state().as_str(), state);
                assert_eq!(reported("reporter-test"), Some(state));
                let line = format!("circuit_breaker_state{{dependency=\"reporter-test\"}} {gauge}");
                assert!(handle.render().contains(&line), "{line} missing");
            }

            reporter.on_call_rejected();
            assert!(
                handle
                    .render()
                    .contains("circuit_breaker_rejected_total{dependency=\"reporter-test\"} 1"),
                "{}",
                handle.render()
            );
        });
    }

    #[test]
    fn clones_report_one_state() {
        let first = StateReporter::new("reporter-clone-test");
        let second = first.clone();
        first.on_open();
        assert_eq!(second.state(), BreakerState::Open);
        assert_eq!(reported("reporter-clone-test"), Some("open"));
    }
}
