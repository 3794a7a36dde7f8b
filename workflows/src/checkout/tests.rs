//! Every transition of the checkout, and every compensation path.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::engine::{RunStatus, Workflow};
use crate::payments::{RefundReport, RefundStatus};

/// The first refund of a late payment goes out under this effect key.
const LATE_REFUND_1: &str = "refund_late_payment:1";

fn refund_succeeded(refund_id: &str) -> RemoteOutcome {
    RemoteOutcome::Refund(RefundReport {
        refund_id: refund_id.into(),
        status: RefundStatus::Succeeded,
        amount_minor: 9000,
        failure_reason: None,
    })
}

/// The property: random walks against a model of the provider and the engine.
mod random_walks;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn tt() -> Uuid {
    Uuid::from_u128(7)
}

fn fresh(coupon: Option<&str>) -> CheckoutState {
    CheckoutState::new(
        Uuid::from_u128(1),
        Uuid::from_u128(2),
        vec![Item {
            ticket_type_id: tt(),
            quantity: 2,
        }],
        coupon.map(str::to_owned),
        15,
    )
}

/// Feeds inputs in order, checking each was accepted; returns the last decision.
fn run(state: CheckoutState, inputs: &[(Input, DateTime<Utc>)]) -> Decision<CheckoutState> {
    let mut state = state;
    let mut last = None;
    for (input, now) in inputs {
        let d = Checkout::decide(&state, input, *now);
        assert!(d.accepted, "{input:?} rejected in {:?}", state.phase);
        state = d.state.clone();
        last = Some(d);
    }
    last.expect("at least one input")
}

/// Held: two tickets at half of `subtotal` each.
fn held(subtotal: i64) -> Input {
    Input::Local(LocalOutcome::Held {
        expires_at: t0() + Duration::minutes(15),
        currency: "EUR".into(),
        lines: vec![PricedItem {
            ticket_type_id: tt(),
            quantity: 2,
            unit_price_minor: subtotal / 2,
        }],
    })
}

fn is_confirm(command: &Option<Command>, intent: Option<&str>, total: i64) -> bool {
    matches!(command, Some(Command::Local(LocalCommand::ConfirmBooking { booking }))
        if booking.payment_intent_id.as_deref() == intent
            && booking.subtotal_minor - booking.discount_minor == total
            && booking.items == vec![Item { ticket_type_id: tt(), quantity: 2 }])
}

fn intent_created() -> Input {
    Input::RemoteDone {
        key: KEY_CREATE_INTENT.into(),
        outcome: RemoteOutcome::IntentCreated {
            intent_id: "pi_1".into(),
            client_secret: "pi_1_secret".into(),
        },
    }
}

fn paid(intent: &str) -> Input {
    Input::Signal {
        name: SIGNAL_PAYMENT_SUCCEEDED.into(),
        payload: json!({ "intent_id": intent, "amount_minor": 9000, "currency": "EUR" }),
    }
}

fn confirmed() -> Input {
    Input::Local(LocalOutcome::Confirmed {
        booking_id: Uuid::from_u128(9),
        ticket_ids: vec![Uuid::from_u128(10), Uuid::from_u128(11)],
    })
}

/// The state of a run waiting for payment of 9000 minor units.
fn awaiting() -> CheckoutState {
    run(
        fresh(None),
        &[
            (Input::Start, t0()),
            (held(9000), t0()),
            (intent_created(), t0()),
        ],
    )
    .state
}

#[test]
fn start_holds_capacity_until_the_event_hold_deadline() {
    let d = Checkout::decide(&fresh(None), &Input::Start, t0());
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.step, "holding");
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::HoldCapacity {
            items: vec![Item {
                ticket_type_id: tt(),
                quantity: 2
            }],
            expires_at: t0() + Duration::minutes(15)
        }))
    );
}

#[test]
fn held_paid_order_creates_a_payment_intent_for_the_total() {
    let d = run(fresh(None), &[(Input::Start, t0()), (held(9000), t0())]);
    assert_eq!(d.step, "creating_payment_intent");
    assert_eq!(
        d.command,
        Some(Command::Remote(RemoteCommand::CreatePaymentIntent {
            key: KEY_CREATE_INTENT.into(),
            amount_minor: 9000,
            currency: "EUR".into()
        }))
    );
}

#[test]
fn intent_created_waits_for_payment_until_the_hold_expires() {
    let d = run(
        fresh(None),
        &[
            (Input::Start, t0()),
            (held(9000), t0()),
            (intent_created(), t0()),
        ],
    );
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.step, "awaiting_payment");
    assert_eq!(d.wake_at, Some(t0() + Duration::minutes(15)));
    let p = d.state.payment.unwrap();
    assert_eq!(
        (p.intent_id.as_str(), p.amount_minor, p.currency.as_str()),
        ("pi_1", 9000, "EUR")
    );
}

#[test]
fn payment_succeeded_confirms_and_completes() {
    let d = run(awaiting(), &[(paid("pi_1"), t0())]);
    assert_eq!(d.step, "confirming");
    assert!(
        is_confirm(&d.command, Some("pi_1"), 9000),
        "{:?}",
        d.command
    );
    let d = run(d.state, &[(confirmed(), t0())]);
    assert_eq!(d.status, RunStatus::Completed);
    assert_eq!(d.state.booking_id, Some(Uuid::from_u128(9)));
    assert_eq!(d.state.ticket_ids.len(), 2);
    assert!(d.state.error.is_none());
}

#[test]
fn a_signal_for_another_intent_is_ignored() {
    let d = Checkout::decide(&awaiting(), &paid("pi_other"), t0());
    assert!(!d.accepted);
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.state, awaiting());
}

#[test]
fn free_order_confirms_without_payment() {
    let d = run(fresh(None), &[(Input::Start, t0()), (held(0), t0())]);
    assert_eq!(d.step, "confirming");
    assert!(is_confirm(&d.command, None, 0), "{:?}", d.command);
}

#[test]
fn coupon_is_reserved_and_discounts_the_intent() {
    let d = run(
        fresh(Some("WELCOME10")),
        &[(Input::Start, t0()), (held(9000), t0())],
    );
    assert_eq!(d.step, "reserving_coupon");
    assert!(
        matches!(d.command, Some(Command::Local(LocalCommand::ReserveCoupon { ref code, ref lines, .. }))
        if code == "WELCOME10" && lines[0].unit_price_minor == 4500)
    );
    let d = run(
        d.state,
        &[(
            Input::Local(LocalOutcome::CouponReserved {
                coupon_id: Uuid::from_u128(5),
                discount_minor: 900,
            }),
            t0(),
        )],
    );
    assert_eq!(
        d.command,
        Some(Command::Remote(RemoteCommand::CreatePaymentIntent {
            key: KEY_CREATE_INTENT.into(),
            amount_minor: 8100,
            currency: "EUR".into()
        }))
    );
}

#[test]
fn a_full_discount_makes_the_order_free() {
    let d = run(
        fresh(Some("FREE")),
        &[
            (Input::Start, t0()),
            (held(9000), t0()),
            (
                Input::Local(LocalOutcome::CouponReserved {
                    coupon_id: Uuid::from_u128(5),
                    discount_minor: 20_000,
                }),
                t0(),
            ),
        ],
    );
    assert_eq!(d.state.total_minor(), 0);
    assert!(
        matches!(&d.command, Some(Command::Local(LocalCommand::ConfirmBooking { booking }))
        if booking.discount_minor == 9000 && booking.payment_intent_id.is_none()),
        "{:?}",
        d.command
    );
}

#[test]
fn sold_out_ends_compensated_with_nothing_to_undo() {
    let d = run(
        fresh(None),
        &[
            (Input::Start, t0()),
            (
                Input::Local(LocalOutcome::HoldRefused {
                    ticket_type_id: tt(),
                    requested: 2,
                    available: 1,
                }),
                t0(),
            ),
        ],
    );
    assert_eq!(d.status, RunStatus::Compensated);
    assert_eq!(d.command, None);
    assert_eq!(d.state.error.unwrap().code, "sold_out");
}

#[test]
fn refused_coupon_releases_the_hold() {
    let d = run(
        fresh(Some("EXPIRED")),
        &[
            (Input::Start, t0()),
            (held(9000), t0()),
            (
                Input::Local(LocalOutcome::CouponRefused {
                    reason: "expired".into(),
                }),
                t0(),
            ),
        ],
    );
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::ReleaseReservations))
    );
    let d = run(d.state, &[(Input::Local(LocalOutcome::Released), t0())]);
    assert_eq!(d.status, RunStatus::Compensated);
    assert_eq!(d.state.error.unwrap().code, "coupon_invalid");
}

#[test]
fn intent_creation_failing_for_good_releases_everything() {
    let d = run(
        fresh(None),
        &[
            (Input::Start, t0()),
            (held(9000), t0()),
            (
                Input::RemoteFailed {
                    key: KEY_CREATE_INTENT.into(),
                    error: "provider down".into(),
                },
                t0(),
            ),
        ],
    );
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::ReleaseReservations))
    );
    let d = run(d.state, &[(Input::Local(LocalOutcome::Released), t0())]);
    assert_eq!(d.status, RunStatus::Compensated);
    assert_eq!(d.state.error.unwrap().code, "payment_unavailable");
}

#[test]
fn intent_created_after_the_deadline_is_cancelled() {
    let late = t0() + Duration::minutes(20);
    let d = run(
        fresh(None),
        &[
            (Input::Start, t0()),
            (held(9000), t0()),
            (intent_created(), late),
        ],
    );
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(
        d.command,
        Some(Command::Remote(RemoteCommand::CancelPaymentIntent {
            key: KEY_CANCEL_INTENT.into(),
            intent_id: "pi_1".into()
        }))
    );
}

#[test]
fn expiry_cancels_the_intent_then_releases() {
    let at_deadline = t0() + Duration::minutes(15);
    let d = run(awaiting(), &[(Input::Timer, at_deadline)]);
    assert_eq!(d.step, "cancelling_payment_intent");
    assert_eq!(d.status, RunStatus::Compensating);
    let d = run(
        d.state,
        &[(
            Input::RemoteDone {
                key: KEY_CANCEL_INTENT.into(),
                outcome: RemoteOutcome::IntentCancelled,
            },
            at_deadline,
        )],
    );
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::ReleaseReservations))
    );
    let d = run(
        d.state,
        &[(Input::Local(LocalOutcome::Released), at_deadline)],
    );
    assert_eq!(d.status, RunStatus::Compensated);
    assert_eq!(d.state.error.unwrap().code, "expired");
}

#[test]
fn an_early_timer_is_ignored() {
    let d = Checkout::decide(&awaiting(), &Input::Timer, t0() + Duration::minutes(5));
    assert!(!d.accepted);
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.wake_at, Some(t0() + Duration::minutes(15)));
}

#[test]
fn a_decline_keeps_the_run_waiting_with_the_decline_for_the_buyer() {
    let failed = Input::Signal {
        name: SIGNAL_PAYMENT_FAILED.into(),
        payload: json!({
            "intent_id": "pi_1",
            "failure_code": "card_declined",
            "decline_code": "insufficient_funds",
            "failure_message": "Your card has insufficient funds. (req_123, key sk_test_abc…)",
        }),
    };
    let d = run(awaiting(), &[(failed, t0() + Duration::minutes(3))]);
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.step, "awaiting_payment");
    assert_eq!(d.command, None);
    assert_eq!(
        d.wake_at,
        Some(t0() + Duration::minutes(15)),
        "the deadline stays"
    );
    assert_eq!(d.state.error, None, "the checkout has not failed");
    let last = d.state.payment.clone().unwrap().last_error.unwrap();
    assert_eq!(last.code, "insufficient_funds");
    assert!(
        last.detail.starts_with("The card has insufficient funds."),
        "{last:?}"
    );
    assert!(!last.detail.contains("req_123"), "{last:?}");
    assert_eq!(
        last.operator_detail.as_deref(),
        Some("Your card has insufficient funds. (req_123, key sk_test_abc…)")
    );

    // Another card on the same intent: one confirmation.
    let d = run(d.state, &[(paid("pi_1"), t0() + Duration::minutes(4))]);
    assert!(
        is_confirm(&d.command, Some("pi_1"), 9000),
        "{:?}",
        d.command
    );
    let d = run(d.state, &[(confirmed(), t0() + Duration::minutes(4))]);
    assert_eq!(d.status, RunStatus::Completed);
}

#[test]
fn an_unknown_decline_code_is_shown_as_card_declined() {
    let failed = Input::Signal {
        name: SIGNAL_PAYMENT_FAILED.into(),
        payload: json!({ "intent_id": "pi_1", "decline_code": "do_not_honor_<script>" }),
    };
    let d = run(awaiting(), &[(failed, t0())]);
    let last = d.state.payment.unwrap().last_error.unwrap();
    assert_eq!(last.code, "card_declined");
    assert_eq!(last.operator_detail, None);
}

#[test]
fn a_decline_of_another_intent_or_after_the_deadline_changes_nothing() {
    let other = Input::Signal {
        name: SIGNAL_PAYMENT_FAILED.into(),
        payload: json!({ "intent_id": "pi_other" }),
    };
    assert!(!Checkout::decide(&awaiting(), &other, t0()).accepted);
    // The deadline still ends a run that only saw declines.
    let failed = Input::Signal {
        name: SIGNAL_PAYMENT_FAILED.into(),
        payload: json!({ "intent_id": "pi_1" }),
    };
    let d = run(
        awaiting(),
        &[(failed, t0()), (Input::Timer, t0() + Duration::minutes(15))],
    );
    assert_eq!(d.step, "cancelling_payment_intent");
    assert_eq!(d.state.error.unwrap().code, "expired");
}

#[test]
fn the_buyers_cancel_cancels_the_intent_then_releases() {
    let cancel = Input::Signal {
        name: SIGNAL_CANCEL_REQUESTED.into(),
        payload: json!({}),
    };
    let d = run(awaiting(), &[(cancel.clone(), t0())]);
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(
        d.command,
        Some(Command::Remote(RemoteCommand::CancelPaymentIntent {
            key: KEY_CANCEL_INTENT.into(),
            intent_id: "pi_1".into()
        }))
    );
    let d = run(
        d.state,
        &[
            (
                Input::RemoteDone {
                    key: KEY_CANCEL_INTENT.into(),
                    outcome: RemoteOutcome::IntentCancelled,
                },
                t0(),
            ),
            (Input::Local(LocalOutcome::Released), t0()),
        ],
    );
    assert_eq!(d.status, RunStatus::Compensated);
    let error = d.state.error.clone().unwrap();
    assert_eq!(error.code, "cancelled");
    assert!(!error.detail.contains("operator"), "{error:?}");
    // A second cancel of the finished run means nothing.
    assert!(!Checkout::decide(&d.state, &cancel, t0()).accepted);
    // The payment that raced the cancel is handled as a late payment.
    let late = run(d.state, &[(paid("pi_1"), t0())]);
    assert_eq!(late.step, "confirming_late_payment");
}

#[test]
fn a_payment_racing_the_buyers_cancel_is_sold_with_the_held_seats() {
    let cancel = Input::Signal {
        name: SIGNAL_CANCEL_REQUESTED.into(),
        payload: json!({}),
    };
    let d = run(
        awaiting(),
        &[
            (cancel, t0()),
            (
                Input::RemoteDone {
                    key: KEY_CANCEL_INTENT.into(),
                    outcome: RemoteOutcome::IntentAlreadySucceeded,
                },
                t0(),
            ),
        ],
    );
    assert!(is_confirm(&d.command, Some("pi_1"), 9000));
    assert_eq!(d.state.error, None);
}

fn paid_with(amount: serde_json::Value, currency: serde_json::Value) -> Input {
    Input::Signal {
        name: SIGNAL_PAYMENT_SUCCEEDED.into(),
        payload: json!({ "event_id": "evt_9", "intent_id": "pi_1", "amount_minor": amount, "currency": currency }),
    }
}

#[test]
fn a_payment_of_another_amount_or_currency_confirms_nothing_and_waits_for_an_operator() {
    for wrong in [
        paid_with(json!(1), json!("EUR")),
        paid_with(json!(9000), json!("USD")),
        paid_with(json!(null), json!(null)),
    ] {
        let d = run(awaiting(), &[(wrong, t0())]);
        assert_eq!(d.step, "releasing_mismatched_payment");
        assert_eq!(
            d.command,
            Some(Command::Local(LocalCommand::ReleaseReservations))
        );
        let d = run(d.state, &[(Input::Local(LocalOutcome::Released), t0())]);
        assert_eq!(d.status, RunStatus::Failed);
        assert_eq!(d.step, "failed");
        let error = d.state.error.clone().unwrap();
        assert_eq!(error.code, "payment_mismatch");
        assert!(error.operator_detail.unwrap().contains("evt_9"));
        assert!(d.state.mismatched_payment.is_some());
        assert_eq!(d.state.booking_id, None);
        assert!(
            Checkout::money_at_stake(&d.state).unwrap().contains("pi_1"),
            "the intent is still money at stake"
        );
    }
}

#[test]
fn an_operator_retry_refunds_a_mismatched_payment_as_received() {
    let d = run(
        awaiting(),
        &[
            (paid_with(json!(1), json!("USD")), t0()),
            (Input::Local(LocalOutcome::Released), t0()),
            (Input::Retry, t0()),
        ],
    );
    assert_eq!(
        d.command,
        Some(Command::Remote(RemoteCommand::RefundPayment {
            key: LATE_REFUND_1.into(),
            intent_id: "pi_1".into(),
            amount_minor: 1
        }))
    );
    let d = run(
        d.state,
        &[(
            Input::RemoteDone {
                key: LATE_REFUND_1.into(),
                outcome: RemoteOutcome::Refund(RefundReport {
                    refund_id: "re_1".into(),
                    status: RefundStatus::Succeeded,
                    amount_minor: 1,
                    failure_reason: None,
                }),
            },
            t0(),
        )],
    );
    assert_eq!(d.status, RunStatus::Compensated);
    assert_eq!(Checkout::money_at_stake(&d.state), None);
}

#[test]
fn a_late_payment_of_another_amount_goes_straight_to_an_operator() {
    let d = run(
        expired_and_released(),
        &[(paid_with(json!(9000), json!("USD")), t0())],
    );
    assert_eq!(d.status, RunStatus::Failed);
    assert_eq!(d.command, None);
    assert_eq!(d.state.error.unwrap().code, "payment_mismatch");
}

#[test]
fn a_late_payment_whose_coupon_is_used_up_is_refunded() {
    let d = run(
        expired_and_released(),
        &[
            (paid("pi_1"), t0()),
            (Input::Local(LocalOutcome::LateCouponUsedUp), t0()),
        ],
    );
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(d.step, "refunding_late_payment");
    assert_eq!(
        d.command,
        Some(Command::Remote(RemoteCommand::RefundPayment {
            key: LATE_REFUND_1.into(),
            intent_id: "pi_1".into(),
            amount_minor: 9000
        }))
    );
    assert_eq!(d.state.error.unwrap().code, "coupon_used_up_refunded");
}

#[test]
fn provider_text_stays_out_of_the_participants_sentence() {
    let leaked = "Invalid API Key provided: Authorization was 'Bearer sk_live_abc'";
    let d = run(
        fresh(None),
        &[
            (Input::Start, t0()),
            (held(9000), t0()),
            (
                Input::RemoteFailed {
                    key: KEY_CREATE_INTENT.into(),
                    error: leaked.into(),
                },
                t0(),
            ),
        ],
    );
    let error = d.state.error.unwrap();
    assert_eq!(error.code, "payment_unavailable");
    assert!(!error.detail.contains("sk_live"), "{error:?}");
    assert!(!participant_detail(&error).contains("sk_live"));
    assert_eq!(error.operator_detail.as_deref(), Some(leaked));
    // A run stored with the provider's text in its detail still shows the sentence.
    let old = RunError::new("payment_unavailable", leaked);
    assert!(!participant_detail(&old).contains("sk_live"));
}

#[test]
fn cancel_refused_because_paid_confirms_with_the_still_held_seats() {
    let d = run(
        awaiting(),
        &[
            (Input::Timer, t0() + Duration::minutes(15)),
            (
                Input::RemoteDone {
                    key: KEY_CANCEL_INTENT.into(),
                    outcome: RemoteOutcome::IntentAlreadySucceeded,
                },
                t0(),
            ),
        ],
    );
    assert_eq!(d.step, "confirming");
    assert!(
        is_confirm(&d.command, Some("pi_1"), 9000),
        "{:?}",
        d.command
    );
    let d = run(d.state, &[(confirmed(), t0())]);
    assert_eq!(d.status, RunStatus::Completed);
    assert!(d.state.error.is_none());
}

#[test]
fn cancel_failing_for_good_still_releases() {
    let d = run(
        awaiting(),
        &[
            (Input::Timer, t0() + Duration::minutes(15)),
            (
                Input::RemoteFailed {
                    key: KEY_CANCEL_INTENT.into(),
                    error: "500".into(),
                },
                t0(),
            ),
        ],
    );
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::ReleaseReservations))
    );
}

fn expired_and_released() -> CheckoutState {
    run(
        awaiting(),
        &[
            (Input::Timer, t0() + Duration::minutes(15)),
            (
                Input::RemoteDone {
                    key: KEY_CANCEL_INTENT.into(),
                    outcome: RemoteOutcome::IntentCancelled,
                },
                t0(),
            ),
            (Input::Local(LocalOutcome::Released), t0()),
        ],
    )
    .state
}

#[test]
fn late_payment_with_capacity_free_is_accepted() {
    let d = run(expired_and_released(), &[(paid("pi_1"), t0())]);
    assert_eq!(d.step, "confirming_late_payment");
    assert!(
        matches!(&d.command, Some(Command::Local(LocalCommand::ConfirmLatePayment { booking }))
        if booking.payment_intent_id.as_deref() == Some("pi_1")),
        "{:?}",
        d.command
    );
    let d = run(d.state, &[(confirmed(), t0())]);
    assert_eq!(d.status, RunStatus::Completed);
    assert!(d.state.error.is_none(), "a sold late payment is a success");
}

#[test]
fn late_payment_without_capacity_is_refunded() {
    let d = run(
        expired_and_released(),
        &[
            (paid("pi_1"), t0()),
            (Input::Local(LocalOutcome::LateNoCapacity), t0()),
        ],
    );
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(
        d.command,
        Some(Command::Remote(RemoteCommand::RefundPayment {
            key: LATE_REFUND_1.into(),
            intent_id: "pi_1".into(),
            amount_minor: 9000
        }))
    );
    let refunded = Input::RemoteDone {
        key: LATE_REFUND_1.into(),
        outcome: refund_succeeded("re_1"),
    };
    let d = run(d.state, &[(refunded, t0())]);
    assert_eq!(d.status, RunStatus::Compensated);
    assert!(d.state.late_payment_refunded);
    assert_eq!(d.state.error.as_ref().unwrap().code, "sold_out_refunded");
    // A duplicate of the payment webhook after the refund changes nothing.
    let again = Checkout::decide(&d.state, &paid("pi_1"), t0());
    assert!(!again.accepted);
}

#[test]
fn a_refund_that_fails_for_good_parks_the_run_for_an_operator() {
    let d = run(
        expired_and_released(),
        &[
            (paid("pi_1"), t0()),
            (Input::Local(LocalOutcome::LateNoCapacity), t0()),
            (
                Input::RemoteFailed {
                    key: LATE_REFUND_1.into(),
                    error: "card closed".into(),
                },
                t0(),
            ),
        ],
    );
    assert_eq!(d.status, RunStatus::Failed);
    assert_eq!(d.state.error.unwrap().code, "refund_failed");
}

#[test]
fn operator_cancel_while_waiting_compensates() {
    let d = run(awaiting(), &[(Input::Cancel, t0())]);
    assert_eq!(d.step, "cancelling_payment_intent");
    assert_eq!(d.state.error.unwrap().code, "cancelled");
}

#[test]
fn a_completed_checkout_ignores_everything() {
    let done = run(awaiting(), &[(paid("pi_1"), t0()), (confirmed(), t0())]).state;
    for input in [
        paid("pi_1"),
        Input::Timer,
        Input::Start,
        Input::Cancel,
        Input::Local(LocalOutcome::Released),
    ] {
        let d = Checkout::decide(&done, &input, t0() + Duration::hours(1));
        assert!(!d.accepted, "{input:?}");
        assert_eq!(d.status, RunStatus::Completed);
        assert_eq!(d.command, None);
    }
}

#[test]
fn outcomes_for_another_step_are_ignored() {
    // A duplicate or stale delivery must never move the run.
    let d = Checkout::decide(&awaiting(), &intent_created(), t0());
    assert!(!d.accepted);
    let d = Checkout::decide(&awaiting(), &held(1), t0());
    assert!(!d.accepted);
    let d = Checkout::decide(&fresh(None), &paid("pi_1"), t0());
    assert!(!d.accepted);
}

#[test]
fn operator_cancel_before_start_ends_the_run_with_nothing_to_undo() {
    let d = Checkout::decide(&fresh(None), &Input::Cancel, t0());
    assert!(d.accepted);
    assert_eq!(d.status, RunStatus::Cancelled);
    assert_eq!(d.command, None);
    assert_eq!(d.state.error.unwrap().code, "cancelled");
}

#[test]
fn operator_cancel_while_holding_releases() {
    let holding = Checkout::decide(&fresh(None), &Input::Start, t0()).state;
    let d = run(holding, &[(Input::Cancel, t0())]);
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::ReleaseReservations))
    );
    let d = run(d.state, &[(Input::Local(LocalOutcome::Released), t0())]);
    assert_eq!(d.status, RunStatus::Compensated);
    assert_eq!(d.state.error.unwrap().code, "cancelled");
}

#[test]
fn operator_cancel_while_the_intent_is_created_cancels_the_intent_it_returns() {
    let creating = run(fresh(None), &[(Input::Start, t0()), (held(9000), t0())]).state;
    assert_eq!(creating.phase, Phase::CreatingPaymentIntent);
    let d = run(creating, &[(Input::Cancel, t0())]);
    // The same idempotent call stays pending, so its answer is still awaited.
    assert_eq!(d.step, "creating_payment_intent");
    assert!(matches!(
        d.command,
        Some(Command::Remote(RemoteCommand::CreatePaymentIntent { .. }))
    ));
    assert!(d.state.cancel_requested);
    // A second cancel adds nothing.
    assert!(!Checkout::decide(&d.state, &Input::Cancel, t0()).accepted);
    let d = run(d.state, &[(intent_created(), t0())]);
    assert_eq!(d.status, RunStatus::Compensating);
    assert_eq!(
        d.command,
        Some(Command::Remote(RemoteCommand::CancelPaymentIntent {
            key: KEY_CANCEL_INTENT.into(),
            intent_id: "pi_1".into()
        }))
    );
    let d = run(
        d.state,
        &[
            (
                Input::RemoteDone {
                    key: KEY_CANCEL_INTENT.into(),
                    outcome: RemoteOutcome::IntentCancelled,
                },
                t0(),
            ),
            (Input::Local(LocalOutcome::Released), t0()),
        ],
    );
    assert_eq!(d.status, RunStatus::Compensated);
}

#[test]
fn operator_cancel_while_creating_the_intent_that_fails_releases() {
    let creating = run(
        fresh(None),
        &[
            (Input::Start, t0()),
            (held(9000), t0()),
            (Input::Cancel, t0()),
        ],
    )
    .state;
    let d = run(
        creating,
        &[(
            Input::RemoteFailed {
                key: KEY_CREATE_INTENT.into(),
                error: "down".into(),
            },
            t0(),
        )],
    );
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::ReleaseReservations))
    );
}

#[test]
fn operator_cancel_is_ignored_while_compensating_or_confirming() {
    let cancelling = run(awaiting(), &[(Input::Timer, t0() + Duration::minutes(16))]).state;
    assert_eq!(cancelling.phase, Phase::CancellingPaymentIntent);
    assert!(!Checkout::decide(&cancelling, &Input::Cancel, t0()).accepted);
    let confirming = run(awaiting(), &[(paid("pi_1"), t0())]).state;
    assert_eq!(confirming.phase, Phase::Confirming);
    assert!(!Checkout::decide(&confirming, &Input::Cancel, t0()).accepted);
}

#[test]
fn operator_retry_of_a_failed_refund_refunds_again() {
    let failed = run(
        expired_and_released(),
        &[
            (paid("pi_1"), t0()),
            (Input::Local(LocalOutcome::LateNoCapacity), t0()),
            (
                Input::RemoteFailed {
                    key: LATE_REFUND_1.into(),
                    error: "card closed".into(),
                },
                t0(),
            ),
        ],
    )
    .state;
    let d = run(failed, &[(Input::Retry, t0())]);
    assert_eq!(d.status, RunStatus::Compensating);
    // A new refund at the provider: the first key's failure would be replayed.
    assert_eq!(
        d.command,
        Some(Command::Remote(RemoteCommand::RefundPayment {
            key: "refund_late_payment:2".into(),
            intent_id: "pi_1".into(),
            amount_minor: 9000
        }))
    );
    // Retry means nothing to a run that has not failed.
    assert!(!Checkout::decide(&awaiting(), &Input::Retry, t0()).accepted);
}

#[test]
fn a_late_refund_answered_pending_waits_and_only_a_success_refunds() {
    let refunding = run(
        expired_and_released(),
        &[
            (paid("pi_1"), t0()),
            (Input::Local(LocalOutcome::LateNoCapacity), t0()),
        ],
    )
    .state;
    let pending = Input::RemoteDone {
        key: LATE_REFUND_1.into(),
        outcome: RemoteOutcome::Refund(RefundReport {
            refund_id: "re_1".into(),
            status: RefundStatus::Pending,
            amount_minor: 9000,
            failure_reason: None,
        }),
    };
    let d = run(refunding.clone(), &[(pending.clone(), t0())]);
    assert_eq!(d.status, RunStatus::Waiting);
    assert!(!d.state.late_payment_refunded);
    assert!(Checkout::money_at_stake(&d.state).is_some());
    // The webhook says it failed: not a refund; parked for an operator.
    let failed = Input::Signal {
        name: SIGNAL_REFUND_UPDATED.into(),
        payload: json!({"refund_id": "re_1", "status": "failed", "payment_intent": "pi_1",
                        "amount_minor": 9000, "failure_reason": "expired_or_canceled_card"}),
    };
    let d = run(d.state, &[(failed, t0())]);
    assert_eq!(d.status, RunStatus::Failed);
    assert_eq!(d.state.error.as_ref().unwrap().code, "refund_failed");
    assert!(
        !d.state
            .error
            .as_ref()
            .unwrap()
            .detail
            .contains("expired_or_canceled_card")
    );
    assert!(!d.state.late_payment_refunded);
    // A refund answered `failed` outright is not a refund either.
    let answered_failed = Input::RemoteDone {
        key: LATE_REFUND_1.into(),
        outcome: RemoteOutcome::Refund(RefundReport {
            refund_id: "re_1".into(),
            status: RefundStatus::Failed,
            amount_minor: 9000,
            failure_reason: None,
        }),
    };
    let d = run(refunding, &[(answered_failed, t0())]);
    assert_eq!(d.status, RunStatus::Failed);
    assert!(!d.state.late_payment_refunded);
}

#[test]
fn money_is_at_stake_from_the_intent_until_the_run_ends() {
    assert_eq!(Checkout::money_at_stake(&fresh(None)), None);
    let expected = Some("payment intent pi_1 for 9000 EUR".to_owned());
    assert_eq!(Checkout::money_at_stake(&awaiting()), expected);
    let paid_not_confirmed = run(awaiting(), &[(paid("pi_1"), t0())]).state;
    assert_eq!(Checkout::money_at_stake(&paid_not_confirmed), expected);
    let completed = run(paid_not_confirmed, &[(confirmed(), t0())]).state;
    assert_eq!(Checkout::money_at_stake(&completed), None);
    assert_eq!(Checkout::money_at_stake(&expired_and_released()), None);
}

#[test]
fn only_a_late_refund_counts_as_holding_nothing() {
    assert_eq!(STEPS_HOLDING_NOTHING, &[Phase::RefundingLatePayment.step()]);
    // Waiting for payment holds the seats: an open checkout.
    assert!(!STEPS_HOLDING_NOTHING.contains(&awaiting().phase.step()));
}

#[test]
fn a_checkout_of_a_waitlist_offer_adopts_the_offer_hold() {
    let mut state = fresh(None);
    state.waitlist_entry_id = Some(Uuid::from_u128(99));
    let d = Checkout::decide(&state, &Input::Start, t0());
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::AdoptOfferHold {
            items: state.items.clone(),
            expires_at: t0() + Duration::minutes(15),
        }))
    );
    // Adopted units are answered like a hold; the checkout goes on as any other.
    let d = Checkout::decide(&d.state, &held(9000), t0());
    assert!(d.accepted);
    assert_eq!(d.state.phase, Phase::CreatingPaymentIntent);
}
