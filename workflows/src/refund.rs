//! The refund workflow: money back for some tickets of a booking, or a sum of
//! goodwill, at the payment provider.
//!
//! The run is created in the transaction that marks its tickets
//! `refund_pending` and reserves its amount against the booking (so check-in
//! refuses them from that moment, and two refunds can never give back more
//! than was paid). Then:
//!
//! ```text
//! start ─► refunding ─(provider: succeeded)─► completing ─► completed
//!   │          │ (pending: wait for the webhook, ask the provider if none)
//!   │          └─(provider: failed for good)─► restoring ─► failed (an operator: retry or cancel)
//!   └─(nothing to pay back: free tickets)──────► completing
//! ```
//!
//! A refund that the provider refuses gives the buyer their tickets back
//! (valid again: money is never kept without tickets or a refund) and parks
//! the run as `failed`; an operator's retry marks them `refund_pending` again
//! and refunds under a new idempotency key. In an event cancellation the
//! tickets cannot come back (the event is off): the run parks with the refund
//! owed as money at stake.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::{self, ErrorView, RunError, RunStatus, Workflow};
use crate::money::Money;
/// The webhook a pending refund waits for.
pub use crate::payments::SIGNAL_REFUND_UPDATED;
use crate::payments::{PaymentCommand, PaymentOutcome};
use crate::refunding::{RefundStep, RefundTracker};

#[cfg(test)]
mod tests;

pub const KEY_REFUND: &str = "refund";

/// Who asked for the refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestedBy {
    Buyer,
    Organizer,
    Admin,
    /// The event was cancelled: every booking is refunded in full.
    EventCancellation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Start,
    /// Marking the tickets and reserving the amount (an event cancellation's
    /// refunds do it in their own first step).
    Reserving,
    Refunding,
    Completing,
    Restoring,
    Completed,
    Failed,
    Cancelled,
}

impl RequestedBy {
    /// As stored in `refunds.requested_by` (and serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestedBy::Buyer => "buyer",
            RequestedBy::Organizer => "organizer",
            RequestedBy::Admin => "admin",
            RequestedBy::EventCancellation => "event_cancellation",
        }
    }
}

impl Phase {
    pub fn step(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Reserving => "reserving",
            Phase::Refunding => "refunding",
            Phase::Completing => "completing",
            Phase::Restoring => "restoring",
            Phase::Completed => "completed",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundState {
    pub booking_id: Uuid,
    pub event_id: Uuid,
    /// The booking's buyer, told by email.
    pub buyer_id: Uuid,
    pub requested_by: RequestedBy,
    /// The tickets voided by this refund (none for a sum of goodwill).
    pub ticket_ids: Vec<Uuid>,
    /// What goes back: the tickets' share of what was paid, or the goodwill sum.
    pub amount: Money,
    /// The payment refunded; `None` when nothing was paid (free tickets).
    pub intent_id: Option<String>,
    pub reason: Option<String>,
    /// How long a pending refund waits for its webhook before asking.
    pub poll_after_secs: i64,
    pub phase: Phase,
    pub refund: Option<RefundTracker>,
    pub error: Option<RunError>,
    /// The tickets are marked and the amount reserved (false until the first
    /// step of an event cancellation's refund has done it).
    #[serde(default = "reserved_by_default")]
    pub reserved: bool,
    /// The booking had nothing left to give back.
    #[serde(default)]
    pub nothing_to_refund: bool,
}

fn reserved_by_default() -> bool {
    true
}

impl RefundState {
    /// A refund whose tickets are already marked and whose amount is reserved.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        booking_id: Uuid,
        event_id: Uuid,
        buyer_id: Uuid,
        requested_by: RequestedBy,
        ticket_ids: Vec<Uuid>,
        amount: Money,
        intent_id: Option<String>,
        reason: Option<String>,
        poll_after_secs: i64,
    ) -> Self {
        RefundState {
            booking_id,
            event_id,
            buyer_id,
            requested_by,
            ticket_ids,
            amount,
            intent_id,
            reason,
            poll_after_secs,
            phase: Phase::Start,
            refund: None,
            error: None,
            reserved: true,
            nothing_to_refund: false,
        }
    }

    /// An event cancellation's refund of a whole booking: its first step
    /// marks every valid ticket and reserves whatever is left of the payment.
    pub fn for_cancellation(
        booking_id: Uuid,
        event_id: Uuid,
        buyer_id: Uuid,
        poll_after_secs: i64,
    ) -> Self {
        RefundState {
            reserved: false,
            ..RefundState::new(
                booking_id,
                event_id,
                buyer_id,
                RequestedBy::EventCancellation,
                Vec::new(),
                Money::zero(""),
                None,
                Some("event cancelled".into()),
                poll_after_secs,
            )
        }
    }

    /// The tickets cannot come back when the refund fails: the event is off.
    pub fn restores_tickets(&self) -> bool {
        self.requested_by != RequestedBy::EventCancellation
    }

    fn tracker(&self) -> Option<RefundTracker> {
        let intent_id = self.intent_id.clone()?;
        (!self.amount.is_zero()).then(|| {
            RefundTracker::new(
                intent_id,
                self.amount.clone(),
                KEY_REFUND,
                self.poll_after_secs,
            )
        })
    }
}

/// Changes to our own tables (the refund's effects module in `workers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalCommand {
    /// Mark every valid ticket of the booking `refund_pending` and reserve
    /// what is left of its payment (an event cancellation's refund).
    Reserve { booking_id: Uuid },
    /// The money is back: void the tickets, put their units back on sale,
    /// record the refund on the booking, tell the buyer.
    Complete { refund_id: Option<String> },
    /// The provider refused: the tickets are valid again, the reserved amount
    /// is released, the buyer is told. (Not in an event cancellation.)
    Restore,
    /// An operator retries: mark the tickets `refund_pending` and reserve the
    /// amount again (they may have changed meanwhile). The run's own tickets
    /// are named: one refunded by another run since no longer points at this
    /// one, and must refuse the retry rather than be left out of it.
    Remark {
        #[serde(default)]
        ticket_ids: Vec<Uuid>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalOutcome {
    Reserved {
        ticket_ids: Vec<Uuid>,
        amount: Money,
        intent_id: Option<String>,
    },
    /// Nothing left to refund (e.g. refunded in full before).
    NothingToRefund,
    Completed,
    Restored,
    Remarked,
    /// The tickets or the amount can no longer be refunded (`code` says why).
    RemarkRefused {
        code: String,
    },
}

pub type Input = engine::Input<LocalOutcome, PaymentOutcome>;
pub type Command = engine::Command<LocalCommand, PaymentCommand>;
type Decision = engine::Decision<RefundState, Command>;

/// What the buyer (or organizer) sees of a refund run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundView {
    pub booking_id: Uuid,
    pub ticket_ids: Vec<Uuid>,
    pub amount_minor: i64,
    pub currency: String,
    /// The provider's refund, once it exists.
    pub refund_id: Option<String>,
    /// `requested`, `refunding`, `refunded`, `failed`, `cancelled`.
    pub state: &'static str,
    pub requested_by: RequestedBy,
    pub error: Option<ErrorView>,
}

pub struct Refund;

fn decision(
    state: RefundState,
    status: RunStatus,
    command: Option<Command>,
    wake_at: Option<DateTime<Utc>>,
) -> Decision {
    Decision {
        step: state.phase.step(),
        state,
        status,
        command,
        children: Vec::new(),
        wake_at,
        accepted: true,
    }
}

fn ignore(state: &RefundState) -> Decision {
    Decision {
        step: state.phase.step(),
        state: state.clone(),
        status: RunStatus::Running,
        command: None,
        children: Vec::new(),
        wake_at: None,
        accepted: false,
    }
}

fn refund_failed(state: &mut RefundState) {
    state.error = Some(RunError::new(
        "refund_failed",
        "the payment provider could not refund this payment; our staff will look into it",
    ));
}

/// The money is back (or there was none to give back): write it down.
fn complete(mut state: RefundState) -> Decision {
    state.phase = Phase::Completing;
    let refund_id = state.refund.as_ref().and_then(|r| r.refund_id.clone());
    decision(
        state,
        RunStatus::Running,
        Some(Command::Local(LocalCommand::Complete { refund_id })),
        None,
    )
}

/// The provider refused for good.
fn failed(mut state: RefundState) -> Decision {
    refund_failed(&mut state);
    if state.restores_tickets() {
        state.phase = Phase::Restoring;
        return decision(
            state,
            RunStatus::Compensating,
            Some(Command::Local(LocalCommand::Restore)),
            None,
        );
    }
    state.phase = Phase::Failed;
    decision(state, RunStatus::Failed, None, None)
}

impl Workflow for Refund {
    const KIND: &'static str = "refund";
    type State = RefundState;
    type Local = LocalCommand;
    type LocalOutcome = LocalOutcome;
    type Remote = PaymentCommand;
    type RemoteOutcome = PaymentOutcome;
    type View = RefundView;

    fn initial_step() -> &'static str {
        Phase::Start.step()
    }

    fn view(state: &RefundState) -> RefundView {
        RefundView {
            booking_id: state.booking_id,
            ticket_ids: state.ticket_ids.clone(),
            amount_minor: state.amount.amount_minor,
            currency: state.amount.currency.clone(),
            refund_id: state.refund.as_ref().and_then(|r| r.refund_id.clone()),
            state: match state.phase {
                Phase::Completed if state.nothing_to_refund => "nothing_to_refund",
                Phase::Start | Phase::Reserving => "requested",
                Phase::Refunding | Phase::Completing => "refunding",
                Phase::Completed => "refunded",
                Phase::Restoring | Phase::Failed => "failed",
                Phase::Cancelled => "cancelled",
            },
            requested_by: state.requested_by,
            error: state.error.as_ref().map(ErrorView::from),
        }
    }

    /// Until the provider says the money is back, the refund is owed.
    fn money_at_stake(state: &RefundState) -> Option<String> {
        if !state.reserved
            || state.amount.is_zero()
            || matches!(state.phase, Phase::Completed | Phase::Cancelled)
        {
            return None;
        }
        // Restored tickets are the buyer's again: nothing is owed.
        if state.phase == Phase::Failed && state.restores_tickets() {
            return None;
        }
        Some(format!(
            "refund of {} owed on booking {} (payment intent {})",
            state.amount,
            state.booking_id,
            state.intent_id.as_deref().unwrap_or("none")
        ))
    }

    fn decide(state: &RefundState, input: &Input, now: DateTime<Utc>) -> Decision {
        let mut next = state.clone();
        match (state.phase, input) {
            (Phase::Start, Input::Start) if !state.reserved => {
                next.phase = Phase::Reserving;
                let command = LocalCommand::Reserve {
                    booking_id: state.booking_id,
                };
                decision(
                    next,
                    RunStatus::Running,
                    Some(Command::Local(command)),
                    None,
                )
            }
            (Phase::Start, Input::Start) => refund(next),
            (
                Phase::Reserving,
                Input::Local(LocalOutcome::Reserved {
                    ticket_ids,
                    amount,
                    intent_id,
                }),
            ) => {
                next.ticket_ids = ticket_ids.clone();
                next.amount = amount.clone();
                next.intent_id = intent_id.clone();
                next.reserved = true;
                refund(next)
            }
            (Phase::Reserving, Input::Local(LocalOutcome::NothingToRefund)) => {
                next.phase = Phase::Completed;
                next.nothing_to_refund = true;
                decision(next, RunStatus::Completed, None, None)
            }

            (
                Phase::Refunding,
                Input::RemoteDone { .. }
                | Input::RemoteFailed { .. }
                | Input::Timer
                | Input::Signal { .. },
            ) => {
                let Some(mut tracker) = state.refund.clone() else {
                    return ignore(state);
                };
                let step = tracker.on_input(input, now);
                next.refund = Some(tracker);
                match step {
                    RefundStep::NotMine => ignore(state),
                    RefundStep::Call(command) => decision(
                        next,
                        RunStatus::Running,
                        Some(Command::Remote(command)),
                        None,
                    ),
                    RefundStep::WaitUntil(at) => decision(next, RunStatus::Waiting, None, Some(at)),
                    RefundStep::Succeeded => complete(next),
                    RefundStep::Failed { .. } => failed(next),
                }
            }

            (Phase::Completing, Input::Local(LocalOutcome::Completed)) => {
                next.phase = Phase::Completed;
                next.error = None;
                decision(next, RunStatus::Completed, None, None)
            }
            (Phase::Restoring, Input::Local(LocalOutcome::Restored)) => {
                next.phase = Phase::Failed;
                decision(next, RunStatus::Failed, None, None)
            }

            // An operator tries once more: the tickets are marked again (when
            // they were given back), then a new refund at the provider.
            (Phase::Failed, Input::Retry) => {
                if state.restores_tickets() {
                    next.phase = Phase::Restoring;
                    return decision(
                        next,
                        RunStatus::Running,
                        Some(Command::Local(LocalCommand::Remark {
                            ticket_ids: state.ticket_ids.clone(),
                        })),
                        None,
                    );
                }
                retry_refund(next)
            }
            (Phase::Restoring, Input::Local(LocalOutcome::Remarked)) => retry_refund(next),
            (Phase::Restoring, Input::Local(LocalOutcome::RemarkRefused { code })) => {
                next.phase = Phase::Failed;
                next.error = Some(RunError::new(
                    code,
                    "the tickets can no longer be refunded (used, refunded or changed since)",
                ));
                decision(next, RunStatus::Failed, None, None)
            }
            // An operator ends a failed refund: nothing more is tried.
            (Phase::Failed, Input::Cancel) => {
                next.phase = Phase::Cancelled;
                decision(next, RunStatus::Cancelled, None, None)
            }

            _ => ignore(state),
        }
    }
}

/// Refund the reserved amount at the provider, or complete at once when
/// nothing was paid.
fn refund(mut next: RefundState) -> Decision {
    match next.tracker() {
        None => complete(next),
        Some(tracker) => {
            let command = tracker.create();
            next.refund = Some(tracker);
            next.phase = Phase::Refunding;
            decision(
                next,
                RunStatus::Running,
                Some(Command::Remote(command)),
                None,
            )
        }
    }
}

fn retry_refund(mut next: RefundState) -> Decision {
    next.error = None;
    let command = next
        .refund
        .as_mut()
        .map(|tracker| Command::Remote(tracker.next_attempt()));
    match command {
        Some(command) => {
            next.phase = Phase::Refunding;
            decision(next, RunStatus::Running, Some(command), None)
        }
        None => complete(next),
    }
}
