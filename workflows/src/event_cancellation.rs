//! The event-cancellation workflow: when an organizer calls off an event
//! with sales, every confirmed booking is refunded in full, each as a child
//! `refund` run, with a bounded number in flight.
//!
//! The event is marked cancelled in the transaction that starts this run, so
//! nothing more is sold from that moment. Then:
//!
//! ```text
//! start ─► stopping_checkouts ─► refunding ◄──────────────┐
//!                                  │ next batch: mark the bookings' tickets,
//!                                  │ reserve their amounts, tell each buyer,
//!                                  │ start a child refund per booking
//!                                  └─ a child ended ───────┘
//!                                  all bookings started and every child ended ─► completed
//! ```
//!
//! Progress lives in the state (the last booking started, counts), so a crash
//! at any point resumes without repeating or skipping anyone: a batch is taken
//! in the transaction that records it, and a child is started once per key.
//! A child that fails for good stays `failed` for an operator, and this run
//! keeps waiting for it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::{self, ChildStart, NoRemote, RunStatus, Workflow};
use crate::money::Money;
use crate::refund::{Refund, RefundState};

#[cfg(test)]
mod tests;

/// Children in flight at once, by default.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Start,
    StoppingCheckouts,
    Refunding,
    Completed,
}

impl Phase {
    pub fn step(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::StoppingCheckouts => "stopping_checkouts",
            Phase::Refunding => "refunding",
            Phase::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationState {
    pub event_id: Uuid,
    pub max_in_flight: u32,
    /// How long each refund waits for its webhook before asking the provider.
    pub poll_after_secs: i64,
    pub phase: Phase,
    /// Bookings are taken in id order; the last one started.
    pub cursor: Option<Uuid>,
    /// Every booking has been started.
    pub exhausted: bool,
    /// Confirmed bookings when the cancellation began.
    pub bookings_total: Option<u32>,
    pub started: u32,
    pub in_flight: u32,
    pub refunded: u32,
    /// Children that ended without refunding (an operator cancelled them).
    pub not_refunded: u32,
    pub refunded_amount: Option<Money>,
    /// Checkouts in flight told to stop.
    pub checkouts_stopped: u32,
}

impl CancellationState {
    pub fn new(event_id: Uuid, max_in_flight: u32, poll_after_secs: i64) -> Self {
        CancellationState {
            event_id,
            max_in_flight: max_in_flight.max(1),
            poll_after_secs,
            phase: Phase::Start,
            cursor: None,
            exhausted: false,
            bookings_total: None,
            started: 0,
            in_flight: 0,
            refunded: 0,
            not_refunded: 0,
            refunded_amount: None,
            checkouts_stopped: 0,
        }
    }
}

/// A booking to refund in full (its refund's first step marks its tickets
/// and reserves what is left of its payment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingToRefund {
    pub booking_id: Uuid,
    pub buyer_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalCommand {
    /// Tell every checkout of the event still in flight that it is off.
    StopCheckouts { event_id: Uuid },
    /// Take up to `limit` confirmed bookings after `after` (id order) and
    /// queue each buyer's cancellation email.
    NextBatch {
        event_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalOutcome {
    CheckoutsStopped {
        count: u32,
        bookings_total: u32,
    },
    Batch {
        bookings: Vec<BookingToRefund>,
        /// Nothing after this batch.
        exhausted: bool,
    },
}

pub type Input = engine::Input<LocalOutcome, ()>;
pub type Command = engine::Command<LocalCommand, NoRemote>;
type Decision = engine::Decision<CancellationState, Command>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancellationView {
    pub event_id: Uuid,
    pub bookings_total: Option<u32>,
    pub refunded: u32,
    /// Children that ended without a refund.
    pub failed: u32,
    /// Started and not ended yet (a failed child waiting for an operator counts here).
    pub pending: u32,
    pub not_started: Option<u32>,
    pub refunded_amount: Option<Money>,
    pub checkouts_stopped: u32,
}

pub struct EventCancellation;

fn decision(
    state: CancellationState,
    status: RunStatus,
    command: Option<Command>,
    children: Vec<ChildStart>,
) -> Decision {
    Decision {
        step: state.phase.step(),
        state,
        status,
        command,
        children,
        wake_at: None,
        accepted: true,
    }
}

fn ignore(state: &CancellationState) -> Decision {
    Decision {
        step: state.phase.step(),
        state: state.clone(),
        status: RunStatus::Waiting,
        command: None,
        children: Vec::new(),
        wake_at: None,
        accepted: false,
    }
}

/// Start more children if there is room and bookings left; finish when
/// everything started has ended.
fn refill(state: CancellationState) -> Decision {
    if !state.exhausted && state.in_flight < state.max_in_flight {
        let limit = state.max_in_flight - state.in_flight;
        let command = LocalCommand::NextBatch {
            event_id: state.event_id,
            after: state.cursor,
            limit,
        };
        return decision(
            state,
            RunStatus::Running,
            Some(Command::Local(command)),
            Vec::new(),
        );
    }
    if state.exhausted && state.in_flight == 0 {
        let mut state = state;
        state.phase = Phase::Completed;
        return decision(state, RunStatus::Completed, None, Vec::new());
    }
    decision(state, RunStatus::Waiting, None, Vec::new())
}

/// The child key of a booking's refund.
pub fn child_key(booking_id: Uuid) -> String {
    format!("booking:{booking_id}")
}

impl Workflow for EventCancellation {
    const KIND: &'static str = "event_cancellation";
    type State = CancellationState;
    type Local = LocalCommand;
    type LocalOutcome = LocalOutcome;
    type Remote = NoRemote;
    type RemoteOutcome = ();
    type View = CancellationView;

    fn initial_step() -> &'static str {
        Phase::Start.step()
    }

    fn view(state: &CancellationState) -> CancellationView {
        CancellationView {
            event_id: state.event_id,
            bookings_total: state.bookings_total,
            refunded: state.refunded,
            failed: state.not_refunded,
            pending: state.in_flight,
            not_started: state
                .bookings_total
                .map(|t| t.saturating_sub(state.started)),
            refunded_amount: state.refunded_amount.clone(),
            checkouts_stopped: state.checkouts_stopped,
        }
    }

    fn decide(state: &CancellationState, input: &Input, _now: DateTime<Utc>) -> Decision {
        let mut next = state.clone();
        match (state.phase, input) {
            (Phase::Start, Input::Start) => {
                next.phase = Phase::StoppingCheckouts;
                let command = LocalCommand::StopCheckouts {
                    event_id: state.event_id,
                };
                decision(
                    next,
                    RunStatus::Running,
                    Some(Command::Local(command)),
                    Vec::new(),
                )
            }
            (
                Phase::StoppingCheckouts,
                Input::Local(LocalOutcome::CheckoutsStopped {
                    count,
                    bookings_total,
                }),
            ) => {
                next.checkouts_stopped = *count;
                next.bookings_total = Some(*bookings_total);
                next.phase = Phase::Refunding;
                refill(next)
            }
            (
                Phase::Refunding,
                Input::Local(LocalOutcome::Batch {
                    bookings,
                    exhausted,
                }),
            ) => {
                let mut children = Vec::with_capacity(bookings.len());
                for b in bookings {
                    let refund = RefundState::for_cancellation(
                        b.booking_id,
                        state.event_id,
                        b.buyer_id,
                        state.poll_after_secs,
                    );
                    children.push(ChildStart::of::<Refund>(
                        child_key(b.booking_id),
                        &refund,
                        Some(b.buyer_id),
                    ));
                    next.cursor = Some(b.booking_id);
                }
                next.started += bookings.len() as u32;
                next.in_flight += bookings.len() as u32;
                // An empty batch means there is nothing after it whatever it
                // says: asking again from the same cursor would find nothing
                // again, for ever.
                next.exhausted = *exhausted || bookings.is_empty();
                let mut d = refill(next);
                d.children = children;
                d
            }
            (Phase::Refunding, Input::ChildEnded(end)) => {
                next.in_flight = next.in_flight.saturating_sub(1);
                if end.status == RunStatus::Completed {
                    next.refunded += 1;
                    let amount = end
                        .view
                        .get("amount_minor")
                        .and_then(|v| v.as_i64())
                        .zip(end.view.get("currency").and_then(|v| v.as_str()))
                        .map(|(a, c)| Money::new(a, c));
                    if let Some(amount) = amount {
                        next.refunded_amount = Some(match &next.refunded_amount {
                            Some(sum) => sum.checked_add(&amount).unwrap_or_else(|| sum.clone()),
                            None => amount,
                        });
                    }
                } else {
                    next.not_refunded += 1;
                }
                refill(next)
            }
            _ => ignore(state),
        }
    }
}
