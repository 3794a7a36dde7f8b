//! The waitlist offer: units held for one waitlist entry until a deadline.
//!
//! The dispatcher starts the run in the transaction that holds the entry's
//! units for it (its hold row, `held += quantity`) and marks the entry
//! `offered`. Then:
//!
//! ```text
//! start ─► notifying ─► waiting ─(accepted)──────────────────────────► completed (the checkout owns the hold)
//!                          │ (declined / left / deadline)
//!                          ▼
//!                      releasing ─► completed (entry declined / left / expired; units to the next entry)
//! ```
//!
//! Accepting moves the hold to the checkout in the accept request's own
//! transaction (the run only hears of it), so the release finds the entry
//! `accepted` and gives nothing back when an accept beat the deadline or a
//! decline. An operator's cancel releases like a deadline (without the email)
//! and ends the run `cancelled`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::{self, NoRemote, RunStatus, Workflow};

#[cfg(test)]
mod tests;

/// The participant accepted (their checkout owns the hold now).
pub const SIGNAL_ACCEPTED: &str = "accepted";
/// The participant declined the offer.
pub const SIGNAL_DECLINED: &str = "declined";
/// The participant left the waitlist while offered.
pub const SIGNAL_LEFT: &str = "left";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Start,
    Notifying,
    Waiting,
    Releasing,
    Ended,
}

impl Phase {
    pub fn step(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Notifying => "notifying",
            Phase::Waiting => "waiting",
            Phase::Releasing => "releasing",
            Phase::Ended => "ended",
        }
    }
}

/// How the offer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    Accepted,
    Declined,
    Left,
    /// The deadline passed.
    Expired,
    /// An operator called the offer off.
    Cancelled,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Accepted => "accepted",
            End::Declined => "declined",
            End::Left => "left",
            End::Expired => "expired",
            End::Cancelled => "cancelled",
        }
    }

    /// The entry's status after it (`waitlist_entries.status`).
    pub fn entry_status(self) -> &'static str {
        match self {
            End::Accepted => "accepted",
            End::Declined => "declined",
            End::Left => "left",
            End::Expired | End::Cancelled => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferState {
    pub entry_id: Uuid,
    pub event_id: Uuid,
    pub ticket_type_id: Uuid,
    pub participant_id: Uuid,
    pub quantity: i32,
    /// The offer's deadline (`offer_expires_at` of the entry, and its hold's).
    pub expires_at: DateTime<Utc>,
    pub phase: Phase,
    /// What the release under way is for.
    #[serde(default)]
    pub releasing_for: Option<End>,
    pub end: Option<End>,
}

impl OfferState {
    pub fn new(
        entry_id: Uuid,
        event_id: Uuid,
        ticket_type_id: Uuid,
        participant_id: Uuid,
        quantity: i32,
        expires_at: DateTime<Utc>,
    ) -> Self {
        OfferState {
            entry_id,
            event_id,
            ticket_type_id,
            participant_id,
            quantity,
            expires_at,
            phase: Phase::Start,
            releasing_for: None,
            end: None,
        }
    }
}

/// Changes to our own tables (the offer's effects module in `workers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalCommand {
    /// Email the participant: the offer, what it holds, until when.
    Notify,
    /// Give the hold back and end the entry as `end` says (unless an accept
    /// took the hold first); a deadline also emails the participant.
    Release { end: End },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalOutcome {
    Notified,
    Released,
    /// The entry was accepted first: the hold is the checkout's.
    WasAccepted,
}

pub type Input = engine::Input<LocalOutcome, ()>;
pub type Command = engine::Command<LocalCommand, NoRemote>;
type Decision = engine::Decision<OfferState, Command>;

/// What the participant sees of an offer run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferView {
    pub entry_id: Uuid,
    pub ticket_type_id: Uuid,
    pub quantity: i32,
    pub expires_at: DateTime<Utc>,
    /// `open`, `accepted`, `declined`, `left`, `expired`, `cancelled`.
    pub state: &'static str,
}

pub struct WaitlistOffer;

fn decision(
    state: OfferState,
    status: RunStatus,
    command: Option<LocalCommand>,
    wake_at: Option<DateTime<Utc>>,
) -> Decision {
    Decision {
        step: state.phase.step(),
        state,
        status,
        command: command.map(Command::Local),
        children: Vec::new(),
        wake_at,
        accepted: true,
    }
}

fn ignore(state: &OfferState) -> Decision {
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

fn release(mut state: OfferState, end: End) -> Decision {
    state.phase = Phase::Releasing;
    state.releasing_for = Some(end);
    let status = if end == End::Cancelled {
        RunStatus::Compensating
    } else {
        RunStatus::Running
    };
    decision(state, status, Some(LocalCommand::Release { end }), None)
}

fn ended(mut state: OfferState, end: End) -> Decision {
    state.phase = Phase::Ended;
    state.end = Some(end);
    let status = if end == End::Cancelled {
        RunStatus::Cancelled
    } else {
        RunStatus::Completed
    };
    decision(state, status, None, None)
}

impl Workflow for WaitlistOffer {
    const KIND: &'static str = "waitlist_offer";
    type State = OfferState;
    type Local = LocalCommand;
    type LocalOutcome = LocalOutcome;
    type Remote = NoRemote;
    type RemoteOutcome = ();
    type View = OfferView;

    fn initial_step() -> &'static str {
        Phase::Start.step()
    }

    fn view(state: &OfferState) -> OfferView {
        OfferView {
            entry_id: state.entry_id,
            ticket_type_id: state.ticket_type_id,
            quantity: state.quantity,
            expires_at: state.expires_at,
            state: match state.end {
                Some(end) => end.as_str(),
                None => "open",
            },
        }
    }

    fn decide(state: &OfferState, input: &Input, now: DateTime<Utc>) -> Decision {
        let next = state.clone();
        match (state.phase, input) {
            (Phase::Start, Input::Start) => {
                let mut next = next;
                next.phase = Phase::Notifying;
                decision(next, RunStatus::Running, Some(LocalCommand::Notify), None)
            }
            (Phase::Notifying, Input::Local(LocalOutcome::Notified)) => {
                let mut next = next;
                next.phase = Phase::Waiting;
                let deadline = next.expires_at;
                decision(next, RunStatus::Waiting, None, Some(deadline))
            }
            (Phase::Waiting, Input::Signal { name, .. }) => match name.as_str() {
                SIGNAL_ACCEPTED => ended(next, End::Accepted),
                SIGNAL_DECLINED => release(next, End::Declined),
                SIGNAL_LEFT => release(next, End::Left),
                _ => ignore(state),
            },
            (Phase::Waiting, Input::Timer) if now >= state.expires_at => {
                release(next, End::Expired)
            }
            (Phase::Start | Phase::Notifying | Phase::Waiting, Input::Cancel) => {
                release(next, End::Cancelled)
            }
            (Phase::Releasing, Input::Local(LocalOutcome::Released)) => {
                let end = state.releasing_for.unwrap_or(End::Expired);
                ended(next, end)
            }
            (Phase::Releasing, Input::Local(LocalOutcome::WasAccepted)) => {
                ended(next, End::Accepted)
            }
            _ => ignore(state),
        }
    }
}
