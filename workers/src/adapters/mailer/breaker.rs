//! A circuit breaker around a mailer (failsafe; apalis' own is broken, STACK.md
//! item 10). After a run of temporary failures the breaker opens and sends fail
//! at once as retryable, without a connection attempt, so an SMTP outage does
//! not tie up workers in timeouts while the jobs back off. A permanent refusal
//! is an answer from a working server and does not count against it.
//!
//! Its state is reported like the payments breaker's (`breaker_state`): to
//! operators (`boxoffice queues`), as the `circuit_breaker_state` gauge, in logs.

use std::time::Duration;

use failsafe::backoff::{self, EqualJittered};
use failsafe::failure_policy::{ConsecutiveFailures, consecutive_failures};
use failsafe::futures::CircuitBreaker;
use failsafe::{Config, StateMachine};
use futures::future::BoxFuture;

use super::{MailError, Mailer, OutgoingEmail};
use crate::adapters::breaker_state::{BreakerState, StateReporter};

const FAILURES_TO_OPEN: u32 = 5;
const OPEN_FIRST: Duration = Duration::from_secs(5);
const OPEN_MAX: Duration = Duration::from_secs(60);

pub struct Guarded<M> {
    dependency: &'static str,
    inner: M,
    breaker: StateMachine<ConsecutiveFailures<EqualJittered>, StateReporter>,
    reporter: StateReporter,
}

impl<M: Mailer> Guarded<M> {
    pub fn new(dependency: &'static str, inner: M) -> Self {
        let policy = consecutive_failures(
            FAILURES_TO_OPEN,
            backoff::equal_jittered(OPEN_FIRST, OPEN_MAX),
        );
        let reporter = StateReporter::new(dependency);
        Guarded {
            dependency,
            inner,
            breaker: Config::new()
                .failure_policy(policy)
                .instrument(reporter.clone())
                .build(),
            reporter,
        }
    }

    /// For health pages and tests; operators see it through `boxoffice queues`.
    pub fn state(&self) -> BreakerState {
        self.reporter.state()
    }
}

impl<M: Mailer> Mailer for Guarded<M> {
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), MailError>> {
        Box::pin(async move {
            let call = self
                .breaker
                .call_with(MailError::is_retryable, self.inner.send(email));
            match call.await {
                Ok(()) => Ok(()),
                Err(failsafe::Error::Inner(e)) => Err(e),
                // Counted by the reporter (`circuit_breaker_rejected_total`).
                Err(failsafe::Error::Rejected) => Err(MailError::Retryable(format!(
                    "{}: circuit open",
                    self.dependency
                ))),
            }
        })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use uuid::Uuid;

    use super::*;

    /// Fails every call the way it is told to, and counts the calls that reach it.
    struct Failing {
        error: MailError,
        calls: AtomicUsize,
    }

    impl Mailer for Failing {
        fn send<'a>(&'a self, _: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), MailError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                Err(self.error.clone())
            })
        }
        fn describe(&self) -> String {
            "failing".into()
        }
    }

    /// What this process tells operators about `dependency`'s breaker.
    fn reported(dependency: &str) -> Option<&'static str> {
        crate::operator::breakers::snapshot()
            .into_iter()
            .find(|(d, _)| d == dependency)
            .map(|(_, state)| state)
    }

    fn email() -> OutgoingEmail {
        OutgoingEmail::plain(Uuid::new_v4(), "a@example.com", "s", "b")
    }

    #[tokio::test]
    async fn temporary_failures_open_the_circuit() {
        let guarded = Guarded::new(
            "mailer-open-test",
            Failing {
                error: MailError::Retryable("connection refused".into()),
                calls: AtomicUsize::new(0),
            },
        );
        assert_eq!(reported("mailer-open-test"), Some("closed"));
        for _ in 0..FAILURES_TO_OPEN + 3 {
            assert!(guarded.send(&email()).await.unwrap_err().is_retryable());
        }
        assert_eq!(
            guarded.inner.calls.load(Ordering::SeqCst),
            FAILURES_TO_OPEN as usize
        );
        // Visible to operators, like the payments breaker.
        assert_eq!(guarded.state(), BreakerState::Open);
        assert_eq!(reported("mailer-open-test"), Some("open"));
    }

    #[tokio::test]
    async fn permanent_refusals_keep_it_closed() {
        let guarded = Guarded::new(
            "mailer-closed-test",
            Failing {
                error: MailError::Fatal("550 no such user".into()),
                calls: AtomicUsize::new(0),
            },
        );
        for _ in 0..FAILURES_TO_OPEN + 3 {
            assert!(!guarded.send(&email()).await.unwrap_err().is_retryable());
        }
        assert_eq!(
            guarded.inner.calls.load(Ordering::SeqCst),
            FAILURES_TO_OPEN as usize + 3
        );
        assert_eq!(guarded.state(), BreakerState::Closed);
        assert_eq!(reported("mailer-closed-test"), Some("closed"));
    }
}
