//! Following one refund at the provider until it has really succeeded or failed:
//! the path shared by the refund workflow and a checkout's late-payment refund.
//!
//! Create the refund (idempotency key `"{run}:{prefix}:{attempt}"`) → the answer
//! says `succeeded` (done), `failed`/`canceled` (not a refund), or `pending`:
//! then wait for the provider's `refund_updated` signal, and if none comes
//! within `poll_after_secs`, ask the provider (webhooks get lost). A refund
//! tried again after it failed goes out under the next attempt's key, since the
//! provider keeps a key's first answer, errors included; a retry of a request
//! whose answer was lost keeps its key (the engine re-sends the same command).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::Input;
use crate::money::Money;
use crate::payments::{
    PaymentCommand, PaymentOutcome, RefundReport, RefundStatus, SIGNAL_REFUND_UPDATED,
};

/// How long a pending refund waits for its webhook before asking, by default.
pub const DEFAULT_POLL_AFTER_SECS: i64 = 180;

/// The code of a remote command that failed because the provider could not be
/// reached (as the engine reports it): the outcome is unknown, not a refusal.
pub const PROVIDER_UNAVAILABLE: &str = "provider_unavailable";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundTracker {
    pub intent_id: String,
    pub amount: Money,
    /// Names this refund among the run's effects (`refund`, `refund_late_payment`).
    pub key_prefix: String,
    /// Counts from 1; a new attempt is a new refund at the provider.
    pub attempt: u32,
    /// How many times the provider was asked about a pending refund.
    pub lookups: u32,
    pub poll_after_secs: i64,
    pub refund_id: Option<String>,
    pub status: Option<RefundStatus>,
    /// The provider's reason when it failed.
    pub failure_reason: Option<String>,
    /// The create call ran out of retries with the provider unreachable:
    /// the next timer sends it again under the same key.
    #[serde(default)]
    pub awaiting_create: bool,
    /// The refunds of earlier attempts (all failed): a late webhook about one
    /// of them is not news of the current attempt.
    #[serde(default)]
    pub past_refund_ids: Vec<String>,
}

/// What the run does next about its refund.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundStep {
    /// Call the provider.
    Call(PaymentCommand),
    /// Wait for the webhook until then (then ask).
    WaitUntil(DateTime<Utc>),
    Succeeded,
    /// The provider refused it (or it failed later): no money was given back.
    Failed {
        reason: String,
    },
    /// The input was not about this refund.
    NotMine,
}

impl RefundTracker {
    pub fn new(intent_id: String, amount: Money, key_prefix: &str, poll_after_secs: i64) -> Self {
        RefundTracker {
            intent_id,
            amount,
            key_prefix: key_prefix.to_owned(),
            attempt: 1,
            lookups: 0,
            poll_after_secs: poll_after_secs.max(1),
            refund_id: None,
            status: None,
            failure_reason: None,
            past_refund_ids: Vec::new(),
            awaiting_create: false,
        }
    }

    /// The key of the current attempt's create call.
    pub fn create_key(&self) -> String {
        format!("{}:{}", self.key_prefix, self.attempt)
    }

    fn lookup_key(&self) -> String {
        format!(
            "{}:{}:lookup:{}",
            self.key_prefix, self.attempt, self.lookups
        )
    }

    /// The call that creates the current attempt's refund.
    pub fn create(&self) -> PaymentCommand {
        PaymentCommand::RefundPayment {
            key: self.create_key(),
            intent_id: self.intent_id.clone(),
            amount_minor: self.amount.amount_minor,
        }
    }

    /// A fresh attempt after a failure (an operator retries): a new key, so the
    /// provider makes a new refund instead of replaying the failed one.
    pub fn next_attempt(&mut self) -> PaymentCommand {
        self.attempt += 1;
        self.lookups = 0;
        if let Some(old) = self.refund_id.take() {
            self.past_refund_ids.push(old);
        }
        self.status = None;
        self.failure_reason = None;
        self.awaiting_create = false;
        self.create()
    }

    pub fn succeeded(&self) -> bool {
        self.status == Some(RefundStatus::Succeeded)
    }

    fn is_my_key(&self, key: &str) -> bool {
        key == self.create_key() || key.starts_with(&format!("{}:lookup:", self.create_key()))
    }

    fn learn(&mut self, report: &RefundReport, now: DateTime<Utc>) -> RefundStep {
        if self
            .refund_id
            .as_deref()
            .is_some_and(|id| id != report.refund_id)
        {
            return RefundStep::NotMine;
        }
        // A final status never goes back to pending (webhooks arrive out of order).
        if self.status.is_some_and(RefundStatus::is_final) {
            return RefundStep::NotMine;
        }
        self.refund_id = Some(report.refund_id.clone());
        self.status = Some(report.status);
        if report.failure_reason.is_some() {
            self.failure_reason = report.failure_reason.clone();
        }
        match report.status {
            RefundStatus::Succeeded => RefundStep::Succeeded,
            RefundStatus::Failed | RefundStatus::Canceled => RefundStep::Failed {
                reason: self
                    .failure_reason
                    .clone()
                    .unwrap_or_else(|| "refund_failed".into()),
            },
            RefundStatus::Pending | RefundStatus::RequiresAction => {
                RefundStep::WaitUntil(now + Duration::seconds(self.poll_after_secs))
            }
        }
    }

    pub fn on_remote_done(
        &mut self,
        key: &str,
        outcome: &PaymentOutcome,
        now: DateTime<Utc>,
    ) -> RefundStep {
        match outcome {
            PaymentOutcome::Refund(report) if self.is_my_key(key) => self.learn(report, now),
            _ => RefundStep::NotMine,
        }
    }

    /// The create call failed for good (the provider refused it), or a lookup
    /// did: a refund that cannot even be looked up is asked about again later.
    /// So is one whose create call ran out of retries after the provider had
    /// already named the refund (its webhook came first): it exists, and may
    /// still succeed.
    pub fn on_remote_failed(&mut self, key: &str, error: &str, now: DateTime<Utc>) -> RefundStep {
        // The provider could not be reached for the whole of the engine's
        // retries: whether it made the refund is unknown, so it is not a
        // refusal. The same call (same key: the provider replays what it did)
        // goes out again after a while.
        if key == self.create_key() && self.refund_id.is_none() && error == PROVIDER_UNAVAILABLE {
            self.awaiting_create = true;
            return RefundStep::WaitUntil(now + Duration::seconds(self.poll_after_secs));
        }
        if key == self.create_key() && self.refund_id.is_none() {
            self.failure_reason = Some(error.to_owned());
            return RefundStep::Failed {
                reason: error.to_owned(),
            };
        }
        if self.is_my_key(key) {
            return RefundStep::WaitUntil(now + Duration::seconds(self.poll_after_secs));
        }
        RefundStep::NotMine
    }

    /// A `refund_updated` signal.
    pub fn on_signal(&mut self, payload: &serde_json::Value, now: DateTime<Utc>) -> RefundStep {
        let field = |k: &str| payload.get(k).and_then(|v| v.as_str());
        let (Some(refund_id), Some(status)) = (
            field("refund_id"),
            field("status").and_then(RefundStatus::parse),
        ) else {
            return RefundStep::NotMine;
        };
        // Before the create call answered, only a refund of our intent and
        // amount can be ours (the answer may have been lost), and not one of
        // an earlier attempt.
        if self.refund_id.is_none()
            && (self.past_refund_ids.iter().any(|id| id == refund_id)
                || field("payment_intent") != Some(self.intent_id.as_str())
                || payload.get("amount_minor").and_then(|v| v.as_i64())
                    != Some(self.amount.amount_minor))
        {
            return RefundStep::NotMine;
        }
        self.learn(
            &RefundReport {
                refund_id: refund_id.to_owned(),
                status,
                amount_minor: payload
                    .get("amount_minor")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(self.amount.amount_minor),
                failure_reason: field("failure_reason").map(str::to_owned),
            },
            now,
        )
    }

    /// Any input of a run following this refund: its calls' outcomes, the
    /// provider's `refund_updated` webhooks and the run's timer.
    pub fn on_input<L>(
        &mut self,
        input: &Input<L, PaymentOutcome>,
        now: DateTime<Utc>,
    ) -> RefundStep {
        match input {
            Input::RemoteDone { key, outcome } => self.on_remote_done(key, outcome, now),
            Input::RemoteFailed { key, error } => self.on_remote_failed(key, error, now),
            Input::Signal { name, payload } if name == SIGNAL_REFUND_UPDATED => {
                self.on_signal(payload, now)
            }
            Input::Timer => self.on_timer(),
            _ => RefundStep::NotMine,
        }
    }

    /// No webhook came in time: ask the provider.
    pub fn on_timer(&mut self) -> RefundStep {
        match &self.refund_id {
            Some(refund_id) => {
                self.lookups += 1;
                RefundStep::Call(PaymentCommand::RetrieveRefund {
                    key: self.lookup_key(),
                    refund_id: refund_id.clone(),
                })
            }
            // The create call ran out of retries with the provider away:
            // the same call again.
            None if self.awaiting_create => {
                self.awaiting_create = false;
                RefundStep::Call(self.create())
            }
            // The create call has not answered: it is still being retried.
            None => RefundStep::NotMine,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    fn tracker() -> RefundTracker {
        RefundTracker::new("pi_1".into(), Money::new(4500, "EUR"), "refund", 60)
    }

    fn report(status: RefundStatus) -> PaymentOutcome {
        PaymentOutcome::Refund(RefundReport {
            refund_id: "re_1".into(),
            status,
            amount_minor: 4500,
            failure_reason: None,
        })
    }

    #[test]
    fn succeeded_answer_is_done_and_pending_waits_then_asks() {
        let mut t = tracker();
        assert_eq!(
            t.on_remote_done("refund:1", &report(RefundStatus::Succeeded), now()),
            RefundStep::Succeeded
        );
        let mut t2 = tracker();
        assert_eq!(
            t2.on_remote_done("refund:1", &report(RefundStatus::Pending), now()),
            RefundStep::WaitUntil(now() + Duration::seconds(60))
        );
        match t2.on_timer() {
            RefundStep::Call(PaymentCommand::RetrieveRefund { key, refund_id }) => {
                assert_eq!(refund_id, "re_1");
                assert_eq!(key, "refund:1:lookup:1");
                assert_eq!(
                    t2.on_remote_done(&key, &report(RefundStatus::Failed), now()),
                    RefundStep::Failed {
                        reason: "refund_failed".into()
                    }
                );
            }
            other => panic!("expected a lookup, got {other:?}"),
        }
        assert!(!t2.succeeded());
    }

    #[test]
    fn a_final_status_is_never_undone_by_a_late_webhook() {
        let mut t = tracker();
        t.on_remote_done("refund:1", &report(RefundStatus::Succeeded), now());
        let late = json!({"refund_id": "re_1", "status": "pending", "payment_intent": "pi_1", "amount_minor": 4500});
        assert_eq!(t.on_signal(&late, now()), RefundStep::NotMine);
        assert!(t.succeeded());
    }

    #[test]
    fn a_webhook_before_the_answer_is_taken_only_for_our_intent_and_amount() {
        let mut t = tracker();
        let other = json!({"refund_id": "re_9", "status": "succeeded", "payment_intent": "pi_2", "amount_minor": 4500});
        assert_eq!(t.on_signal(&other, now()), RefundStep::NotMine);
        let ours = json!({"refund_id": "re_1", "status": "succeeded", "payment_intent": "pi_1", "amount_minor": 4500});
        assert_eq!(t.on_signal(&ours, now()), RefundStep::Succeeded);
        // The create call's late answer names the same refund: nothing more.
        assert_eq!(
            t.on_remote_done("refund:1", &report(RefundStatus::Succeeded), now()),
            RefundStep::NotMine
        );
    }

    #[test]
    fn a_new_attempt_gets_a_new_key() {
        let mut t = tracker();
        assert_eq!(
            t.on_remote_failed("refund:1", "charge_disputed", now()),
            RefundStep::Failed {
                reason: "charge_disputed".into()
            }
        );
        match t.next_attempt() {
            PaymentCommand::RefundPayment {
                key, amount_minor, ..
            } => {
                assert_eq!(key, "refund:2");
                assert_eq!(amount_minor, 4500);
            }
            other => panic!("{other:?}"),
        }
        // Outcomes of the old attempt are not this attempt's.
        assert_eq!(
            t.on_remote_done("refund:1", &report(RefundStatus::Succeeded), now()),
            RefundStep::NotMine
        );
    }

    #[test]
    fn an_unreachable_provider_is_not_a_refusal_the_same_call_goes_again() {
        let mut t = tracker();
        assert_eq!(
            t.on_remote_failed("refund:1", PROVIDER_UNAVAILABLE, now()),
            RefundStep::WaitUntil(now() + Duration::seconds(60))
        );
        assert_eq!(t.on_timer(), RefundStep::Call(t.create()));
        assert_eq!(
            t.create_key(),
            "refund:1",
            "the same key: the provider replays what it did"
        );
        // A refusal is a failure.
        assert_eq!(
            t.on_remote_failed("refund:1", "charge_already_refunded", now()),
            RefundStep::Failed {
                reason: "charge_already_refunded".into()
            }
        );
    }
}
