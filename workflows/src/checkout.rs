//! The checkout workflow: hold capacity → reserve the coupon → create the payment
//! intent (skipped for free orders) → wait for the payment or the hold deadline →
//! confirm (holds become sold, booking, tickets, email).
//!
//! Compensation: on expiry or the buyer's cancel, cancel the intent, then release
//! the holds and the coupon use. A declined card does not end the checkout: the
//! buyer may try another card on the same intent until the deadline, and the
//! last decline is kept for the status view. A payment that succeeds after the
//! holds were released is accepted if capacity is still free (and its coupon
//! still has a use to take), otherwise refunded: money is never kept without
//! tickets. A payment whose amount or currency is not the order's confirms
//! nothing: the seats are let go and the run waits for an operator.
//!
//! ```text
//! start ─► holding ─► reserving_coupon ─► creating_payment_intent ─► awaiting_payment ─► confirming ─► completed
//!             │              │                     │                       │  (expired / buyer cancels)
//!             ▼              ▼                     ▼                       ▼
//!         (sold out)   releasing ◄──────────── releasing ◄──── cancelling_payment_intent
//!          compensated       │                                             │ (already succeeded)
//!                            ▼                                             └──────► confirming
//!                       compensated ──(late payment)──► confirming_late_payment ─► completed
//!                                                              │ (no capacity)
//!                                                              ▼
//!                                                      refunding_late_payment ─► compensated (refunded)
//!
//! awaiting_payment ─(paid, wrong amount or currency)─► releasing_mismatched_payment ─► failed (operator)
//! ```

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::{self, RunError, RunStatus, Workflow};
use crate::money::Money;
use crate::payments::{PaymentCommand as RemoteCommand, PaymentOutcome as RemoteOutcome};
pub use crate::payments::{SIGNAL_PAYMENT_FAILED, SIGNAL_PAYMENT_SUCCEEDED, SIGNAL_REFUND_UPDATED};
use crate::refunding::{DEFAULT_POLL_AFTER_SECS, RefundStep, RefundTracker};

mod view;
mod vocab;
pub use view::{CheckoutView, PaymentView};
pub use vocab::{BookingDraft, Item, LocalCommand, LocalOutcome, PricedItem};

/// The checkout's inputs, commands and decisions.
pub type Input = engine::Input<LocalOutcome, RemoteOutcome>;
pub type Command = engine::Command<LocalCommand, RemoteCommand>;
type Decision<S> = engine::Decision<S, Command>;

/// The buyer gave up the checkout (`POST /v1/checkouts/{id}/cancel`).
pub const SIGNAL_CANCEL_REQUESTED: &str = "cancel_requested";

/// Steps at which a run that is not over holds no seats (a late payment being
/// refunded): it does not count as the participant's open checkout.
pub const STEPS_HOLDING_NOTHING: &[&str] = &["refunding_late_payment"];

pub const KEY_CREATE_INTENT: &str = "create_payment_intent";
pub const KEY_CANCEL_INTENT: &str = "cancel_payment_intent";
pub const KEY_REFUND_LATE: &str = "refund_late_payment";

/// The event was cancelled: a checkout still paying lets go.
pub const SIGNAL_EVENT_CANCELLED: &str = "event_cancelled";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Start,
    Holding,
    ReservingCoupon,
    CreatingPaymentIntent,
    AwaitingPayment,
    Confirming,
    CancellingPaymentIntent,
    Releasing,
    Completed,
    Compensated,
    ConfirmingLatePayment,
    RefundingLatePayment,
    Failed,
    /// A payment that does not match the order arrived: the seats and the
    /// coupon use are let go before the run waits for an operator.
    ReleasingMismatchedPayment,
}

impl Phase {
    pub fn step(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Holding => "holding",
            Phase::ReservingCoupon => "reserving_coupon",
            Phase::CreatingPaymentIntent => "creating_payment_intent",
            Phase::AwaitingPayment => "awaiting_payment",
            Phase::Confirming => "confirming",
            Phase::CancellingPaymentIntent => "cancelling_payment_intent",
            Phase::Releasing => "releasing",
            Phase::Completed => "completed",
            Phase::Compensated => "compensated",
            Phase::ConfirmingLatePayment => "confirming_late_payment",
            Phase::RefundingLatePayment => "refunding_late_payment",
            Phase::Failed => "failed",
            Phase::ReleasingMismatchedPayment => "releasing_mismatched_payment",
        }
    }
}

/// The payment the participant is asked to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub intent_id: String,
    pub client_secret: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The last decline of the buyer's card; the intent stays payable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<RunError>,
}

/// A payment the provider reported that does not match the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedPayment {
    /// The provider's event, to find it in its dashboard.
    pub event_id: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutState {
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub items: Vec<Item>,
    pub coupon_code: Option<String>,
    /// How long the holds last (the event's hold minutes).
    pub hold_minutes: i64,
    pub phase: Phase,
    pub expires_at: Option<DateTime<Utc>>,
    pub currency: Option<String>,
    /// The held lines at the prices they were held at.
    pub lines: Vec<PricedItem>,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub coupon_id: Option<Uuid>,
    pub payment: Option<Payment>,
    pub booking_id: Option<Uuid>,
    pub ticket_ids: Vec<Uuid>,
    /// Why the checkout did not complete.
    pub error: Option<RunError>,
    /// A payment succeeded after the holds were released, and was refunded.
    pub late_payment_refunded: bool,
    /// An operator cancelled while the payment intent was being created: it is
    /// cancelled as soon as the provider answers.
    #[serde(default)]
    pub cancel_requested: bool,
    /// The refund of a payment that came too late for its seats.
    #[serde(default)]
    pub late_refund: Option<RefundTracker>,
    /// A payment of another amount or currency than the order's: recorded
    /// for the operator, who refunds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatched_payment: Option<ReceivedPayment>,
    /// The waitlist entry whose accepted offer this checkout pays for: its
    /// units are the offer's, adopted rather than held anew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waitlist_entry_id: Option<Uuid>,
}

impl CheckoutState {
    pub fn new(
        user_id: Uuid,
        event_id: Uuid,
        items: Vec<Item>,
        coupon_code: Option<String>,
        hold_minutes: i64,
    ) -> Self {
        CheckoutState {
            user_id,
            event_id,
            items,
            coupon_code,
            hold_minutes,
            phase: Phase::Start,
            expires_at: None,
            currency: None,
            lines: Vec::new(),
            subtotal_minor: 0,
            discount_minor: 0,
            coupon_id: None,
            payment: None,
            booking_id: None,
            ticket_ids: Vec::new(),
            error: None,
            late_payment_refunded: false,
            cancel_requested: false,
            late_refund: None,
            mismatched_payment: None,
            waitlist_entry_id: None,
        }
    }

    pub fn total_minor(&self) -> i64 {
        (self.subtotal_minor - self.discount_minor).max(0)
    }

    /// The booking this checkout writes when it is paid (or free).
    pub fn booking_draft(&self) -> BookingDraft {
        BookingDraft {
            user_id: self.user_id,
            event_id: self.event_id,
            items: self.items.clone(),
            currency: self.currency.clone().unwrap_or_default(),
            subtotal_minor: self.subtotal_minor,
            discount_minor: self.discount_minor,
            coupon_id: self.coupon_id,
            payment_intent_id: self.payment.as_ref().map(|p| p.intent_id.clone()),
            lines: self.lines.clone(),
        }
    }
}

pub struct Checkout;

/// Builds decisions; keeps `decide` readable.
struct Next {
    state: CheckoutState,
}

impl Next {
    fn to(mut self, phase: Phase) -> Self {
        self.state.phase = phase;
        self
    }
    fn error(mut self, error: RunError) -> Self {
        self.state.error = Some(error);
        self
    }
    fn with(mut self, f: impl FnOnce(&mut CheckoutState)) -> Self {
        f(&mut self.state);
        self
    }
    fn run(self, command: Command) -> Decision<CheckoutState> {
        let status = match self.state.phase {
            Phase::CancellingPaymentIntent
            | Phase::Releasing
            | Phase::RefundingLatePayment
            | Phase::ReleasingMismatchedPayment => RunStatus::Compensating,
            _ => RunStatus::Running,
        };
        self.decision(status, Some(command), None)
    }
    fn wait_until(self, deadline: DateTime<Utc>) -> Decision<CheckoutState> {
        self.decision(RunStatus::Waiting, None, Some(deadline))
    }
    fn finish(self, status: RunStatus) -> Decision<CheckoutState> {
        self.decision(status, None, None)
    }
    fn decision(
        self,
        status: RunStatus,
        command: Option<Command>,
        wake_at: Option<DateTime<Utc>>,
    ) -> Decision<CheckoutState> {
        Decision {
            step: self.state.phase.step(),
            state: self.state,
            status,
            command,
            children: Vec::new(),
            wake_at,
            accepted: true,
        }
    }
}

fn local(c: LocalCommand) -> Command {
    Command::Local(c)
}

fn remote(c: RemoteCommand) -> Command {
    Command::Remote(c)
}

/// The input means nothing here: keep everything as it is.
fn ignore(state: &CheckoutState) -> Decision<CheckoutState> {
    let status = status_of(state.phase);
    Decision {
        step: state.phase.step(),
        state: state.clone(),
        status,
        command: None,
        children: Vec::new(),
        wake_at: (state.phase == Phase::AwaitingPayment)
            .then_some(state.expires_at)
            .flatten(),
        accepted: false,
    }
}

fn status_of(phase: Phase) -> RunStatus {
    match phase {
        Phase::AwaitingPayment => RunStatus::Waiting,
        Phase::Completed => RunStatus::Completed,
        Phase::Compensated => RunStatus::Compensated,
        Phase::Failed => RunStatus::Failed,
        Phase::CancellingPaymentIntent
        | Phase::Releasing
        | Phase::RefundingLatePayment
        | Phase::ReleasingMismatchedPayment => RunStatus::Compensating,
        _ => RunStatus::Running,
    }
}

fn cancelled() -> RunError {
    RunError::new("cancelled", "cancelled by an operator")
}

fn signal_intent(payload: &serde_json::Value) -> Option<&str> {
    payload.get("intent_id").and_then(|v| v.as_str())
}

/// After pricing: pay, or confirm right away when there is nothing to pay.
fn pay_or_confirm(next: Next) -> Decision<CheckoutState> {
    let total = next.state.total_minor();
    if total == 0 {
        let booking = next.state.booking_draft();
        return next
            .to(Phase::Confirming)
            .run(local(LocalCommand::ConfirmBooking { booking }));
    }
    let currency = next.state.currency.clone().unwrap_or_default();
    next.to(Phase::CreatingPaymentIntent)
        .run(remote(RemoteCommand::CreatePaymentIntent {
            key: KEY_CREATE_INTENT.into(),
            amount_minor: total,
            currency,
        }))
}

/// Give the whole payment back, followed until the provider says it is back.
fn refund_payment(next: Next) -> Decision<CheckoutState> {
    let Some(payment) = next.state.payment.clone() else {
        return next.to(Phase::Compensated).finish(RunStatus::Compensated);
    };
    let tracker = RefundTracker::new(
        payment.intent_id,
        Money::new(payment.amount_minor, payment.currency),
        KEY_REFUND_LATE,
        DEFAULT_POLL_AFTER_SECS,
    );
    let command = tracker.create();
    next.with(|s| s.late_refund = Some(tracker))
        .to(Phase::RefundingLatePayment)
        .run(remote(command))
}

/// Undo what was reserved; the intent (if any) is already dealt with.
fn release(next: Next) -> Decision<CheckoutState> {
    next.to(Phase::Releasing)
        .run(local(LocalCommand::ReleaseReservations))
}

/// Cancel the intent first, so no payment can succeed after we let go of the seats.
fn cancel_intent(next: Next) -> Decision<CheckoutState> {
    match next.state.payment.clone() {
        Some(p) => next.to(Phase::CancellingPaymentIntent).run(remote(
            RemoteCommand::CancelPaymentIntent {
                key: KEY_CANCEL_INTENT.into(),
                intent_id: p.intent_id,
            },
        )),
        None => release(next),
    }
}

/// Refunds a payment that came after the holds were released and could not be
/// sold (`error` says why).
fn refund_late(next: Next, error: RunError) -> Decision<CheckoutState> {
    refund_payment(next.error(error))
}

/// What a `payment_succeeded` signal says was paid, when it is not exactly the
/// order's intent amount and currency (a signal that does not say counts as
/// not matching: a payment we cannot check confirms nothing).
fn mismatched(payment: &Payment, payload: &serde_json::Value) -> Option<ReceivedPayment> {
    let received = ReceivedPayment {
        event_id: payload
            .get("event_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        amount_minor: payload.get("amount_minor").and_then(|v| v.as_i64()),
        currency: payload
            .get("currency")
            .and_then(|v| v.as_str())
            .map(str::to_ascii_uppercase),
    };
    let same = received.amount_minor == Some(payment.amount_minor)
        && received.currency.as_deref() == Some(payment.currency.as_str());
    (!same).then_some(received)
}

/// Records a payment that does not match the order. Nothing is confirmed; the
/// run waits for an operator, who refunds it (`money_at_stake` names the intent).
fn mismatch_error(payment: &Payment, received: &ReceivedPayment) -> RunError {
    RunError::new(
        "payment_mismatch",
        "The payment received does not match the order, so no tickets were issued; \
         it will be refunded.",
    )
    .with_operator_detail(format!(
        "payment_intent.succeeded (event {}) reports {} {} for intent {}; the order is {} {}",
        received.event_id.as_deref().unwrap_or("unknown"),
        received
            .amount_minor
            .map_or_else(|| "no amount".to_owned(), |a| a.to_string()),
        received.currency.as_deref().unwrap_or("no currency"),
        payment.intent_id,
        payment.amount_minor,
        payment.currency,
    ))
}

/// The provider's decline codes a participant may be told about, each with a
/// plain sentence. Any other code is shown as `card_declined`.
const DECLINES: &[(&str, &str)] = &[
    ("insufficient_funds", "The card has insufficient funds."),
    ("expired_card", "The card has expired."),
    ("incorrect_cvc", "The card's security code is incorrect."),
    ("incorrect_number", "The card number is incorrect."),
    ("card_velocity_exceeded", "The card's limit was reached."),
    (
        "authentication_required",
        "The card's bank asked for authentication, which did not succeed.",
    ),
    ("processing_error", "The card could not be processed."),
    ("generic_decline", "The card was declined."),
    ("card_declined", "The card was declined."),
];

/// The last decline, in the participant's terms: a stable code and a plain
/// sentence. The provider's own message is kept for operators only.
fn decline(payload: &serde_json::Value) -> RunError {
    let field = |name: &str| payload.get(name).and_then(|v| v.as_str());
    let known = [field("decline_code"), field("failure_code")]
        .into_iter()
        .flatten()
        .find_map(|code| DECLINES.iter().find(|(c, _)| *c == code));
    let (code, sentence) = known.copied().unwrap_or(DECLINES[DECLINES.len() - 1]);
    let error = RunError::new(
        code,
        format!("{sentence} You can try another card before the checkout expires."),
    );
    match field("failure_message") {
        Some(message) => error.with_operator_detail(message),
        None => error,
    }
}

/// The sentence a participant sees for `error`. Errors caused by an outside
/// system get a fixed sentence whatever was stored, so no provider text reaches
/// a participant (not even from runs stored before details were kept apart).
pub fn participant_detail(error: &RunError) -> String {
    match error.code.as_str() {
        "payment_unavailable" => PAYMENT_UNAVAILABLE.to_owned(),
        "refund_failed" => REFUND_FAILED.to_owned(),
        _ => error.detail.clone(),
    }
}

const PAYMENT_UNAVAILABLE: &str =
    "The payment could not be started, so the tickets were released. Please try again later.";
const REFUND_FAILED: &str = "Your payment arrived too late and its automatic refund did not go through yet; \
     our team will refund it.";

impl Workflow for Checkout {
    const KIND: &'static str = "checkout";
    type State = CheckoutState;
    type Local = LocalCommand;
    type LocalOutcome = LocalOutcome;
    type Remote = RemoteCommand;
    type RemoteOutcome = RemoteOutcome;
    type View = CheckoutView;

    fn initial_step() -> &'static str {
        Phase::Start.step()
    }

    fn view(state: &CheckoutState) -> CheckoutView {
        CheckoutView::of(state)
    }

    fn money_at_stake(state: &CheckoutState) -> Option<String> {
        let payment = state.payment.as_ref()?;
        if matches!(state.phase, Phase::Completed | Phase::Compensated)
            || state.late_payment_refunded
        {
            return None;
        }
        Some(format!(
            "payment intent {} for {} {}",
            payment.intent_id, payment.amount_minor, payment.currency
        ))
    }

    fn decide(state: &CheckoutState, input: &Input, now: DateTime<Utc>) -> Decision<CheckoutState> {
        let next = Next {
            state: state.clone(),
        };
        match (state.phase, input) {
            (Phase::Start, Input::Start) => {
                let expires_at = now + Duration::minutes(state.hold_minutes);
                let items = state.items.clone();
                // A checkout of an accepted waitlist offer takes over the
                // offer's units and never takes new ones.
                let command = match state.waitlist_entry_id {
                    Some(_) => LocalCommand::AdoptOfferHold { items, expires_at },
                    None => LocalCommand::HoldCapacity { items, expires_at },
                };
                next.to(Phase::Holding).run(local(command))
            }

            (
                Phase::Holding,
                Input::Local(LocalOutcome::Held {
                    expires_at,
                    currency,
                    lines,
                }),
            ) => {
                let next = next.with(|s| {
                    s.expires_at = Some(*expires_at);
                    s.currency = Some(currency.clone());
                    s.subtotal_minor = lines
                        .iter()
                        .map(|l| l.unit_price_minor * i64::from(l.quantity))
                        .sum();
                    s.lines = lines.clone();
                });
                match state.coupon_code.clone() {
                    Some(code) => {
                        next.to(Phase::ReservingCoupon)
                            .run(local(LocalCommand::ReserveCoupon {
                                event_id: state.event_id,
                                code,
                                lines: lines.clone(),
                            }))
                    }
                    None => pay_or_confirm(next),
                }
            }
            (
                Phase::Holding,
                Input::Local(LocalOutcome::HoldRefused {
                    ticket_type_id,
                    requested,
                    available,
                }),
            ) => next
                .error(RunError::new(
                    "sold_out",
                    format!(
                        "ticket type {ticket_type_id}: {requested} requested, {available} available"
                    ),
                ))
                .to(Phase::Compensated)
                .finish(RunStatus::Compensated),

            (
                Phase::ReservingCoupon,
                Input::Local(LocalOutcome::CouponReserved {
                    coupon_id,
                    discount_minor,
                }),
            ) => pay_or_confirm(next.with(|s| {
                s.coupon_id = Some(*coupon_id);
                s.discount_minor = (*discount_minor).min(s.subtotal_minor);
            })),
            (Phase::ReservingCoupon, Input::Local(LocalOutcome::CouponRefused { reason })) => {
                release(next.error(RunError::new(
                    "coupon_invalid",
                    format!("the coupon cannot be used: {reason}"),
                )))
            }

            (
                Phase::CreatingPaymentIntent,
                Input::RemoteDone {
                    key,
                    outcome:
                        RemoteOutcome::IntentCreated {
                            intent_id,
                            client_secret,
                        },
                },
            ) if key == KEY_CREATE_INTENT => {
                let next = next.with(|s| {
                    s.payment = Some(Payment {
                        intent_id: intent_id.clone(),
                        client_secret: client_secret.clone(),
                        amount_minor: s.total_minor(),
                        currency: s.currency.clone().unwrap_or_default(),
                        last_error: None,
                    })
                });
                let deadline = state.expires_at.unwrap_or(now);
                if state.cancel_requested {
                    cancel_intent(next)
                } else if deadline <= now {
                    // The provider answered after the hold ran out (e.g. after an outage).
                    cancel_intent(
                        next.error(RunError::new("expired", "the hold expired before payment")),
                    )
                } else {
                    next.to(Phase::AwaitingPayment).wait_until(deadline)
                }
            }
            (Phase::CreatingPaymentIntent, Input::RemoteFailed { key, error })
                if key == KEY_CREATE_INTENT =>
            {
                release(
                    next.error(
                        RunError::new("payment_unavailable", PAYMENT_UNAVAILABLE)
                            .with_operator_detail(error.clone()),
                    ),
                )
            }

            (Phase::AwaitingPayment, Input::Signal { name, payload })
                if name == SIGNAL_PAYMENT_SUCCEEDED =>
            {
                let matches =
                    state.payment.as_ref().map(|p| p.intent_id.as_str()) == signal_intent(payload);
                if !matches {
                    return ignore(state);
                }
                if let Some(payment) = &state.payment
                    && let Some(received) = mismatched(payment, payload)
                {
                    let error = mismatch_error(payment, &received);
                    return next
                        .error(error)
                        .with(|s| s.mismatched_payment = Some(received))
                        .to(Phase::ReleasingMismatchedPayment)
                        .run(local(LocalCommand::ReleaseReservations));
                }
                next.to(Phase::Confirming)
                    .run(local(LocalCommand::ConfirmBooking {
                        booking: state.booking_draft(),
                    }))
            }
            (Phase::AwaitingPayment, Input::Signal { name, payload })
                if name == SIGNAL_PAYMENT_FAILED =>
            {
                let matches =
                    state.payment.as_ref().map(|p| p.intent_id.as_str()) == signal_intent(payload);
                if !matches {
                    return ignore(state);
                }
                // The buyer may try another card on the same intent: keep
                // waiting until the deadline, and say why this one failed.
                let deadline = state.expires_at.unwrap_or(now);
                next.with(|s| {
                    if let Some(p) = s.payment.as_mut() {
                        p.last_error = Some(decline(payload));
                    }
                })
                .to(Phase::AwaitingPayment)
                .wait_until(deadline)
            }
            (Phase::AwaitingPayment, Input::Signal { name, .. })
                if name == SIGNAL_CANCEL_REQUESTED =>
            {
                cancel_intent(next.error(RunError::new(
                    "cancelled",
                    "The checkout was cancelled and the tickets were released.",
                )))
            }
            (Phase::AwaitingPayment, Input::Timer) => {
                if state.expires_at.is_some_and(|d| d > now) {
                    return ignore(state);
                }
                cancel_intent(
                    next.error(RunError::new("expired", "the hold expired before payment")),
                )
            }

            (
                Phase::CancellingPaymentIntent,
                Input::RemoteDone {
                    key,
                    outcome: RemoteOutcome::IntentCancelled,
                },
            ) if key == KEY_CANCEL_INTENT => release(next),
            (
                Phase::CancellingPaymentIntent,
                Input::RemoteDone {
                    key,
                    outcome: RemoteOutcome::IntentAlreadySucceeded,
                },
            ) if key == KEY_CANCEL_INTENT => {
                // The payment won the race; the seats are still held: sell them.
                next.with(|s| s.error = None)
                    .to(Phase::Confirming)
                    .run(local(LocalCommand::ConfirmBooking {
                        booking: state.booking_draft(),
                    }))
            }
            // Could not cancel: release anyway. Should the payment still succeed,
            // the late-payment path sells or refunds it.
            (Phase::CancellingPaymentIntent, Input::RemoteFailed { key, .. })
                if key == KEY_CANCEL_INTENT =>
            {
                release(next)
            }

            (Phase::Releasing, Input::Local(LocalOutcome::Released)) => {
                next.to(Phase::Compensated).finish(RunStatus::Compensated)
            }
            (Phase::ReleasingMismatchedPayment, Input::Local(LocalOutcome::Released)) => {
                next.to(Phase::Failed).finish(RunStatus::Failed)
            }

            (
                Phase::Confirming | Phase::ConfirmingLatePayment,
                Input::Local(LocalOutcome::Confirmed {
                    booking_id,
                    ticket_ids,
                }),
            ) => next
                .with(|s| {
                    s.booking_id = Some(*booking_id);
                    s.ticket_ids = ticket_ids.clone();
                    s.error = None;
                })
                .to(Phase::Completed)
                .finish(RunStatus::Completed),

            (Phase::Compensated, Input::Signal { name, payload })
                if name == SIGNAL_PAYMENT_SUCCEEDED && !state.late_payment_refunded =>
            {
                let Some(payment) = state.payment.clone() else {
                    return ignore(state);
                };
                if signal_intent(payload) != Some(payment.intent_id.as_str()) {
                    return ignore(state);
                }
                if let Some(received) = mismatched(&payment, payload) {
                    // Nothing is held any more: straight to the operator.
                    return next
                        .error(mismatch_error(&payment, &received))
                        .with(|s| s.mismatched_payment = Some(received))
                        .to(Phase::Failed)
                        .finish(RunStatus::Failed);
                }
                next.to(Phase::ConfirmingLatePayment)
                    .run(local(LocalCommand::ConfirmLatePayment {
                        booking: state.booking_draft(),
                    }))
            }
            (Phase::ConfirmingLatePayment, Input::Local(LocalOutcome::LateNoCapacity)) => {
                refund_payment(next.error(RunError::new(
                    "sold_out_refunded",
                    "paid after the hold expired and the tickets were gone; refunded",
                )))
            }
            (Phase::ConfirmingLatePayment, Input::Local(LocalOutcome::LateCouponUsedUp)) => {
                refund_late(
                    next,
                    RunError::new(
                        "coupon_used_up_refunded",
                        "Your payment arrived after the checkout expired, and the coupon \
                         has no use left; the payment is refunded.",
                    ),
                )
            }
            // The event was cancelled before the sale was written: its seats
            // are given back (in that same transaction), the payment refunded.
            (
                Phase::Confirming | Phase::ConfirmingLatePayment,
                Input::Local(LocalOutcome::EventCancelled),
            ) => {
                let next = next.error(RunError::new(
                    "event_cancelled",
                    "the event was cancelled; any payment is refunded",
                ));
                if state.payment.is_none() {
                    return next.to(Phase::Compensated).finish(RunStatus::Compensated);
                }
                refund_payment(next)
            }
            // The organizer cancelled the event while the buyer was paying.
            (Phase::AwaitingPayment, Input::Signal { name, .. })
                if name == SIGNAL_EVENT_CANCELLED =>
            {
                cancel_intent(
                    next.error(RunError::new("event_cancelled", "the event was cancelled")),
                )
            }
            // The refund is followed until the provider says it succeeded.
            (
                Phase::RefundingLatePayment,
                Input::RemoteDone { .. } | Input::RemoteFailed { .. } | Input::Timer,
            )
            | (Phase::RefundingLatePayment, Input::Signal { .. }) => {
                let Some(mut tracker) = state.late_refund.clone() else {
                    return ignore(state);
                };
                let step = tracker.on_input(input, now);
                let next = next.with(|s| s.late_refund = Some(tracker));
                match step {
                    RefundStep::NotMine => ignore(state),
                    RefundStep::Call(command) => next.run(remote(command)),
                    RefundStep::WaitUntil(at) => next.decision(RunStatus::Waiting, None, Some(at)),
                    RefundStep::Succeeded => next
                        .with(|s| s.late_payment_refunded = true)
                        .to(Phase::Compensated)
                        .finish(RunStatus::Compensated),
                    // Money we could not give back: an operator must look.
                    RefundStep::Failed { reason } => next
                        .error(
                            RunError::new("refund_failed", REFUND_FAILED)
                                .with_operator_detail(reason),
                        )
                        .to(Phase::Failed)
                        .finish(RunStatus::Failed),
                }
            }

            // An operator cancels a run that has not finished: undo what was done.
            // Nothing done yet: end at once.
            (Phase::Start, Input::Cancel) => next
                .error(cancelled())
                .to(Phase::Compensated)
                .finish(RunStatus::Cancelled),
            // Holding and reserving a coupon are local steps (never seen between
            // transactions); should one be, releasing undoes it.
            (Phase::Holding | Phase::ReservingCoupon, Input::Cancel) => {
                release(next.error(cancelled()))
            }
            // The provider may be creating the intent right now: remember the
            // cancel, re-issue the same (idempotent) call, and cancel the intent
            // it returns (a final failure releases anyway).
            (Phase::CreatingPaymentIntent, Input::Cancel) if !state.cancel_requested => {
                let command = remote(RemoteCommand::CreatePaymentIntent {
                    key: KEY_CREATE_INTENT.into(),
                    amount_minor: state.total_minor(),
                    currency: state.currency.clone().unwrap_or_default(),
                });
                next.error(cancelled())
                    .with(|s| s.cancel_requested = true)
                    .run(command)
            }
            (Phase::AwaitingPayment, Input::Cancel) => cancel_intent(next.error(cancelled())),
            // Already undoing (cancelling the intent, releasing, refunding), or the
            // sale is being written (confirming): a cancel adds nothing. Finished
            // runs stay as they are; a failed refund is money an operator handles.

            // An operator re-drives a run whose automatic refund failed for good:
            // a new refund at the provider (a new idempotency key).
            (Phase::Failed, Input::Retry) if !state.late_payment_refunded => {
                let (tracker, command) = match state.late_refund.clone() {
                    Some(mut tracker) => {
                        let command = tracker.next_attempt();
                        (tracker, command)
                    }
                    // A mismatched payment is refunded as it was received.
                    None => {
                        let Some(payment) = state.payment.clone() else {
                            return ignore(state);
                        };
                        let received = state.mismatched_payment.as_ref();
                        let amount = received
                            .and_then(|m| m.amount_minor)
                            .unwrap_or(payment.amount_minor);
                        let currency = received
                            .and_then(|m| m.currency.clone())
                            .unwrap_or(payment.currency);
                        let tracker = RefundTracker::new(
                            payment.intent_id,
                            Money::new(amount, currency),
                            KEY_REFUND_LATE,
                            DEFAULT_POLL_AFTER_SECS,
                        );
                        let command = tracker.create();
                        (tracker, command)
                    }
                };
                next.with(|s| s.late_refund = Some(tracker))
                    .to(Phase::RefundingLatePayment)
                    .run(remote(command))
            }

            _ => ignore(state),
        }
    }
}

#[cfg(test)]
mod tests;
