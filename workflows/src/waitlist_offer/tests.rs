//! Every transition of the waitlist offer.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::engine::{RunStatus, Workflow};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn deadline() -> DateTime<Utc> {
    t0() + Duration::hours(12)
}

fn fresh() -> OfferState {
    OfferState::new(
        Uuid::from_u128(1),
        Uuid::from_u128(2),
        Uuid::from_u128(3),
        Uuid::from_u128(4),
        2,
        deadline(),
    )
}

fn signal(name: &str) -> Input {
    Input::Signal {
        name: name.into(),
        payload: json!({}),
    }
}

fn feed(state: &OfferState, input: Input, now: DateTime<Utc>) -> Decision {
    let d = WaitlistOffer::decide(state, &input, now);
    assert!(d.accepted, "{input:?} rejected in {:?}", state.phase);
    d
}

/// The run notified and now waits for an answer.
fn waiting() -> OfferState {
    let d = feed(&fresh(), Input::Start, t0());
    feed(&d.state, Input::Local(LocalOutcome::Notified), t0()).state
}

#[test]
fn start_emails_the_participant() {
    let d = feed(&fresh(), Input::Start, t0());
    assert_eq!(d.step, "notifying");
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.command, Some(Command::Local(LocalCommand::Notify)));
}

#[test]
fn notified_waits_until_the_deadline() {
    let d = feed(&fresh(), Input::Start, t0());
    let d = feed(&d.state, Input::Local(LocalOutcome::Notified), t0());
    assert_eq!(d.step, "waiting");
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.wake_at, Some(deadline()));
    assert_eq!(d.command, None);
    assert_eq!(WaitlistOffer::view(&d.state).state, "open");
}

#[test]
fn accepted_finishes_and_leaves_the_hold_to_the_checkout() {
    let d = feed(
        &waiting(),
        signal(SIGNAL_ACCEPTED),
        t0() + Duration::hours(1),
    );
    assert_eq!(d.status, RunStatus::Completed);
    assert_eq!(d.command, None, "no release: the checkout owns the hold");
    assert_eq!(d.state.end, Some(End::Accepted));
    assert_eq!(WaitlistOffer::view(&d.state).state, "accepted");
}

#[test]
fn declined_releases_then_ends_declined() {
    let d = feed(&waiting(), signal(SIGNAL_DECLINED), t0());
    assert_eq!(d.step, "releasing");
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::Release { end: End::Declined }))
    );
    let d = feed(&d.state, Input::Local(LocalOutcome::Released), t0());
    assert_eq!(d.status, RunStatus::Completed);
    assert_eq!(d.state.end, Some(End::Declined));
    assert_eq!(End::Declined.entry_status(), "declined");
}

#[test]
fn left_releases_then_ends_left() {
    let d = feed(&waiting(), signal(SIGNAL_LEFT), t0());
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::Release { end: End::Left }))
    );
    let d = feed(&d.state, Input::Local(LocalOutcome::Released), t0());
    assert_eq!(d.state.end, Some(End::Left));
    assert_eq!(End::Left.entry_status(), "left");
}

#[test]
fn the_deadline_releases_then_ends_expired() {
    let d = feed(&waiting(), Input::Timer, deadline());
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::Release { end: End::Expired }))
    );
    let d = feed(&d.state, Input::Local(LocalOutcome::Released), deadline());
    assert_eq!(d.status, RunStatus::Completed);
    assert_eq!(d.state.end, Some(End::Expired));
    assert_eq!(WaitlistOffer::view(&d.state).state, "expired");
}

#[test]
fn an_early_timer_is_ignored() {
    let d = WaitlistOffer::decide(&waiting(), &Input::Timer, deadline() - Duration::seconds(1));
    assert!(!d.accepted);
}

#[test]
fn an_accept_that_beat_the_release_wins() {
    // The deadline fired while the participant's accept was being recorded.
    let d = feed(&waiting(), Input::Timer, deadline());
    let d = feed(
        &d.state,
        Input::Local(LocalOutcome::WasAccepted),
        deadline(),
    );
    assert_eq!(d.status, RunStatus::Completed);
    assert_eq!(d.state.end, Some(End::Accepted));
}

#[test]
fn an_operator_cancel_releases_and_ends_cancelled() {
    for state in [fresh(), waiting()] {
        let d = feed(&state, Input::Cancel, t0());
        assert_eq!(d.status, RunStatus::Compensating);
        assert_eq!(
            d.command,
            Some(Command::Local(LocalCommand::Release {
                end: End::Cancelled
            }))
        );
        let d = feed(&d.state, Input::Local(LocalOutcome::Released), t0());
        assert_eq!(d.status, RunStatus::Cancelled);
        assert_eq!(End::Cancelled.entry_status(), "expired");
    }
}

#[test]
fn signals_and_timers_after_the_end_change_nothing() {
    let done = feed(&waiting(), signal(SIGNAL_ACCEPTED), t0()).state;
    for input in [
        signal(SIGNAL_DECLINED),
        signal(SIGNAL_ACCEPTED),
        Input::Timer,
        Input::Cancel,
    ] {
        let d = WaitlistOffer::decide(&done, &input, deadline());
        assert!(!d.accepted, "{input:?}");
        assert_eq!(d.state, done);
    }
}

#[test]
fn unknown_signals_and_stray_outcomes_are_ignored() {
    let state = waiting();
    assert!(!WaitlistOffer::decide(&state, &signal("payment_succeeded"), t0()).accepted);
    assert!(!WaitlistOffer::decide(&state, &Input::Local(LocalOutcome::Released), t0()).accepted);
    // A signal that arrives while the email step runs waits its turn.
    let notifying = feed(&fresh(), Input::Start, t0()).state;
    assert!(!WaitlistOffer::decide(&notifying, &signal(SIGNAL_ACCEPTED), t0()).accepted);
}
