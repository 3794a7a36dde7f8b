//! A circuit breaker around a mailer (failsafe; apalis' own is broken, STACK.md
//! item 10). After a run of temporary failures the breaker opens and sends fail
//! at once as retryable, without a connection attempt, so an SMTP outage does
//! not tie up workers in timeouts while the jobs back off. A permanent refusal
//! is an answer from a working server and does not count against it.

use std::time::Duration;

use failsafe::backoff::{self, EqualJittered};
use failsafe::failure_policy::{ConsecutiveFailures, consecutive_failures};
use failsafe::futures::CircuitBreaker;
use failsafe::{Config, StateMachine};
use futures::future::BoxFuture;

use super::{MailError, Mailer, OutgoingEmail};

const FAILURES_TO_OPEN: u32 = 5;
const OPEN_FIRST: Duration = Duration::from_secs(5);
const OPEN_MAX: Duration = Duration::from_secs(60);

pub struct Guarded<M> {
    dependency: &'static str,
    inner: M,
    breaker: StateMachine<ConsecutiveFailures<EqualJittered>, ()>,
}

impl<M: Mailer> Guarded<M> {
    pub fn new(dependency: &'static str, inner: M) -> Self {
        let policy = consecutive_failures(
            FAILURES_TO_OPEN,
            backoff::equal_jittered(OPEN_FIRST, OPEN_MAX),
        );
        Guarded {
            dependency,
            inner,
            breaker: Config::new().failure_policy(policy).build(),
        }
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
                Err(failsafe::Error::Rejected) => {
                    metrics::counter!("circuit_breaker_rejected_total", "dependency" => self.dependency)
                        .increment(1);
                    Err(MailError::Retryable(format!(
                        "{}: circuit open",
                        self.dependency
                    )))
                }
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

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            notification_id: Uuid::new_v4(),
            to: "a@example.com".into(),
            subject: "s".into(),
            body_text: "b".into(),
        }
    }

    #[tokio::test]
    async fn temporary_failures_open_the_circuit() {
        let guarded = Guarded::new(
            "test",
            Failing {
                error: MailError::Retryable("connection refused".into()),
                calls: AtomicUsize::new(0),
            },
        );
        for _ in 0..FAILURES_TO_OPEN + 3 {
            assert!(guarded.send(&email()).await.unwrap_err().is_retryable());
        }
        assert_eq!(
            guarded.inner.calls.load(Ordering::SeqCst),
            FAILURES_TO_OPEN as usize
        );
    }

    #[tokio::test]
    async fn permanent_refusals_keep_it_closed() {
        let guarded = Guarded::new(
            "test",
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
    }
}
