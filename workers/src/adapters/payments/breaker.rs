//! A circuit breaker around a payment provider, built on `failsafe`'s
//! `StateMachine` (apalis' own breaker is broken: STACK.md item 10).
//!
//! One breaker per dependency per process: clones share the state machine, so
//! every worker task calling the provider sees the same state. After
//! `consecutive_failures` retryable failures in a row the breaker opens; while
//! open, calls fail at once with `ProviderError::Retryable("circuit open")` and
//! never reach the network, so an outage costs the provider (and us) nothing
//! while the jobs back off. After the open delay (doubling from `open_initial`
//! up to `open_max` while the provider keeps failing) the next call is let
//! through (half-open): a success closes the breaker, a retryable failure opens
//! it again for longer.
//!
//! Only retryable errors count as failures. A fatal error (a 4xx) is an answer
//! from a working provider about a bad request, so it counts as a success.
//!
//! Its state is reported (operators, gauge, logs) by `breaker_state`.

use std::future::Future;
use std::time::Duration;

use failsafe::StateMachine;
use failsafe::failure_policy::{ConsecutiveFailures, consecutive_failures};

pub use crate::adapters::breaker_state::BreakerState;
use crate::adapters::breaker_state::StateReporter;

use super::{
    CancelOutcome, CreateIntent, CreateRefund, PaymentIntent, PaymentProvider, ProviderError,
    ProviderResult, Refund,
};

/// The message of the error a call gets while the breaker is open.
pub const CIRCUIT_OPEN: &str = "circuit open";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Retryable failures in a row that open the breaker.
    pub consecutive_failures: u32,
    /// How long the breaker stays open the first time.
    pub open_initial: Duration,
    /// The longest it stays open, however long the outage.
    pub open_max: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            open_initial: Duration::from_secs(1),
            open_max: Duration::from_secs(30),
        }
    }
}

/// Doubling open delays with millisecond resolution (failsafe's own exponential
/// backoff counts whole seconds, too coarse for tests).
#[derive(Debug, Clone)]
struct Doubling {
    next: Duration,
    max: Duration,
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next.min(self.max);
        self.next = current.saturating_mul(2).min(self.max);
        Some(current)
    }
}

type Machine = StateMachine<ConsecutiveFailures<Doubling>, StateReporter>;

/// A provider behind a circuit breaker. Clone it to share the breaker.
#[derive(Clone)]
pub struct Breaker<P> {
    inner: P,
    machine: Machine,
    reporter: StateReporter,
}

impl<P> std::fmt::Debug for Breaker<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("dependency", &self.reporter.dependency())
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl<P> Breaker<P> {
    /// For metrics and health pages.
    pub fn state(&self) -> BreakerState {
        self.reporter.state()
    }
}

impl<P: PaymentProvider> Breaker<P> {
    /// `dependency` names the breaker in metrics and logs (e.g. `"stripe"`).
    pub fn new(dependency: &str, inner: P, config: BreakerConfig) -> Self {
        let reporter = StateReporter::new(dependency);
        let backoff = Doubling {
            next: config.open_initial,
            max: config.open_max.max(config.open_initial),
        };
        let policy = consecutive_failures(config.consecutive_failures.max(1), backoff);
        let machine = StateMachine::new(policy, reporter.clone());
        Breaker {
            inner,
            machine,
            reporter,
        }
    }

    /// Runs one call through the breaker. The call is built only once it is
    /// permitted, so an open breaker never touches the inner provider.
    async fn guard<'a, T, F>(&'a self, call: impl FnOnce(&'a P) -> F) -> Result<T, ProviderError>
    where
        F: Future<Output = Result<T, ProviderError>> + 'a,
    {
        if !self.machine.is_call_permitted() {
            return Err(ProviderError::Retryable(CIRCUIT_OPEN.to_owned()));
        }
        let result = call(&self.inner).await;
        match &result {
            Err(e) if e.is_retryable() => self.machine.on_error(),
            _ => self.machine.on_success(),
        }
        result
    }
}

impl<P: PaymentProvider> PaymentProvider for Breaker<P> {
    fn create_intent(&self, request: CreateIntent) -> ProviderResult<'_, PaymentIntent> {
        Box::pin(self.guard(move |p| p.create_intent(request)))
    }

    fn cancel_intent<'a>(
        &'a self,
        intent_id: &'a str,
        idempotency_key: &'a str,
    ) -> ProviderResult<'a, CancelOutcome> {
        Box::pin(self.guard(move |p| p.cancel_intent(intent_id, idempotency_key)))
    }

    fn refund(&self, request: CreateRefund) -> ProviderResult<'_, Refund> {
        Box::pin(self.guard(move |p| p.refund(request)))
    }

    fn retrieve_refund<'a>(&'a self, refund_id: &'a str) -> ProviderResult<'a, Refund> {
        Box::pin(self.guard(move |p| p.retrieve_refund(refund_id)))
    }

    fn retrieve_intent<'a>(&'a self, intent_id: &'a str) -> ProviderResult<'a, PaymentIntent> {
        Box::pin(self.guard(move |p| p.retrieve_intent(intent_id)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::adapters::payments::IntentStatus;

    /// What the fake provider answers next.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        Ok,
        Retryable,
        Fatal,
    }

    /// A fake of our own trait: counts calls, answers as told.
    struct Fake {
        calls: AtomicUsize,
        answer: Mutex<Answer>,
    }

    impl Fake {
        fn new(answer: Answer) -> Arc<Self> {
            Arc::new(Fake {
                calls: AtomicUsize::new(0),
                answer: Mutex::new(answer),
            })
        }
        fn answer_with(&self, answer: Answer) {
            *self.answer.lock().expect("answer lock") = answer;
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
        fn respond<T>(&self, ok: T) -> Result<T, ProviderError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match *self.answer.lock().expect("answer lock") {
                Answer::Ok => Ok(ok),
                Answer::Retryable => Err(ProviderError::Retryable("503".into())),
                Answer::Fatal => Err(ProviderError::refused("400")),
            }
        }
        fn intent(id: &str) -> PaymentIntent {
            PaymentIntent {
                id: id.to_owned(),
                client_secret: None,
                status: IntentStatus::RequiresPaymentMethod,
                amount_minor: 100,
                currency: "EUR".into(),
                metadata: BTreeMap::new(),
            }
        }
        fn refund(amount_minor: i64) -> Refund {
            Refund {
                id: "re_1".into(),
                status: crate::adapters::payments::RefundStatus::Succeeded,
                amount_minor,
                currency: "EUR".into(),
                payment_intent: Some("pi_1".into()),
                failure_reason: None,
            }
        }
    }

    // Calls are counted when the method is called, not when its future is
    // polled: a breaker that built the call and then dropped it would show.
    impl PaymentProvider for Fake {
        fn create_intent(&self, request: CreateIntent) -> ProviderResult<'_, PaymentIntent> {
            let result = self.respond(Fake::intent(&request.idempotency_key));
            Box::pin(async move { result })
        }
        fn cancel_intent<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> ProviderResult<'a, CancelOutcome> {
            let result = self.respond(CancelOutcome::Cancelled);
            Box::pin(async move { result })
        }
        fn refund(&self, request: CreateRefund) -> ProviderResult<'_, Refund> {
            let result = self.respond(Fake::refund(request.amount_minor.unwrap_or(100)));
            Box::pin(async move { result })
        }
        fn retrieve_refund<'a>(&'a self, _: &'a str) -> ProviderResult<'a, Refund> {
            let result = self.respond(Fake::refund(100));
            Box::pin(async move { result })
        }
        fn retrieve_intent<'a>(&'a self, id: &'a str) -> ProviderResult<'a, PaymentIntent> {
            let result = self.respond(Fake::intent(id));
            Box::pin(async move { result })
        }
    }

    fn config(failures: u32, open: Duration) -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: failures,
            open_initial: open,
            open_max: open * 8,
        }
    }

    #[tokio::test]
    async fn opens_after_consecutive_retryable_failures_and_then_rejects_without_calling() {
        let fake = Fake::new(Answer::Retryable);
        let breaker = Breaker::new("test", fake.clone(), config(3, Duration::from_secs(60)));
        for _ in 0..3 {
            let err = breaker.retrieve_intent("pi_1").await.expect_err("fails");
            assert_eq!(err, ProviderError::Retryable("503".into()));
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(fake.calls(), 3);

        // Even a provider that would now answer is not asked while open.
        fake.answer_with(Answer::Ok);
        for _ in 0..10 {
            let err = breaker
                .cancel_intent("pi_1", "k")
                .await
                .expect_err("rejected");
            assert_eq!(err, ProviderError::Retryable(CIRCUIT_OPEN.into()));
            assert!(err.is_retryable());
        }
        assert_eq!(
            fake.calls(),
            3,
            "an open breaker must not reach the provider"
        );
    }

    #[tokio::test]
    async fn fatal_errors_do_not_open_the_breaker() {
        let fake = Fake::new(Answer::Fatal);
        let breaker = Breaker::new("test", fake.clone(), config(3, Duration::from_secs(60)));
        for _ in 0..10 {
            let err = breaker
                .refund(CreateRefund {
                    intent_id: "pi_1".into(),
                    amount_minor: None,
                    run_id: "r1".into(),
                    reason: None,
                    idempotency_key: "k".into(),
                })
                .await
                .expect_err("fails");
            assert!(!err.is_retryable());
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(fake.calls(), 10);
    }

    #[tokio::test]
    async fn only_consecutive_failures_count() {
        let fake = Fake::new(Answer::Retryable);
        let breaker = Breaker::new("test", fake.clone(), config(3, Duration::from_secs(60)));
        for round in 0..5 {
            fake.answer_with(Answer::Retryable);
            breaker.retrieve_intent("pi_1").await.expect_err("fails");
            breaker.retrieve_intent("pi_1").await.expect_err("fails");
            // A success, or a fatal answer (the provider is up), breaks the run.
            fake.answer_with(if round % 2 == 0 {
                Answer::Ok
            } else {
                Answer::Fatal
            });
            let _ = breaker.retrieve_intent("pi_1").await;
            assert_eq!(breaker.state(), BreakerState::Closed, "round {round}");
        }
        assert_eq!(fake.calls(), 15);
    }

    #[tokio::test]
    async fn half_open_failure_reopens_and_half_open_success_closes() {
        let open = Duration::from_millis(200);
        let fake = Fake::new(Answer::Retryable);
        let breaker = Breaker::new("test", fake.clone(), config(2, open));
        breaker.retrieve_intent("pi_1").await.expect_err("fails");
        breaker.retrieve_intent("pi_1").await.expect_err("fails");
        assert_eq!(breaker.state(), BreakerState::Open);

        // After the delay one probe goes through; it fails, so the breaker opens
        // again, this time for twice as long.
        tokio::time::sleep(open + Duration::from_millis(50)).await;
        let err = breaker
            .retrieve_intent("pi_1")
            .await
            .expect_err("probe fails");
        assert_eq!(err, ProviderError::Retryable("503".into()));
        assert_eq!(fake.calls(), 3);
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::sleep(open + Duration::from_millis(50)).await;
        let err = breaker
            .retrieve_intent("pi_1")
            .await
            .expect_err("still open");
        assert_eq!(err, ProviderError::Retryable(CIRCUIT_OPEN.into()));
        assert_eq!(
            fake.calls(),
            3,
            "the second open period is longer than the first"
        );

        // The provider is back: the next probe succeeds and closes the breaker.
        fake.answer_with(Answer::Ok);
        tokio::time::sleep(open * 2).await;
        let intent = breaker
            .create_intent(CreateIntent {
                amount_minor: 100,
                currency: "EUR".into(),
                idempotency_key: "k1".into(),
                metadata: BTreeMap::new(),
            })
            .await
            .expect("probe succeeds");
        assert_eq!(intent.id, "k1");
        assert_eq!(breaker.state(), BreakerState::Closed);
        for _ in 0..3 {
            breaker.retrieve_intent("pi_1").await.expect("closed again");
        }
        assert_eq!(fake.calls(), 7);
    }

    #[tokio::test]
    async fn clones_share_one_breaker() {
        let fake = Fake::new(Answer::Retryable);
        let first = Breaker::new("test", fake.clone(), config(2, Duration::from_secs(60)));
        let second = first.clone();
        first.retrieve_intent("pi_1").await.expect_err("fails");
        second.retrieve_intent("pi_1").await.expect_err("fails");
        assert_eq!(first.state(), BreakerState::Open);
        let err = second.retrieve_intent("pi_1").await.expect_err("rejected");
        assert_eq!(err, ProviderError::Retryable(CIRCUIT_OPEN.into()));
        assert_eq!(fake.calls(), 2);
    }

    #[test]
    fn open_delays_double_up_to_the_maximum() {
        let delays: Vec<_> = Doubling {
            next: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
        .take(7)
        .collect();
        let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
    }
}
