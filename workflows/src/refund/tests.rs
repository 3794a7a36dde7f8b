//! Every transition and compensation of the refund workflow, and random walks
//! against a model of the payment provider and the engine.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::engine::{ChildEnd, ErrorView, RemoteEffect, RunStatus, Workflow};
use crate::payments::{RefundReport, RefundStatus};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

const PAID: i64 = 9000;
const POLL_SECS: i64 = 60;

fn booking() -> Uuid {
    Uuid::from_u128(1)
}

fn tickets() -> Vec<Uuid> {
    vec![Uuid::from_u128(10), Uuid::from_u128(11)]
}

fn refund_of(requested_by: RequestedBy, amount: i64, intent: Option<&str>) -> RefundState {
    RefundState::new(
        booking(),
        Uuid::from_u128(2),
        Uuid::from_u128(3),
        requested_by,
        tickets(),
        Money::new(amount, "EUR"),
        intent.map(str::to_owned),
        Some("cannot come".into()),
        POLL_SECS,
    )
}

fn buyer_refund() -> RefundState {
    refund_of(RequestedBy::Buyer, PAID, Some("pi_1"))
}

fn cancellation_refund() -> RefundState {
    refund_of(RequestedBy::EventCancellation, PAID, Some("pi_1"))
}

/// Feeds one input that must be accepted.
fn step(state: &RefundState, input: Input) -> Decision {
    let d = Refund::decide(state, &input, t0());
    assert!(d.accepted, "{input:?} rejected in {:?}", state.phase);
    assert_eq!(d.step, d.state.phase.step());
    d
}

/// Feeds inputs in order, each accepted; returns the last decision.
fn run(state: RefundState, inputs: Vec<Input>) -> Decision {
    let mut state = state;
    let mut last = None;
    for input in inputs {
        let d = step(&state, input);
        state = d.state.clone();
        last = Some(d);
    }
    last.expect("at least one input")
}

/// Feeds an input that must be dropped, leaving everything as it was.
fn assert_ignored(state: &RefundState, input: Input) {
    let d = Refund::decide(state, &input, t0());
    assert!(!d.accepted, "{input:?} taken in {:?}", state.phase);
    assert_eq!(&d.state, state);
    assert_eq!(d.command, None);
}

fn report(refund_id: &str, status: RefundStatus, reason: Option<&str>) -> PaymentOutcome {
    PaymentOutcome::Refund(RefundReport {
        refund_id: refund_id.into(),
        status,
        amount_minor: PAID,
        failure_reason: reason.map(str::to_owned),
    })
}

fn answer(key: &str, refund_id: &str, status: RefundStatus) -> Input {
    Input::RemoteDone {
        key: key.into(),
        outcome: report(refund_id, status, None),
    }
}

fn webhook(refund_id: &str, status: &str, intent: &str, amount: i64) -> Input {
    Input::Signal {
        name: SIGNAL_REFUND_UPDATED.into(),
        payload: json!({
            "refund_id": refund_id,
            "status": status,
            "amount_minor": amount,
            "currency": "EUR",
            "payment_intent": intent,
            "failure_reason": if status == "failed" { Some("expired_or_canceled_card") } else { None },
        }),
    }
}

fn refused(key: &str) -> Input {
    Input::RemoteFailed {
        key: key.into(),
        error: "payment provider refused the request (charge_disputed)".into(),
    }
}

fn is_create(command: &Option<Command>, key: &str) -> bool {
    matches!(command, Some(Command::Remote(PaymentCommand::RefundPayment { key: k, intent_id, amount_minor }))
        if k == key && intent_id == "pi_1" && *amount_minor == PAID)
}

fn complete_with(refund_id: Option<&str>) -> Option<Command> {
    Some(Command::Local(LocalCommand::Complete {
        refund_id: refund_id.map(str::to_owned),
    }))
}

/// A buyer's refund waiting for the provider after a `pending` answer.
fn pending(state: RefundState) -> RefundState {
    run(
        state,
        vec![
            Input::Start,
            answer("refund:1", "re_1", RefundStatus::Pending),
        ],
    )
    .state
}

/// A refund the provider refused, parked for an operator.
fn parked(state: RefundState) -> RefundState {
    let d = run(
        state,
        vec![
            Input::Start,
            answer("refund:1", "re_1", RefundStatus::Failed),
        ],
    );
    if d.state.restores_tickets() {
        step(&d.state, Input::Local(LocalOutcome::Restored)).state
    } else {
        d.state
    }
}

#[test]
fn start_asks_the_provider_for_the_refund_under_the_first_key() {
    let d = step(&buyer_refund(), Input::Start);
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.step, "refunding");
    assert!(is_create(&d.command, "refund:1"), "{:?}", d.command);
    assert_eq!(d.wake_at, None);
    assert!(d.children.is_empty());
    let view = Refund::view(&d.state);
    assert_eq!(view.state, "refunding");
    assert_eq!(view.refund_id, None);
    assert_eq!(view.amount_minor, PAID);
    assert_eq!(view.currency, "EUR");
    assert_eq!(view.ticket_ids, tickets());
}

#[test]
fn a_free_refund_completes_without_asking_the_provider() {
    // Free tickets (nothing paid, no intent), and a zero amount on a paid order.
    for state in [
        refund_of(RequestedBy::Buyer, 0, None),
        refund_of(RequestedBy::Organizer, 0, Some("pi_1")),
        refund_of(RequestedBy::EventCancellation, 0, None),
    ] {
        assert_eq!(Refund::money_at_stake(&state), None);
        let d = step(&state, Input::Start);
        assert_eq!(d.status, RunStatus::Running);
        assert_eq!(d.step, "completing");
        assert_eq!(d.command, complete_with(None));
        assert_eq!(d.state.refund, None);
        let done = step(&d.state, Input::Local(LocalOutcome::Completed));
        assert_eq!(done.status, RunStatus::Completed);
        assert_eq!(done.step, "completed");
        assert_eq!(done.command, None);
        assert_eq!(Refund::view(&done.state).state, "refunded");
        assert_eq!(Refund::money_at_stake(&done.state), None);
    }
}

#[test]
fn a_succeeded_answer_completes_with_the_providers_refund() {
    let d = run(
        buyer_refund(),
        vec![
            Input::Start,
            answer("refund:1", "re_1", RefundStatus::Succeeded),
        ],
    );
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.step, "completing");
    assert_eq!(d.command, complete_with(Some("re_1")));
    assert!(
        Refund::money_at_stake(&d.state).is_some(),
        "owed until it is written down"
    );
    let done = step(&d.state, Input::Local(LocalOutcome::Completed));
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.command, None);
    assert_eq!(Refund::view(&done.state).state, "refunded");
    assert_eq!(Refund::view(&done.state).refund_id.as_deref(), Some("re_1"));
    assert_eq!(Refund::money_at_stake(&done.state), None);
}

#[test]
fn a_pending_answer_waits_for_the_webhook_that_says_succeeded() {
    let d = run(
        buyer_refund(),
        vec![
            Input::Start,
            answer("refund:1", "re_1", RefundStatus::Pending),
        ],
    );
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.step, "refunding");
    assert_eq!(d.command, None);
    assert_eq!(d.wake_at, Some(t0() + Duration::seconds(POLL_SECS)));
    assert_eq!(Refund::view(&d.state).refund_id.as_deref(), Some("re_1"));
    // `requires_action` is not done either.
    let d = step(&d.state, webhook("re_1", "requires_action", "pi_1", PAID));
    assert_eq!(d.status, RunStatus::Waiting);
    let d = step(&d.state, webhook("re_1", "succeeded", "pi_1", PAID));
    assert_eq!(d.command, complete_with(Some("re_1")));
    // The same webhook again, and a late `pending` one: nothing more.
    assert_ignored(&d.state, webhook("re_1", "succeeded", "pi_1", PAID));
    assert_ignored(&d.state, webhook("re_1", "pending", "pi_1", PAID));
}

#[test]
fn no_webhook_in_time_asks_the_provider_and_its_answer_decides() {
    let waiting = pending(buyer_refund());
    let d = step(&waiting, Input::Timer);
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(
        d.command,
        Some(Command::Remote(PaymentCommand::RetrieveRefund {
            key: "refund:1:lookup:1".into(),
            refund_id: "re_1".into(),
        }))
    );
    let asked = d.state;

    // Succeeded: done.
    let d = step(
        &asked,
        answer("refund:1:lookup:1", "re_1", RefundStatus::Succeeded),
    );
    assert_eq!(d.command, complete_with(Some("re_1")));

    // Still pending: wait again, then ask under a new lookup key.
    let d = step(
        &asked,
        answer("refund:1:lookup:1", "re_1", RefundStatus::Pending),
    );
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.wake_at, Some(t0() + Duration::seconds(POLL_SECS)));
    let d = step(&d.state, Input::Timer);
    assert!(
        matches!(&d.command, Some(Command::Remote(PaymentCommand::RetrieveRefund { key, .. })) if key == "refund:1:lookup:2")
    );

    // Failed: not a refund; the buyer gets the tickets back.
    let d = step(
        &asked,
        answer("refund:1:lookup:1", "re_1", RefundStatus::Failed),
    );
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(d.command, Some(Command::Local(LocalCommand::Restore)));
}

#[test]
fn a_lookup_that_fails_is_asked_again_later() {
    let asked = step(&pending(buyer_refund()), Input::Timer).state;
    let d = step(
        &asked,
        Input::RemoteFailed {
            key: "refund:1:lookup:1".into(),
            error: "payment provider unavailable: timeout".into(),
        },
    );
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.command, None);
    assert_eq!(d.wake_at, Some(t0() + Duration::seconds(POLL_SECS)));
    assert_eq!(d.step, "refunding");
}

#[test]
fn a_failed_answer_gives_the_buyer_the_tickets_back_and_parks_the_run() {
    let d = run(
        buyer_refund(),
        vec![
            Input::Start,
            Input::RemoteDone {
                key: "refund:1".into(),
                outcome: report(
                    "re_1",
                    RefundStatus::Failed,
                    Some("expired_or_canceled_card"),
                ),
            },
        ],
    );
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(d.step, "restoring");
    assert_eq!(d.command, Some(Command::Local(LocalCommand::Restore)));
    assert_eq!(d.state.error.as_ref().unwrap().code, "refund_failed");
    assert!(
        !d.state.error.as_ref().unwrap().detail.contains("expired"),
        "the provider's own words stay out of the participant's view"
    );
    assert_eq!(
        d.state.refund.as_ref().unwrap().failure_reason.as_deref(),
        Some("expired_or_canceled_card")
    );
    assert!(Refund::money_at_stake(&d.state).is_some());
    assert_eq!(Refund::view(&d.state).state, "failed");

    let parked = step(&d.state, Input::Local(LocalOutcome::Restored));
    assert_eq!(parked.status, RunStatus::Failed);
    assert_eq!(parked.step, "failed");
    assert_eq!(parked.command, None);
    assert_eq!(Refund::view(&parked.state).state, "failed");
    // The tickets are the buyer's again: nothing is owed.
    assert_eq!(Refund::money_at_stake(&parked.state), None);
}

#[test]
fn a_refusal_of_the_create_call_is_a_failed_refund_too() {
    let d = run(buyer_refund(), vec![Input::Start, refused("refund:1")]);
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(d.command, Some(Command::Local(LocalCommand::Restore)));
    let t = d.state.refund.as_ref().unwrap();
    assert_eq!(t.refund_id, None);
    assert_eq!(
        t.failure_reason.as_deref(),
        Some("payment provider refused the request (charge_disputed)")
    );
    assert_eq!(d.state.error.as_ref().unwrap().code, "refund_failed");
}

#[test]
fn a_refund_reported_failed_after_pending_gives_the_tickets_back() {
    let d = step(
        &pending(buyer_refund()),
        webhook("re_1", "failed", "pi_1", PAID),
    );
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(d.command, Some(Command::Local(LocalCommand::Restore)));
    // A `canceled` refund is not one either.
    let d = step(
        &pending(buyer_refund()),
        webhook("re_1", "canceled", "pi_1", PAID),
    );
    assert_eq!(d.command, Some(Command::Local(LocalCommand::Restore)));
}

#[test]
fn in_an_event_cancellation_a_failed_refund_parks_with_the_money_owed() {
    for failure in [
        answer("refund:1", "re_1", RefundStatus::Failed),
        refused("refund:1"),
    ] {
        let d = run(cancellation_refund(), vec![Input::Start, failure]);
        assert_eq!(d.status, RunStatus::Failed);
        assert_eq!(d.step, "failed");
        assert_eq!(
            d.command, None,
            "the tickets of a cancelled event never come back"
        );
        assert_eq!(d.state.error.as_ref().unwrap().code, "refund_failed");
        let owed = Refund::money_at_stake(&d.state).expect("the refund is owed");
        assert!(owed.contains("90.00 EUR"), "{owed}");
        assert!(owed.contains(&booking().to_string()), "{owed}");
        assert!(owed.contains("pi_1"), "{owed}");
    }
    // A failure reported later, after `pending`, too.
    let d = step(
        &pending(cancellation_refund()),
        webhook("re_1", "failed", "pi_1", PAID),
    );
    assert_eq!(d.status, RunStatus::Failed);
    assert!(Refund::money_at_stake(&d.state).is_some());
}

#[test]
fn an_operators_retry_marks_the_tickets_again_and_refunds_under_a_new_key() {
    let failed = parked(buyer_refund());
    let d = step(&failed, Input::Retry);
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.step, "restoring");
    assert!(!failed.ticket_ids.is_empty());
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::Remark {
            ticket_ids: failed.ticket_ids.clone()
        }))
    );
    assert!(Refund::money_at_stake(&d.state).is_some());

    let d = step(&d.state, Input::Local(LocalOutcome::Remarked));
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.step, "refunding");
    assert!(is_create(&d.command, "refund:2"), "{:?}", d.command);
    assert_eq!(d.state.error, None);
    let t = d.state.refund.as_ref().unwrap();
    assert_eq!(
        (t.attempt, t.refund_id.as_deref(), t.status),
        (2, None, None)
    );

    // The first attempt's answers are not this one's.
    assert_ignored(
        &d.state,
        answer("refund:1", "re_1", RefundStatus::Succeeded),
    );
    let d = step(
        &d.state,
        answer("refund:2", "re_2", RefundStatus::Succeeded),
    );
    assert_eq!(d.command, complete_with(Some("re_2")));
    let done = step(&d.state, Input::Local(LocalOutcome::Completed));
    assert_eq!(done.status, RunStatus::Completed);
}

#[test]
fn an_operators_retry_in_an_event_cancellation_refunds_at_once() {
    let failed = parked(cancellation_refund());
    assert_eq!(failed.phase, Phase::Failed);
    let d = step(&failed, Input::Retry);
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.step, "refunding");
    assert!(is_create(&d.command, "refund:2"), "{:?}", d.command);
    // Failing again parks again, under the next retry's key after that.
    let d = step(&d.state, refused("refund:2"));
    assert_eq!(d.status, RunStatus::Failed);
    let d = step(&d.state, Input::Retry);
    assert!(is_create(&d.command, "refund:3"), "{:?}", d.command);
}

#[test]
fn a_refused_remark_parks_the_run_with_its_code() {
    let failed = parked(buyer_refund());
    let d = run(
        failed,
        vec![
            Input::Retry,
            Input::Local(LocalOutcome::RemarkRefused {
                code: "ticket_used".into(),
            }),
        ],
    );
    assert_eq!(d.status, RunStatus::Failed);
    assert_eq!(d.step, "failed");
    assert_eq!(d.command, None);
    assert_eq!(d.state.error.as_ref().unwrap().code, "ticket_used");
    assert_eq!(Refund::money_at_stake(&d.state), None);
    // The operator may try again later.
    let d = step(&d.state, Input::Retry);
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::Remark {
            ticket_ids: d.state.ticket_ids.clone()
        }))
    );
}

#[test]
fn an_operators_cancel_ends_a_failed_refund() {
    for state in [parked(buyer_refund()), parked(cancellation_refund())] {
        let d = step(&state, Input::Cancel);
        assert_eq!(d.status, RunStatus::Cancelled);
        assert_eq!(d.step, "cancelled");
        assert_eq!(d.command, None);
        assert_eq!(Refund::view(&d.state).state, "cancelled");
        assert_eq!(Refund::money_at_stake(&d.state), None);
        assert_ignored(&d.state, Input::Retry);
        assert_ignored(&d.state, Input::Cancel);
    }
}

#[test]
fn inputs_that_mean_nothing_in_a_phase_are_dropped() {
    let start = buyer_refund();
    let refunding = step(&start, Input::Start).state;
    let waiting = pending(buyer_refund());
    let completing = step(&waiting, webhook("re_1", "succeeded", "pi_1", PAID)).state;
    let completed = step(&completing, Input::Local(LocalOutcome::Completed)).state;
    let restoring = step(&waiting, webhook("re_1", "failed", "pi_1", PAID)).state;
    let failed = parked(buyer_refund());
    let child_end = Input::ChildEnded(ChildEnd {
        key: "x".into(),
        run_id: Uuid::from_u128(99),
        kind: "refund".into(),
        status: RunStatus::Completed,
        view: json!({}),
    });
    for (state, input) in [
        (&start, Input::Timer),
        (&start, Input::Cancel),
        (&start, Input::Local(LocalOutcome::Completed)),
        (&refunding, Input::Start),
        // A running refund is not called off halfway: the provider may be
        // refunding right now.
        (&refunding, Input::Cancel),
        (&refunding, Input::Retry),
        // The create call has not answered: it is still being tried.
        (&refunding, Input::Timer),
        (&refunding, webhook("re_9", "succeeded", "pi_2", PAID)),
        (&refunding, webhook("re_9", "succeeded", "pi_1", PAID - 1)),
        (&refunding, webhook("re_1", "bogus", "pi_1", PAID)),
        (
            &refunding,
            Input::Signal {
                name: "payment_succeeded".into(),
                payload: json!({"intent_id": "pi_1"}),
            },
        ),
        (
            &refunding,
            answer("refund:7", "re_7", RefundStatus::Succeeded),
        ),
        (&refunding, Input::Local(LocalOutcome::Completed)),
        (&refunding, child_end.clone()),
        (&waiting, webhook("re_2", "succeeded", "pi_1", PAID)),
        (
            &waiting,
            answer("refund:1:lookup:9", "re_2", RefundStatus::Succeeded),
        ),
        (
            &waiting,
            Input::RemoteDone {
                key: "refund:1".into(),
                outcome: PaymentOutcome::IntentCancelled,
            },
        ),
        (&completing, Input::Timer),
        (&completing, Input::Cancel),
        (&completing, refused("refund:1")),
        (&completing, Input::Local(LocalOutcome::Restored)),
        (&completed, Input::Retry),
        (&completed, Input::Cancel),
        (&completed, webhook("re_1", "failed", "pi_1", PAID)),
        (&restoring, Input::Cancel),
        (&restoring, Input::Retry),
        (&restoring, webhook("re_1", "succeeded", "pi_1", PAID)),
        (&failed, Input::Timer),
        (&failed, Input::Local(LocalOutcome::Remarked)),
        (&failed, webhook("re_1", "failed", "pi_1", PAID)),
        (&failed, child_end),
    ] {
        assert_ignored(state, input);
    }
}

#[test]
fn a_webhook_before_the_answer_is_taken_and_the_late_answer_adds_nothing() {
    let refunding = step(&buyer_refund(), Input::Start).state;
    let d = step(&refunding, webhook("re_1", "succeeded", "pi_1", PAID));
    assert_eq!(d.command, complete_with(Some("re_1")));
    assert_ignored(
        &d.state,
        answer("refund:1", "re_1", RefundStatus::Succeeded),
    );
    // Out of order: `succeeded` before `pending`, while waiting.
    let waiting = pending(buyer_refund());
    let d = step(&waiting, webhook("re_1", "succeeded", "pi_1", PAID));
    assert_eq!(d.command, complete_with(Some("re_1")));
}

/// A create call whose retries run out after the provider's webhook already
/// named the refund: the refund exists and may still succeed, so the run
/// keeps following it instead of giving the tickets back (which, with a later
/// success, would have left the buyer with both the money and the tickets).
#[test]
fn a_create_call_that_runs_out_of_retries_after_its_webhook_keeps_following_the_refund() {
    let refunding = step(&buyer_refund(), Input::Start).state;
    let d = step(&refunding, webhook("re_1", "pending", "pi_1", PAID));
    assert_eq!(d.status, RunStatus::Waiting);
    let d = step(
        &d.state,
        Input::RemoteFailed {
            key: "refund:1".into(),
            error: "payment provider unavailable: timeout".into(),
        },
    );
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.command, None);
    assert_eq!(d.wake_at, Some(t0() + Duration::seconds(POLL_SECS)));
    let d = step(&d.state, Input::Timer);
    assert!(
        matches!(&d.command, Some(Command::Remote(PaymentCommand::RetrieveRefund { refund_id, .. })) if refund_id == "re_1")
    );
    let d = step(
        &d.state,
        answer("refund:1:lookup:1", "re_1", RefundStatus::Succeeded),
    );
    assert_eq!(d.command, complete_with(Some("re_1")));
}

/// After an operator's retry, a late (or duplicated) webhook about the first
/// attempt's failed refund arrives before the new attempt's answer. It has
/// our intent and amount, but it is not the new refund: taking it would give
/// the tickets back while the new refund may succeed.
#[test]
fn a_late_webhook_about_an_earlier_attempt_is_not_taken_for_the_retry() {
    let retried = run(
        parked(buyer_refund()),
        vec![Input::Retry, Input::Local(LocalOutcome::Remarked)],
    )
    .state;
    assert_ignored(&retried, webhook("re_1", "failed", "pi_1", PAID));
    assert_ignored(&retried, webhook("re_1", "pending", "pi_1", PAID));
    let d = step(&retried, webhook("re_2", "succeeded", "pi_1", PAID));
    assert_eq!(d.command, complete_with(Some("re_2")));
    // The same in an event cancellation, whose retry goes straight out.
    let retried = step(&parked(cancellation_refund()), Input::Retry).state;
    assert_ignored(&retried, webhook("re_1", "failed", "pi_1", PAID));
}

#[test]
fn the_view_follows_each_phase() {
    let cases: Vec<(RefundState, &str)> = vec![
        (buyer_refund(), "requested"),
        (step(&buyer_refund(), Input::Start).state, "refunding"),
        (pending(buyer_refund()), "refunding"),
        (
            step(
                &pending(buyer_refund()),
                webhook("re_1", "succeeded", "pi_1", PAID),
            )
            .state,
            "refunding",
        ),
        (
            run(
                pending(buyer_refund()),
                vec![
                    webhook("re_1", "succeeded", "pi_1", PAID),
                    Input::Local(LocalOutcome::Completed),
                ],
            )
            .state,
            "refunded",
        ),
        (
            step(
                &pending(buyer_refund()),
                webhook("re_1", "failed", "pi_1", PAID),
            )
            .state,
            "failed",
        ),
        (parked(buyer_refund()), "failed"),
        (
            step(&parked(buyer_refund()), Input::Cancel).state,
            "cancelled",
        ),
    ];
    for (state, expected) in cases {
        let view = Refund::view(&state);
        assert_eq!(view.state, expected, "{:?}", state.phase);
        assert_eq!(view.booking_id, booking());
        assert_eq!(view.requested_by, RequestedBy::Buyer);
        assert_eq!(
            view.refund_id,
            state.refund.as_ref().and_then(|t| t.refund_id.clone())
        );
        assert_eq!(view.error, state.error.as_ref().map(ErrorView::from));
    }
    // The view is what the status route shows: it serializes with snake_case names.
    let json = serde_json::to_value(Refund::view(&parked(cancellation_refund()))).unwrap();
    assert_eq!(json["requested_by"], "event_cancellation");
    assert_eq!(json["state"], "failed");
    assert_eq!(json["error"]["code"], "refund_failed");
}

#[test]
fn money_at_stake_in_each_phase() {
    let at_stake = |s: &RefundState| Refund::money_at_stake(s).is_some();
    for (requested_by, failed_owes) in [
        (RequestedBy::Buyer, false),
        (RequestedBy::Organizer, false),
        (RequestedBy::Admin, false),
        (RequestedBy::EventCancellation, true),
    ] {
        let fresh = refund_of(requested_by, PAID, Some("pi_1"));
        assert!(at_stake(&fresh), "start");
        let waiting = pending(fresh.clone());
        assert!(at_stake(&waiting), "refunding");
        let completing = step(&waiting, webhook("re_1", "succeeded", "pi_1", PAID)).state;
        assert!(at_stake(&completing), "completing");
        let completed = step(&completing, Input::Local(LocalOutcome::Completed)).state;
        assert!(!at_stake(&completed), "completed");
        let failed = parked(fresh.clone());
        assert_eq!(at_stake(&failed), failed_owes, "failed {requested_by:?}");
        let retrying = step(&failed, Input::Retry).state;
        assert!(at_stake(&retrying), "retrying");
        let cancelled = step(&failed, Input::Cancel).state;
        assert!(!at_stake(&cancelled), "cancelled");
        if fresh.restores_tickets() {
            let restoring = step(&waiting, webhook("re_1", "failed", "pi_1", PAID)).state;
            assert_eq!(restoring.phase, Phase::Restoring);
            assert!(at_stake(&restoring), "restoring");
        }
    }
}

/// The run state survives the engine's round trip through JSON, and a state
/// stored before trackers remembered earlier attempts still reads.
#[test]
fn the_state_round_trips_through_json() {
    let state = step(&parked(buyer_refund()), Input::Retry).state;
    let back: RefundState = serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
    assert_eq!(back, state);
    let mut old = serde_json::to_value(pending(buyer_refund())).unwrap();
    old["refund"]
        .as_object_mut()
        .unwrap()
        .remove("past_refund_ids");
    let back: RefundState = serde_json::from_value(old).unwrap();
    assert_eq!(back.refund.unwrap().past_refund_ids, Vec::<String>::new());
}

mod walk {
    //! Random walks of one refund run against a model of the payment
    //! provider (refunds under idempotency keys, first answers replayed,
    //! pending refunds settling later, webhooks lost, duplicated and
    //! reordered) and of the engine (answers lost and re-sent, jobs delivered
    //! twice, retries running out, timers, operators retrying and cancelling,
    //! local commands applied at once).

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;

    #[derive(Debug, Clone, Copy)]
    pub enum Fate {
        /// The provider refuses the call (an error, kept for its key).
        Refuse,
        Pending,
        Succeeded,
        Failed,
    }

    #[derive(Debug, Clone)]
    pub enum Act {
        /// The provider carries out an outstanding call (`fate` decides a
        /// new refund). `deliver: false`: the answer is lost, the call stays
        /// outstanding (it is sent again). `again`: the job runs once more later.
        Call {
            pick: usize,
            fate: Fate,
            deliver: bool,
            again: bool,
        },
        /// The engine's retries of an outstanding call run out.
        GiveUp {
            pick: usize,
        },
        /// A pending refund at the provider settles.
        Settle {
            pick: usize,
            succeed: bool,
        },
        /// A webhook reaches the run, in any order; `again`: it comes again.
        Webhook {
            pick: usize,
            again: bool,
        },
        LoseWebhook {
            pick: usize,
        },
        Timer,
        /// An operator retries; `remark_ok` says whether the tickets can
        /// still be marked again.
        Retry {
            remark_ok: bool,
        },
        Cancel,
        /// An input that is never this run's business.
        Stray {
            pick: usize,
        },
    }

    #[derive(Debug, Clone)]
    pub struct Setup {
        pub requested_by: RequestedBy,
        pub amount: i64,
        pub free: bool,
    }

    fn fate() -> impl Strategy<Value = Fate> {
        prop_oneof![
            1 => Just(Fate::Refuse),
            3 => Just(Fate::Pending),
            3 => Just(Fate::Succeeded),
            2 => Just(Fate::Failed),
        ]
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            8 => (any::<usize>(), fate(), prop::bool::weighted(0.75), prop::bool::weighted(0.2))
                .prop_map(|(pick, fate, deliver, again)| Act::Call { pick, fate, deliver, again }),
            2 => any::<usize>().prop_map(|pick| Act::GiveUp { pick }),
            3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, succeed)| Act::Settle { pick, succeed }),
            5 => (any::<usize>(), prop::bool::weighted(0.3)).prop_map(|(pick, again)| Act::Webhook { pick, again }),
            1 => any::<usize>().prop_map(|pick| Act::LoseWebhook { pick }),
            3 => Just(Act::Timer),
            2 => prop::bool::weighted(0.7).prop_map(|remark_ok| Act::Retry { remark_ok }),
            1 => Just(Act::Cancel),
            1 => any::<usize>().prop_map(|pick| Act::Stray { pick }),
        ]
    }

    fn setup() -> impl Strategy<Value = Setup> {
        (
            prop_oneof![
                4 => Just(RequestedBy::Buyer),
                1 => Just(RequestedBy::Organizer),
                1 => Just(RequestedBy::Admin),
                3 => Just(RequestedBy::EventCancellation),
            ],
            1..100_000i64,
            prop::bool::weighted(0.1),
        )
            .prop_map(|(requested_by, amount, free)| Setup {
                requested_by,
                amount,
                free,
            })
    }

    pub fn walks() -> impl Strategy<Value = (Setup, Vec<Act>)> {
        (setup(), prop::collection::vec(act(), 0..60))
    }

    /// How often each branch was reached, over many walks.
    #[derive(Debug, Default)]
    pub struct Reached {
        pub walks: u32,
        pub free_completed: u32,
        pub completed_on_answer: u32,
        pub completed_on_webhook: u32,
        pub completed_on_lookup: u32,
        pub completed_after_retry: u32,
        pub lookups: u32,
        pub restored: u32,
        pub parked_owing: u32,
        pub refused_on_create: u32,
        pub remarked: u32,
        pub remark_refused: u32,
        pub cancelled: u32,
        pub waited_after_create_gave_up: u32,
        pub webhooks_ignored: u32,
        pub answers_ignored: u32,
        pub lost_answers: u32,
        pub ended_completed: u32,
        pub ended_failed: u32,
        pub ended_cancelled: u32,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Tickets {
        /// Marked `refund_pending` (check-in refuses them).
        Pending,
        /// Voided by a completed refund.
        Refunded,
        /// The buyer's again.
        Valid,
    }

    struct ProviderRefund {
        id: String,
        amount: i64,
        status: RefundStatus,
    }

    /// The provider's truth.
    #[derive(Default)]
    struct Provider {
        refunds: Vec<ProviderRefund>,
        /// A key's first answer, replayed (errors included).
        first_answer: BTreeMap<String, Result<RefundReport, String>>,
        /// Webhooks sent and not yet delivered or lost.
        webhooks: Vec<serde_json::Value>,
    }

    impl Provider {
        fn report(&self, i: usize) -> RefundReport {
            let r = &self.refunds[i];
            RefundReport {
                refund_id: r.id.clone(),
                status: r.status,
                amount_minor: r.amount,
                failure_reason: (r.status == RefundStatus::Failed)
                    .then(|| "expired_or_canceled_card".to_owned()),
            }
        }

        fn find(&self, id: &str) -> Option<usize> {
            self.refunds.iter().position(|r| r.id == id)
        }

        fn send_webhook(&mut self, i: usize) {
            let r = self.report(i);
            self.webhooks.push(json!({
                "refund_id": r.refund_id,
                "status": serde_json::to_value(r.status).unwrap(),
                "amount_minor": r.amount_minor,
                "currency": "EUR",
                "payment_intent": "pi_1",
                "failure_reason": r.failure_reason,
            }));
        }

        /// The refund call under `key`: made once, its first answer replayed.
        fn refund(&mut self, key: &str, amount: i64, fate: Fate) -> Result<RefundReport, String> {
            if let Some(first) = self.first_answer.get(key) {
                return first.clone();
            }
            let answer = match fate {
                Fate::Refuse => {
                    Err("payment provider refused the request (charge_disputed)".to_owned())
                }
                Fate::Pending | Fate::Succeeded | Fate::Failed => {
                    let status = match fate {
                        Fate::Pending => RefundStatus::Pending,
                        Fate::Succeeded => RefundStatus::Succeeded,
                        _ => RefundStatus::Failed,
                    };
                    self.refunds.push(ProviderRefund {
                        id: format!("re_{}", self.refunds.len() + 1),
                        amount,
                        status,
                    });
                    let i = self.refunds.len() - 1;
                    self.send_webhook(i);
                    Ok(self.report(i))
                }
            };
            self.first_answer.insert(key.to_owned(), answer.clone());
            answer
        }

        /// What went back to the buyer: refunds the provider says succeeded.
        fn given_back(&self) -> i64 {
            self.refunds
                .iter()
                .filter(|r| r.status == RefundStatus::Succeeded)
                .map(|r| r.amount)
                .sum()
        }

        fn any_pending(&self) -> bool {
            self.refunds.iter().any(|r| !r.status.is_final())
        }
    }

    struct Sim<'a> {
        state: RefundState,
        status: RunStatus,
        /// Remote calls issued and not yet answered for good.
        outstanding: Vec<PaymentCommand>,
        provider: Provider,
        tickets: Tickets,
        completed_issued: bool,
        create_keys: BTreeSet<String>,
        remark_ok: bool,
        now: DateTime<Utc>,
        reached: &'a mut Reached,
    }

    impl Sim<'_> {
        fn paid(&self) -> i64 {
            if self.state.intent_id.is_some() {
                self.state.amount.amount_minor
            } else {
                0
            }
        }

        /// Feeds one input as the engine does: the decision, then its local
        /// command's outcome straight back, until the run rests. Returns
        /// whether the input was taken.
        fn feed(&mut self, input: Input) -> bool {
            let mut input = input;
            loop {
                let before = self.state.clone();
                let d = Refund::decide(&self.state, &input, self.now);
                if !d.accepted {
                    assert!(
                        !matches!(input, Input::Local(_)),
                        "a local outcome dropped in {:?}",
                        before.phase
                    );
                    assert_eq!(d.state, before, "a dropped input changed the state");
                    assert_eq!(d.command, None);
                    return false;
                }
                assert!(d.children.is_empty(), "a refund starts no children");
                if input == Input::Local(LocalOutcome::Restored) {
                    // Given back tickets park the run: nothing more is tried alone.
                    assert_eq!(
                        d.status,
                        RunStatus::Failed,
                        "tickets given back, then {:?}",
                        d.status
                    );
                    assert_eq!(d.command, None);
                }
                assert_eq!(d.step, d.state.phase.step());
                self.state = d.state.clone();
                self.status = d.status;
                if let Input::RemoteFailed { key, .. } = &input
                    && !key.contains(":lookup:")
                    && matches!(d.status, RunStatus::Compensating | RunStatus::Failed)
                {
                    self.reached.refused_on_create += 1;
                }
                if d.status == RunStatus::Failed && !self.state.restores_tickets() {
                    self.reached.parked_owing += 1;
                }
                let next = match d.command.clone() {
                    None => None,
                    Some(Command::Remote(command)) => {
                        self.on_remote(&command);
                        self.outstanding.push(command);
                        None
                    }
                    Some(Command::Local(command)) => Some(self.on_local(&command, &input)),
                };
                self.check(&d);
                match next {
                    Some(outcome) => input = Input::Local(outcome),
                    None => return true,
                }
            }
        }

        fn on_remote(&mut self, command: &PaymentCommand) {
            match command {
                PaymentCommand::RefundPayment {
                    key,
                    intent_id,
                    amount_minor,
                } => {
                    assert!(self.paid() > 0, "a free refund called the provider");
                    assert_eq!(Some(intent_id), self.state.intent_id.as_ref());
                    assert_eq!(
                        *amount_minor, self.state.amount.amount_minor,
                        "a refund of another amount"
                    );
                    assert!(
                        self.create_keys.insert(key.clone()),
                        "a second refund under the key {key}"
                    );
                    if self.create_keys.len() > 1 {
                        // A new attempt comes only after the previous ones failed.
                        assert!(
                            self.provider
                                .refunds
                                .iter()
                                .all(|r| r.status == RefundStatus::Failed),
                            "a new refund while an earlier one may still succeed"
                        );
                    }
                }
                PaymentCommand::RetrieveRefund { refund_id, .. } => {
                    self.reached.lookups += 1;
                    assert!(
                        self.provider.find(refund_id).is_some(),
                        "asked about a refund never made"
                    );
                }
                other => panic!("a refund run issued {other:?}"),
            }
        }

        fn on_local(&mut self, command: &LocalCommand, cause: &Input) -> LocalOutcome {
            match command {
                LocalCommand::Reserve { .. } => {
                    panic!("a refund reserved at its start reserved again")
                }
                LocalCommand::Complete { refund_id } => {
                    assert!(!self.completed_issued, "completed twice");
                    assert_eq!(
                        self.tickets,
                        Tickets::Pending,
                        "completing tickets not marked"
                    );
                    self.completed_issued = true;
                    self.tickets = Tickets::Refunded;
                    match refund_id {
                        None => {
                            assert_eq!(self.paid(), 0, "completed a paid refund without one");
                            assert!(
                                self.provider.refunds.is_empty() && self.create_keys.is_empty()
                            );
                            self.reached.free_completed += 1;
                        }
                        Some(id) => {
                            let i = self
                                .provider
                                .find(id)
                                .expect("completed with a refund never made");
                            assert_eq!(
                                self.provider.refunds[i].status,
                                RefundStatus::Succeeded,
                                "completed before the provider said succeeded"
                            );
                            assert_eq!(self.provider.given_back(), self.paid());
                            if self.create_keys.len() > 1 {
                                self.reached.completed_after_retry += 1;
                            }
                            match cause {
                                Input::Signal { .. } => self.reached.completed_on_webhook += 1,
                                Input::RemoteDone { key, .. } if key.contains(":lookup:") => {
                                    self.reached.completed_on_lookup += 1
                                }
                                Input::RemoteDone { .. } => self.reached.completed_on_answer += 1,
                                other => panic!("completed on {other:?}"),
                            }
                        }
                    }
                    LocalOutcome::Completed
                }
                LocalCommand::Restore => {
                    assert!(
                        self.state.restores_tickets(),
                        "tickets of a cancelled event given back"
                    );
                    assert!(!self.completed_issued, "a refunded ticket made valid again");
                    assert_eq!(self.tickets, Tickets::Pending);
                    assert_eq!(
                        self.provider.given_back(),
                        0,
                        "tickets given back with the money"
                    );
                    assert!(
                        !self.provider.any_pending(),
                        "tickets given back while a refund may still succeed"
                    );
                    self.tickets = Tickets::Valid;
                    self.reached.restored += 1;
                    LocalOutcome::Restored
                }
                LocalCommand::Remark { .. } => {
                    assert_eq!(
                        self.tickets,
                        Tickets::Valid,
                        "marking tickets that are not the buyer's"
                    );
                    if self.remark_ok {
                        self.tickets = Tickets::Pending;
                        self.reached.remarked += 1;
                        LocalOutcome::Remarked
                    } else {
                        self.reached.remark_refused += 1;
                        LocalOutcome::RemarkRefused {
                            code: "ticket_used".into(),
                        }
                    }
                }
            }
        }

        /// What must hold in every state of every walk.
        fn check(&self, d: &Decision) {
            let s = &self.state;
            let given_back = self.provider.given_back();
            assert!(
                given_back <= self.paid(),
                "gave back {given_back} of {}",
                self.paid()
            );
            assert!(
                self.provider
                    .refunds
                    .iter()
                    .filter(|r| r.status == RefundStatus::Succeeded)
                    .count()
                    <= 1,
                "two refunds succeeded"
            );
            if let Some(t) = &s.refund {
                assert_eq!(t.amount, s.amount);
                assert_eq!(t.create_key(), format!("refund:{}", t.attempt));
                // The run believes in a success only when the provider said so.
                if t.succeeded() {
                    let i = self.provider.find(t.refund_id.as_deref().unwrap()).unwrap();
                    assert_eq!(self.provider.refunds[i].status, RefundStatus::Succeeded);
                }
            }
            let view = Refund::view(s);
            assert_eq!(view.amount_minor, s.amount.amount_minor);
            match d.status {
                RunStatus::Completed => {
                    assert_eq!(s.phase, Phase::Completed);
                    assert_eq!(self.tickets, Tickets::Refunded);
                    assert_eq!(given_back, self.paid());
                    assert_eq!(view.state, "refunded");
                    assert_eq!(Refund::money_at_stake(s), None);
                }
                RunStatus::Failed => {
                    assert_eq!(s.phase, Phase::Failed);
                    assert_eq!(given_back, 0, "parked as failed with the money given back");
                    assert!(!self.provider.any_pending());
                    assert_eq!(view.state, "failed");
                    assert!(s.error.is_some());
                    if s.restores_tickets() {
                        assert_eq!(self.tickets, Tickets::Valid);
                        assert_eq!(Refund::money_at_stake(s), None);
                    } else {
                        assert_eq!(self.tickets, Tickets::Pending);
                        assert!(
                            Refund::money_at_stake(s).is_some(),
                            "a failed cancellation refund owes nothing"
                        );
                    }
                }
                RunStatus::Cancelled => {
                    assert_eq!(s.phase, Phase::Cancelled);
                    assert_eq!(view.state, "cancelled");
                    assert_eq!(given_back, 0);
                }
                RunStatus::Compensating => {
                    assert_eq!(s.phase, Phase::Restoring);
                    assert_eq!(d.command, Some(Command::Local(LocalCommand::Restore)));
                }
                RunStatus::Waiting => {
                    assert_eq!(s.phase, Phase::Refunding);
                    assert!(d.wake_at.is_some(), "waiting with no timer");
                    assert!(s.refund.as_ref().unwrap().refund_id.is_some());
                }
                RunStatus::Running => assert!(d.command.is_some(), "running with nothing to do"),
                RunStatus::Compensated => panic!("a refund never ends compensated"),
            }
            if matches!(
                s.phase,
                Phase::Start | Phase::Refunding | Phase::Completing | Phase::Restoring
            ) && self.paid() > 0
            {
                assert!(
                    Refund::money_at_stake(s).is_some(),
                    "{:?} owes nothing",
                    s.phase
                );
            }
        }

        fn stray(&self, pick: usize) -> Input {
            match pick % 5 {
                0 => Input::Start,
                1 => Input::Signal {
                    name: "payment_succeeded".into(),
                    payload: json!({"intent_id": "pi_1"}),
                },
                2 => webhook(
                    "re_other",
                    "succeeded",
                    "pi_other",
                    self.state.amount.amount_minor,
                ),
                3 => Input::RemoteDone {
                    key: "refund:99".into(),
                    outcome: report("re_99", RefundStatus::Succeeded, None),
                },
                _ => Input::ChildEnded(ChildEnd {
                    key: "booking:x".into(),
                    run_id: Uuid::from_u128(99),
                    kind: "refund".into(),
                    status: RunStatus::Completed,
                    view: json!({}),
                }),
            }
        }

        fn call(&mut self, pick: usize, fate: Fate, deliver: bool, again: bool) {
            if self.outstanding.is_empty() {
                return;
            }
            let i = pick % self.outstanding.len();
            let command = self.outstanding[i].clone();
            let (key, answer) = match &command {
                PaymentCommand::RefundPayment {
                    key, amount_minor, ..
                } => (key.clone(), self.provider.refund(key, *amount_minor, fate)),
                PaymentCommand::RetrieveRefund { key, refund_id } => {
                    let j = self.provider.find(refund_id).unwrap();
                    (key.clone(), Ok(self.provider.report(j)))
                }
                _ => unreachable!("checked when issued"),
            };
            if !deliver {
                // Lost: the engine sends the same call again later.
                self.reached.lost_answers += 1;
                return;
            }
            if !again {
                self.outstanding.remove(i);
            }
            let input = match answer {
                Ok(report) => Input::RemoteDone {
                    key,
                    outcome: PaymentOutcome::Refund(report),
                },
                Err(error) => Input::RemoteFailed { key, error },
            };
            if !self.feed(input) {
                self.reached.answers_ignored += 1;
            }
        }

        fn give_up(&mut self, pick: usize) {
            if self.outstanding.is_empty() {
                return;
            }
            let i = pick % self.outstanding.len();
            let command = self.outstanding[i].clone();
            if let PaymentCommand::RefundPayment { key, .. } = &command {
                let made = self
                    .provider
                    .first_answer
                    .get(key)
                    .and_then(|a| a.as_ref().ok())
                    .map(|r| r.refund_id.clone());
                let heard = self.state.refund.as_ref().and_then(|t| t.refund_id.clone());
                // Retries that run out before the run heard a word of a refund
                // the provider did make cannot be told from a refusal: the
                // failure's `error` does not say whether the provider refused
                // or could not be reached. Not walked here; the refund would
                // be taken as failed while it may still succeed.
                if made.is_some() && made != heard {
                    return;
                }
                if made.is_some() && self.state.phase == Phase::Refunding {
                    self.reached.waited_after_create_gave_up += 1;
                }
            }
            self.outstanding.remove(i);
            let input = Input::RemoteFailed {
                key: command.key().to_owned(),
                error: "payment provider unavailable: retries ran out".into(),
            };
            if !self.feed(input) {
                self.reached.answers_ignored += 1;
            }
        }

        fn act(&mut self, act: &Act) {
            self.now += Duration::seconds(7);
            match *act {
                Act::Call {
                    pick,
                    fate,
                    deliver,
                    again,
                } => self.call(pick, fate, deliver, again),
                Act::GiveUp { pick } => self.give_up(pick),
                Act::Settle { pick, succeed } => {
                    let pending: Vec<usize> = (0..self.provider.refunds.len())
                        .filter(|&i| !self.provider.refunds[i].status.is_final())
                        .collect();
                    if let Some(&i) = pending.get(pick % pending.len().max(1)) {
                        self.provider.refunds[i].status = if succeed {
                            RefundStatus::Succeeded
                        } else {
                            RefundStatus::Failed
                        };
                        self.provider.send_webhook(i);
                    }
                    // The provider's change alone must not break what holds.
                    self.check_resting();
                }
                Act::Webhook { pick, again } => {
                    if self.provider.webhooks.is_empty() {
                        return;
                    }
                    let i = pick % self.provider.webhooks.len();
                    let payload = if again {
                        self.provider.webhooks[i].clone()
                    } else {
                        self.provider.webhooks.remove(i)
                    };
                    let taken = self.feed(Input::Signal {
                        name: SIGNAL_REFUND_UPDATED.into(),
                        payload,
                    });
                    if !taken {
                        self.reached.webhooks_ignored += 1;
                    }
                }
                Act::LoseWebhook { pick } => {
                    if !self.provider.webhooks.is_empty() {
                        let i = pick % self.provider.webhooks.len();
                        self.provider.webhooks.remove(i);
                    }
                }
                Act::Timer => {
                    self.feed(Input::Timer);
                }
                Act::Retry { remark_ok } => {
                    self.remark_ok = remark_ok;
                    self.feed(Input::Retry);
                }
                Act::Cancel => {
                    if self.feed(Input::Cancel) {
                        self.reached.cancelled += 1;
                    }
                }
                Act::Stray { pick } => {
                    let input = self.stray(pick);
                    assert!(!self.feed(input), "a stray input was taken");
                }
            }
        }

        /// What holds between inputs, whatever the provider did meanwhile.
        fn check_resting(&self) {
            let given_back = self.provider.given_back();
            assert!(given_back <= self.paid());
            if self.tickets == Tickets::Valid {
                // Tickets the buyer has back are never paired with money back.
                assert_eq!(given_back, 0, "the buyer has the tickets and the money");
            }
        }

        /// Every call answered, every refund settled and every webhook
        /// delivered: the run must come to rest.
        fn drain(&mut self) {
            for _ in 0..200 {
                if !self.outstanding.is_empty() {
                    self.call(0, Fate::Succeeded, true, false);
                } else if let Some(i) = self
                    .provider
                    .refunds
                    .iter()
                    .position(|r| !r.status.is_final())
                {
                    self.provider.refunds[i].status = RefundStatus::Succeeded;
                    self.provider.send_webhook(i);
                } else if !self.provider.webhooks.is_empty() {
                    let payload = self.provider.webhooks.remove(0);
                    self.feed(Input::Signal {
                        name: SIGNAL_REFUND_UPDATED.into(),
                        payload,
                    });
                } else if self.status == RunStatus::Waiting {
                    self.now += Duration::seconds(POLL_SECS);
                    self.feed(Input::Timer);
                } else {
                    break;
                }
                self.check_resting();
            }
            assert!(
                self.status.is_finished(),
                "the run never came to rest: {:?} {:?}",
                self.status,
                self.state.phase
            );
            match self.status {
                RunStatus::Completed => self.reached.ended_completed += 1,
                RunStatus::Failed => self.reached.ended_failed += 1,
                RunStatus::Cancelled => self.reached.ended_cancelled += 1,
                other => panic!("ended {other:?}"),
            }
        }
    }

    /// Walks one refund run; panics when anything that must hold does not.
    pub fn walk(setup: &Setup, acts: &[Act], reached: &mut Reached) {
        let (amount, intent) = if setup.free {
            (0, None)
        } else {
            (setup.amount, Some("pi_1"))
        };
        let state = refund_of(setup.requested_by, amount, intent);
        reached.walks += 1;
        let mut sim = Sim {
            state,
            status: RunStatus::Running,
            outstanding: Vec::new(),
            provider: Provider::default(),
            tickets: Tickets::Pending,
            completed_issued: false,
            create_keys: BTreeSet::new(),
            remark_ok: true,
            now: t0(),
            reached,
        };
        assert!(sim.feed(Input::Start));
        for act in acts {
            sim.act(act);
            sim.check_resting();
        }
        sim.drain();
        sim.check_resting();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Money given back never exceeds what was paid, a refunded ticket
        /// never becomes valid again, a refund is done only when the provider
        /// said it succeeded, one key is one refund and a new attempt a new key.
        #[test]
        fn random_walks_keep_the_money_and_the_tickets_right((setup, acts) in walks()) {
            walk(&setup, &acts, &mut Reached::default());
        }
    }

    /// The same walks, drawn from the same strategy with a fixed seed, reach
    /// every branch that matters many times.
    #[test]
    fn random_walks_reach_every_branch() {
        let mut runner = TestRunner::deterministic();
        let strategy = walks();
        let mut reached = Reached::default();
        for _ in 0..2_000 {
            let (setup, acts) = strategy.new_tree(&mut runner).unwrap().current();
            walk(&setup, &acts, &mut reached);
        }
        println!("{reached:?}");
        let floor = 30;
        for (name, n) in [
            ("free_completed", reached.free_completed),
            ("completed_on_answer", reached.completed_on_answer),
            ("completed_on_webhook", reached.completed_on_webhook),
            ("completed_on_lookup", reached.completed_on_lookup),
            ("completed_after_retry", reached.completed_after_retry),
            ("lookups", reached.lookups),
            ("restored", reached.restored),
            ("parked_owing", reached.parked_owing),
            ("refused_on_create", reached.refused_on_create),
            ("remarked", reached.remarked),
            ("remark_refused", reached.remark_refused),
            ("cancelled", reached.cancelled),
            (
                "waited_after_create_gave_up",
                reached.waited_after_create_gave_up,
            ),
            ("webhooks_ignored", reached.webhooks_ignored),
            ("answers_ignored", reached.answers_ignored),
            ("lost_answers", reached.lost_answers),
            ("ended_completed", reached.ended_completed),
            ("ended_failed", reached.ended_failed),
            ("ended_cancelled", reached.ended_cancelled),
        ] {
            assert!(
                n >= floor,
                "{name} reached only {n} times in {} walks",
                reached.walks
            );
        }
    }
}

#[test]
fn an_event_cancellations_refund_reserves_the_booking_in_its_first_step() {
    let booking = Uuid::from_u128(1);
    let fresh = RefundState::for_cancellation(booking, Uuid::from_u128(2), Uuid::from_u128(3), 60);
    assert_eq!(
        Refund::money_at_stake(&fresh),
        None,
        "nothing reserved, nothing owed yet"
    );
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let d = Refund::decide(&fresh, &Input::Start, now);
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::Reserve {
            booking_id: booking
        }))
    );
    assert_eq!(d.state.phase, Phase::Reserving);
    let reserved = Input::Local(LocalOutcome::Reserved {
        ticket_ids: vec![Uuid::from_u128(9)],
        amount: Money::new(4500, "EUR"),
        intent_id: Some("pi_1".into()),
    });
    let d = Refund::decide(&d.state, &reserved, now);
    assert!(d.state.reserved);
    assert_eq!(d.state.phase, Phase::Refunding);
    assert!(matches!(
        d.command,
        Some(Command::Remote(PaymentCommand::RefundPayment { ref key, amount_minor: 4500, .. })) if key == "refund:1"
    ));
    assert!(Refund::money_at_stake(&d.state).is_some());
    // A booking refunded in full before: nothing to do, and nothing owed.
    let d = Refund::decide(&fresh, &Input::Start, now);
    let d = Refund::decide(&d.state, &Input::Local(LocalOutcome::NothingToRefund), now);
    assert_eq!(d.status, RunStatus::Completed);
    assert_eq!(Refund::view(&d.state).state, "nothing_to_refund");
    assert_eq!(Refund::money_at_stake(&d.state), None);
}
