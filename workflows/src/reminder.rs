//! Mailings: reminders before an event and organizer messages to its ticket
//! holders. Both are one run that waits for its time and then emails its
//! recipients in batches; they differ in who the recipients are and what
//! they read, so they share this machine and are two kinds
//! ([`Reminder`], [`OrganizerMessage`]): each has its own name in metrics,
//! in the runs list and in the status API.
//!
//! ```text
//! start ─► scheduled ──(its time: wake_at)──► sending ◄─────────┐
//!             │  reschedule: new wake_at         │ next batch:   │
//!             │                                  │ queue up to   │
//!             │                                  │ `batch_size`  │
//!             │                                  │ emails, move  │
//!             │                                  │ the cursor ───┘
//!             │                                  └─ nothing left ─► completed
//!             ├─ cancel (event cancelled, offset removed, message withdrawn) ─► cancelled
//!             └─ a reminder whose event has started by then ─► skipped (completed)
//! ```
//!
//! The time is the run's timer (`wake_at`, a delayed outbox message with the
//! sweep as backstop): Postgres holds it however far ahead, never Redis.
//! Progress is the cursor in the state, moved in the very transaction that
//! queues a batch's notifications, so a crash resumes after the last batch
//! committed; a batch applied twice queues nothing twice anyway (each
//! notification has its dedupe key). Between two batches the run waits for
//! a timer due at once: each batch is its own short transaction, and the
//! signals that arrived meanwhile (a cancel) are taken before the next one.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::{self, NoRemote, RunStatus, Workflow};

/// Emails queued per batch, by default.
pub const DEFAULT_BATCH_SIZE: u32 = 500;

/// Signal: the event moved or its offsets changed (payload [`Reschedule`]).
pub const SIGNAL_RESCHEDULE: &str = "mailing.reschedule";
/// Signal: send nothing more (payload `{"reason": …}`).
pub const SIGNAL_CANCEL: &str = "mailing.cancel";

/// Who gets the mailing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Audience {
    /// Each confirmed booking with a valid ticket, whose buyer wants reminders.
    Reminder { offset_minutes: i32 },
    /// Each holder of a valid ticket who wants organizers' messages.
    Message { message_id: Uuid },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Start,
    Scheduled,
    Sending,
    Completed,
    /// A reminder whose event had started by the time it could be sent.
    Skipped,
    Cancelled,
}

impl Phase {
    pub fn step(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Scheduled => "scheduled",
            Phase::Sending => "sending",
            Phase::Completed => "completed",
            Phase::Skipped => "skipped",
            Phase::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailingState {
    pub event_id: Uuid,
    pub audience: Audience,
    /// When it goes out.
    pub due_at: DateTime<Utc>,
    /// When the event starts (a reminder is not sent after that).
    pub starts_at: DateTime<Utc>,
    pub batch_size: u32,
    pub phase: Phase,
    /// Recipients are taken in id order (booking or user); the last one taken.
    pub cursor: Option<Uuid>,
    /// Emails queued.
    pub queued: u32,
    /// Recipients who opted out.
    pub opted_out: u32,
    pub batches: u32,
    /// Why it ended without sending everything (`event_cancelled`,
    /// `event_started`, `offset_removed`, `withdrawn`…).
    pub reason: Option<String>,
}

impl MailingState {
    /// A reminder `offset_minutes` before an event starting at `starts_at`.
    pub fn reminder(event_id: Uuid, offset_minutes: i32, starts_at: DateTime<Utc>) -> Self {
        MailingState::new(
            event_id,
            Audience::Reminder { offset_minutes },
            starts_at - Duration::minutes(i64::from(offset_minutes)),
            starts_at,
        )
    }

    /// An organizer's message, sent at `send_at`.
    pub fn message(
        event_id: Uuid,
        message_id: Uuid,
        send_at: DateTime<Utc>,
        starts_at: DateTime<Utc>,
    ) -> Self {
        MailingState::new(
            event_id,
            Audience::Message { message_id },
            send_at,
            starts_at,
        )
    }

    fn new(
        event_id: Uuid,
        audience: Audience,
        due_at: DateTime<Utc>,
        starts_at: DateTime<Utc>,
    ) -> Self {
        MailingState {
            event_id,
            audience,
            due_at,
            starts_at,
            batch_size: DEFAULT_BATCH_SIZE,
            phase: Phase::Start,
            cursor: None,
            queued: 0,
            opted_out: 0,
            batches: 0,
            reason: None,
        }
    }

    pub fn with_batch_size(mut self, batch_size: u32) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }
}

/// The payload of [`SIGNAL_RESCHEDULE`]: the event as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reschedule {
    pub starts_at: DateTime<Utc>,
    pub offsets_minutes: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalCommand {
    /// Queue the emails of up to `limit` recipients after `after` (id order).
    NextBatch {
        event_id: Uuid,
        audience: Audience,
        after: Option<Uuid>,
        limit: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalOutcome {
    Batch {
        /// Emails queued (duplicates of an earlier attempt are not counted).
        queued: u32,
        opted_out: u32,
        /// The last recipient taken (the new cursor).
        last: Option<Uuid>,
        /// Nothing after this batch.
        exhausted: bool,
    },
    /// The mailing must stop: the event is cancelled or has started (for a
    /// reminder), the message was withdrawn.
    Stop { reason: String },
}

pub type Input = engine::Input<LocalOutcome, ()>;
pub type Command = engine::Command<LocalCommand, NoRemote>;
type Decision = engine::Decision<MailingState, Command>;

/// What the status API and the messages list show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailingView {
    pub event_id: Uuid,
    pub due_at: DateTime<Utc>,
    pub phase: Phase,
    pub queued: u32,
    pub opted_out: u32,
    pub reason: Option<String>,
}

fn decision(
    state: MailingState,
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

fn ignore(state: &MailingState, status: RunStatus) -> Decision {
    Decision {
        step: state.phase.step(),
        state: state.clone(),
        status,
        command: None,
        children: Vec::new(),
        wake_at: None,
        accepted: false,
    }
}

/// The status a run in `phase` has while it is not carrying out a command.
fn resting_status(phase: Phase) -> RunStatus {
    match phase {
        Phase::Start => RunStatus::Running,
        Phase::Scheduled | Phase::Sending => RunStatus::Waiting,
        Phase::Completed | Phase::Skipped => RunStatus::Completed,
        Phase::Cancelled => RunStatus::Cancelled,
    }
}

fn next_batch(mut state: MailingState) -> Decision {
    state.phase = Phase::Sending;
    let command = LocalCommand::NextBatch {
        event_id: state.event_id,
        audience: state.audience.clone(),
        after: state.cursor,
        limit: state.batch_size,
    };
    decision(
        state,
        RunStatus::Running,
        Some(Command::Local(command)),
        None,
    )
}

fn scheduled(mut state: MailingState) -> Decision {
    state.phase = Phase::Scheduled;
    let due = state.due_at;
    decision(state, RunStatus::Waiting, None, Some(due))
}

fn end(mut state: MailingState, phase: Phase, reason: Option<&str>) -> Decision {
    state.phase = phase;
    state.reason = reason.map(str::to_owned);
    decision(state, resting_status(phase), None, None)
}

/// The one `decide` of both kinds.
pub fn decide(state: &MailingState, input: &Input, now: DateTime<Utc>) -> Decision {
    let next = state.clone();
    let resting = resting_status(state.phase);
    match (state.phase, input) {
        (Phase::Start, Input::Start) => scheduled(next),
        (Phase::Scheduled, Input::Timer) => match state.audience {
            // A reminder that could not go out before the event started
            // (Boxoffice was down) is pointless after it.
            Audience::Reminder { .. } if now >= state.starts_at => {
                end(next, Phase::Skipped, Some("event_started"))
            }
            _ => next_batch(next),
        },
        // Each batch is followed by a timer due at once (see the module docs).
        (Phase::Sending, Input::Timer) => next_batch(next),
        (
            Phase::Sending,
            Input::Local(LocalOutcome::Batch {
                queued,
                opted_out,
                last,
                exhausted,
            }),
        ) => {
            let mut next = next;
            next.queued += queued;
            next.opted_out += opted_out;
            next.batches += 1;
            if last.is_some() {
                next.cursor = *last;
            }
            // An empty batch means nothing is left whatever it says.
            if *exhausted || last.is_none() {
                return end(next, Phase::Completed, None);
            }
            decision(next, RunStatus::Waiting, None, Some(now))
        }
        (Phase::Sending, Input::Local(LocalOutcome::Stop { reason })) => {
            let phase = if reason == "event_started" {
                Phase::Skipped
            } else {
                Phase::Cancelled
            };
            end(next, phase, Some(reason))
        }
        (Phase::Scheduled | Phase::Sending, Input::Signal { name, payload })
            if name == SIGNAL_CANCEL =>
        {
            let reason = payload
                .get("reason")
                .and_then(|r| r.as_str())
                .unwrap_or("cancelled");
            end(next, Phase::Cancelled, Some(reason))
        }
        // Moving the event moves a reminder that has not gone out; once it is
        // going out it finishes (a new time would only send it twice).
        (Phase::Scheduled, Input::Signal { name, payload }) if name == SIGNAL_RESCHEDULE => {
            let Ok(change) = serde_json::from_value::<Reschedule>(payload.clone()) else {
                return ignore(state, resting);
            };
            let mut next = next;
            next.starts_at = change.starts_at;
            if let Audience::Reminder { offset_minutes } = state.audience {
                if !change.offsets_minutes.contains(&offset_minutes) {
                    return end(next, Phase::Cancelled, Some("offset_removed"));
                }
                next.due_at = change.starts_at - Duration::minutes(i64::from(offset_minutes));
            }
            scheduled(next)
        }
        (Phase::Scheduled | Phase::Sending, Input::Cancel) => {
            end(next, Phase::Cancelled, Some("cancelled_by_operator"))
        }
        _ => ignore(state, resting),
    }
}

fn view(state: &MailingState) -> MailingView {
    MailingView {
        event_id: state.event_id,
        due_at: state.due_at,
        phase: state.phase,
        queued: state.queued,
        opted_out: state.opted_out,
        reason: state.reason.clone(),
    }
}

/// Reminders before an event: one run per event and offset.
pub struct Reminder;

impl Workflow for Reminder {
    const KIND: &'static str = "reminder";
    type State = MailingState;
    type Local = LocalCommand;
    type LocalOutcome = LocalOutcome;
    type Remote = NoRemote;
    type RemoteOutcome = ();
    type View = MailingView;

    fn initial_step() -> &'static str {
        Phase::Start.step()
    }

    fn view(state: &MailingState) -> MailingView {
        view(state)
    }

    fn decide(state: &MailingState, input: &Input, now: DateTime<Utc>) -> Decision {
        decide(state, input, now)
    }
}

/// An organizer's message to an event's ticket holders: one run per message.
pub struct OrganizerMessage;

impl Workflow for OrganizerMessage {
    const KIND: &'static str = "organizer_message";
    type State = MailingState;
    type Local = LocalCommand;
    type LocalOutcome = LocalOutcome;
    type Remote = NoRemote;
    type RemoteOutcome = ();
    type View = MailingView;

    fn initial_step() -> &'static str {
        Phase::Start.step()
    }

    fn view(state: &MailingState) -> MailingView {
        view(state)
    }

    fn decide(state: &MailingState, input: &Input, now: DateTime<Utc>) -> Decision {
        decide(state, input, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    fn started_reminder() -> MailingState {
        let state = MailingState::reminder(Uuid::nil(), 60, at(120)).with_batch_size(2);
        let d = decide(&state, &Input::Start, at(0));
        assert_eq!(d.status, RunStatus::Waiting);
        assert_eq!(d.wake_at, Some(at(60)));
        d.state
    }

    #[test]
    fn a_reminder_waits_for_its_time_then_sends_in_batches() {
        let state = started_reminder();
        let d = decide(&state, &Input::Timer, at(60));
        assert_eq!(d.status, RunStatus::Running);
        assert!(matches!(
            d.command,
            Some(engine::Command::Local(LocalCommand::NextBatch {
                after: None,
                limit: 2,
                ..
            }))
        ));
        let first = Uuid::from_u128(2);
        let d = decide(
            &d.state,
            &Input::Local(LocalOutcome::Batch {
                queued: 1,
                opted_out: 1,
                last: Some(first),
                exhausted: false,
            }),
            at(60),
        );
        // Yields between batches: waits for a timer due at once.
        assert_eq!(d.status, RunStatus::Waiting);
        assert_eq!(d.wake_at, Some(at(60)));
        assert_eq!(d.state.cursor, Some(first));
        let d = decide(&d.state, &Input::Timer, at(60));
        assert!(matches!(
            d.command,
            Some(engine::Command::Local(LocalCommand::NextBatch { after: Some(a), .. })) if a == first
        ));
        let d = decide(
            &d.state,
            &Input::Local(LocalOutcome::Batch {
                queued: 1,
                opted_out: 0,
                last: Some(Uuid::from_u128(3)),
                exhausted: true,
            }),
            at(60),
        );
        assert_eq!(d.status, RunStatus::Completed);
        assert_eq!((d.state.queued, d.state.opted_out), (2, 1));
    }

    #[test]
    fn a_reminder_due_after_the_start_is_skipped() {
        let state = started_reminder();
        let d = decide(&state, &Input::Timer, at(121));
        assert_eq!(d.status, RunStatus::Completed);
        assert_eq!(d.step, "skipped");
        assert!(d.command.is_none());
        // Late but before the start: sent.
        let d = decide(&state, &Input::Timer, at(119));
        assert_eq!(d.step, "sending");
    }

    #[test]
    fn moving_the_event_moves_the_timer_and_removing_the_offset_cancels() {
        let state = started_reminder();
        let moved = Input::Signal {
            name: SIGNAL_RESCHEDULE.into(),
            payload: serde_json::json!({ "starts_at": at(300), "offsets_minutes": [60, 1440] }),
        };
        let d = decide(&state, &moved, at(1));
        assert_eq!(d.status, RunStatus::Waiting);
        assert_eq!(d.wake_at, Some(at(240)));
        let removed = Input::Signal {
            name: SIGNAL_RESCHEDULE.into(),
            payload: serde_json::json!({ "starts_at": at(300), "offsets_minutes": [1440] }),
        };
        let d = decide(&d.state, &removed, at(2));
        assert_eq!(d.status, RunStatus::Cancelled);
        assert_eq!(d.state.reason.as_deref(), Some("offset_removed"));
    }

    #[test]
    fn a_cancel_stops_a_scheduled_or_sending_mailing_and_nothing_after_the_end() {
        let state = started_reminder();
        let cancel = Input::Signal {
            name: SIGNAL_CANCEL.into(),
            payload: serde_json::json!({ "reason": "event_cancelled" }),
        };
        let d = decide(&state, &cancel, at(1));
        assert_eq!(d.status, RunStatus::Cancelled);
        let again = decide(&d.state, &Input::Timer, at(61));
        assert!(!again.accepted);
        assert_eq!(again.status, RunStatus::Cancelled);
        let stop = decide(
            &decide(&state, &Input::Timer, at(60)).state,
            &Input::Local(LocalOutcome::Stop {
                reason: "event_cancelled".into(),
            }),
            at(60),
        );
        assert_eq!(stop.status, RunStatus::Cancelled);
    }

    #[test]
    fn a_message_is_sent_whenever_its_time_comes() {
        let state = MailingState::message(Uuid::nil(), Uuid::nil(), at(10), at(5));
        let d = decide(&state, &Input::Start, at(0));
        let d = decide(&d.state, &Input::Timer, at(10));
        assert_eq!(d.step, "sending");
    }
}
