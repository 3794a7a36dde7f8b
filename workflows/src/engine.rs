//! The engine's vocabulary: statuses, inputs, commands and decisions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a run stands. Terminal statuses end the run; `failed` waits for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A step is being carried out.
    Running,
    /// Waiting for a signal or a timer.
    Waiting,
    /// Undoing completed steps after a failure.
    Compensating,
    Completed,
    /// Failed and cleanly undone.
    Compensated,
    /// Needs an operator.
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Compensating => "compensating",
            RunStatus::Completed => "completed",
            RunStatus::Compensated => "compensated",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Running,
            RunStatus::Waiting,
            RunStatus::Compensating,
            RunStatus::Completed,
            RunStatus::Compensated,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// No step will run again without an outside event.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Completed
                | RunStatus::Compensated
                | RunStatus::Cancelled
                | RunStatus::Failed
        )
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub ticket_type_id: Uuid,
    pub quantity: i32,
}

/// A held line with the unit price it was held at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedItem {
    pub ticket_type_id: Uuid,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// Everything needed to write the booking of a confirmed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingDraft {
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub items: Vec<Item>,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub coupon_id: Option<Uuid>,
    pub payment_intent_id: Option<String>,
}

/// Why a run did not complete, in the client's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// Stable, machine-readable.
    pub code: String,
    /// A plain sentence for the participant: never an outside system's text.
    pub detail: String,
    /// What an outside system (the payment provider) said, word for word: for
    /// operators (the run's state, its history and the logs), never shown to
    /// participants, since it may carry anything (even a key's prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_detail: Option<String>,
}

impl RunError {
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        RunError {
            code: code.to_owned(),
            detail: detail.into(),
            operator_detail: None,
        }
    }

    /// Keeps an outside system's own words for operators.
    pub fn with_operator_detail(mut self, text: impl Into<String>) -> Self {
        self.operator_detail = Some(text.into());
        self
    }
}

/// Changes to our own tables, applied in the transaction of the transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalCommand {
    /// Hold capacity for every item (row locks in ticket type id order), until `expires_at`.
    HoldCapacity {
        items: Vec<Item>,
        expires_at: DateTime<Utc>,
    },
    /// Reserve one use of the event's coupon `code` for these priced lines.
    ReserveCoupon {
        event_id: Uuid,
        code: String,
        lines: Vec<PricedItem>,
    },
    /// Release the run's holds and its coupon reservation.
    ReleaseReservations,
    /// Convert the run's holds to sold, redeem the coupon, create the booking and
    /// its tickets, queue the confirmation email.
    ConfirmBooking { booking: BookingDraft },
    /// A payment arrived after the holds were released: sell again if capacity
    /// is still free (then as `ConfirmBooking`), or report that it is not.
    ConfirmLatePayment { booking: BookingDraft },
}

/// Calls to outside systems, each run as its own retried job. `key` is unique
/// within the run and names the effect: the provider's idempotency key is
/// `"{run_id}:{key}"`, so a retried or duplicated call has one effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RemoteCommand {
    CreatePaymentIntent {
        key: String,
        amount_minor: i64,
        currency: String,
    },
    CancelPaymentIntent {
        key: String,
        intent_id: String,
    },
    RefundPayment {
        key: String,
        intent_id: String,
        amount_minor: i64,
    },
}

impl RemoteCommand {
    pub fn key(&self) -> &str {
        match self {
            RemoteCommand::CreatePaymentIntent { key, .. }
            | RemoteCommand::CancelPaymentIntent { key, .. }
            | RemoteCommand::RefundPayment { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "command", rename_all = "snake_case")]
pub enum Command {
    Local(LocalCommand),
    Remote(RemoteCommand),
}

/// What a local command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalOutcome {
    Held {
        expires_at: DateTime<Utc>,
        currency: String,
        lines: Vec<PricedItem>,
    },
    HoldRefused {
        ticket_type_id: Uuid,
        requested: i32,
        available: i32,
    },
    CouponReserved {
        coupon_id: Uuid,
        discount_minor: i64,
    },
    CouponRefused {
        reason: String,
    },
    Released,
    Confirmed {
        booking_id: Uuid,
        ticket_ids: Vec<Uuid>,
    },
    LateNoCapacity,
    /// A payment arrived after the holds were released, and its coupon has no
    /// use left to take again: nothing was sold.
    LateCouponUsedUp,
}

/// What a remote command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RemoteOutcome {
    IntentCreated {
        intent_id: String,
        client_secret: String,
    },
    IntentCancelled,
    /// The provider refused to cancel: the payment went through first.
    IntentAlreadySucceeded,
    Refunded {
        refund_id: String,
    },
}

/// Everything that can move a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Input {
    Start,
    Local(LocalOutcome),
    RemoteDone {
        key: String,
        outcome: RemoteOutcome,
    },
    /// A remote command failed for good (fatal error, or retries ran out).
    RemoteFailed {
        key: String,
        error: String,
    },
    Signal {
        name: String,
        payload: serde_json::Value,
    },
    /// The run's deadline passed.
    Timer,
    /// An operator ends the run (compensating what was done).
    Cancel,
    /// An operator re-drives a run that failed for good (from its failed step).
    Retry,
}

impl Input {
    /// A short name for the run's history.
    pub fn label(&self) -> String {
        match self {
            Input::Start => "start".into(),
            Input::Local(_) => "local_outcome".into(),
            Input::RemoteDone { key, .. } => format!("remote_done:{key}"),
            Input::RemoteFailed { key, .. } => format!("remote_failed:{key}"),
            Input::Signal { name, .. } => format!("signal:{name}"),
            Input::Timer => "timer".into(),
            Input::Cancel => "cancel".into(),
            Input::Retry => "retry".into(),
        }
    }
}

/// A workflow's answer to one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<S> {
    pub state: S,
    pub status: RunStatus,
    pub step: &'static str,
    pub command: Option<Command>,
    /// When a waiting run wakes up by itself (its deadline).
    pub wake_at: Option<DateTime<Utc>>,
    /// False when the input meant nothing in this state (it is dropped).
    pub accepted: bool,
}

/// A workflow: pure code from (state, input, now) to a decision.
pub trait Workflow {
    const KIND: &'static str;
    type State: Clone + Serialize + for<'de> Deserialize<'de>;

    fn decide(state: &Self::State, input: &Input, now: DateTime<Utc>) -> Decision<Self::State>;

    /// The step a fresh run starts at.
    fn initial_step() -> &'static str;

    /// The participant's money this run holds or may still take (an open
    /// payment intent, a payment not given back), in words for an operator.
    /// Such a run must be compensated, never failed for good: nothing would
    /// cancel or refund it afterwards.
    fn money_at_stake(_state: &Self::State) -> Option<String> {
        None
    }
}
