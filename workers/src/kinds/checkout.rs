//! The checkout's effects: its local commands change our tables inside the
//! run's transaction (holds, coupon use, booking, tickets, confirmation email);
//! its remote commands go to the payment provider.

use boxoffice_models::holds::{self, HoldOutcome, Line};
use boxoffice_models::notifications::{self, NewNotification, Recipient};
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::{bookings, coupon_reservations, coupons, tickets, waitlist};
use boxoffice_workflows::checkout::{
    BookingDraft, Checkout, Item, LocalCommand, LocalOutcome, PricedItem,
};
use boxoffice_workflows::payments::{PaymentCommand, PaymentOutcome};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

mod late_payment;
mod to_issue;

use super::{Effects, LocalCx, payment_calls};
use crate::adapters::payments::{PaymentProvider, ProviderError};
use crate::engine::ahead::Ahead;

impl Effects for Checkout {
    async fn apply_local(
        conn: &mut AsyncPgConnection,
        cx: &LocalCx<'_>,
        run_id: Uuid,
        command: &LocalCommand,
    ) -> anyhow::Result<LocalOutcome> {
        Ok(apply(conn, cx.signer, run_id, command, cx.now, cx.ahead).await?)
    }

    async fn call_remote(
        payments: &dyn PaymentProvider,
        run_id: Uuid,
        command: &PaymentCommand,
    ) -> Result<PaymentOutcome, ProviderError> {
        payment_calls::call(payments, run_id, command).await
    }

    fn hold_ahead(command: &LocalCommand) -> Option<(Vec<Line>, DateTime<Utc>)> {
        match command {
            LocalCommand::HoldCapacity { items, expires_at } => Some((lines(items), *expires_at)),
            _ => None,
        }
    }

    async fn abandon(conn: &mut AsyncPgConnection, run_id: Uuid) -> anyhow::Result<()> {
        release(conn, run_id).await?;
        Ok(())
    }
}

/// Gives back the run's holds and its coupon use. The units of an accepted
/// waitlist offer go back too (to the next entry, while anyone waits), and
/// its entry ends `expired`.
async fn release(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<()> {
    let released = holds::release_for_run(conn, run_id).await?;
    coupon_reservations::release(conn, run_id).await?;
    waitlist::checkout_released(conn, run_id).await?;
    metrics::counter!("holds_released_tickets_total").increment(released.max(0) as u64);
    Ok(())
}

pub fn lines(items: &[Item]) -> Vec<Line> {
    items
        .iter()
        .map(|i| Line {
            ticket_type_id: i.ticket_type_id,
            quantity: i.quantity,
        })
        .collect()
}

async fn apply(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run_id: Uuid,
    command: &LocalCommand,
    now: DateTime<Utc>,
    ahead: Option<&Ahead>,
) -> QueryResult<LocalOutcome> {
    match command {
        LocalCommand::HoldCapacity { items, expires_at } => Ok(held(
            hold(conn, run_id, &lines(items), *expires_at, ahead).await?,
            *expires_at,
        )),
        LocalCommand::AdoptOfferHold { items, expires_at } => Ok(held(
            holds::adopt_offer_hold(conn, run_id, &lines(items)).await?,
            *expires_at,
        )),
        LocalCommand::ReserveCoupon {
            event_id,
            code,
            lines,
        } => {
            let priced: Vec<coupons::PricedLine> = lines
                .iter()
                .map(|l| coupons::PricedLine {
                    ticket_type_id: l.ticket_type_id,
                    unit_price_minor: l.unit_price_minor,
                    quantity: i64::from(l.quantity),
                })
                .collect();
            Ok(
                match coupon_reservations::reserve(conn, run_id, *event_id, code, &priced, now)
                    .await?
                {
                    coupon_reservations::Reservation::Reserved {
                        coupon_id,
                        discount_minor,
                    } => LocalOutcome::CouponReserved {
                        coupon_id,
                        discount_minor,
                    },
                    coupon_reservations::Reservation::Refused { reason } => {
                        LocalOutcome::CouponRefused { reason }
                    }
                },
            )
        }
        LocalCommand::ReleaseReservations => {
            release(conn, run_id).await?;
            Ok(LocalOutcome::Released)
        }
        LocalCommand::ConfirmBooking { booking } => {
            if cancelled_before_sale(conn, run_id, booking.event_id).await? {
                release(conn, run_id).await?;
                return Ok(LocalOutcome::EventCancelled);
            }
            holds::convert_for_run(conn, run_id).await?;
            // A run reserves a coupon use only in the step that records the
            // coupon in its state, so a booking without one has none to make
            // final: no statement for the checkouts that use no coupon.
            if booking.coupon_id.is_some() {
                coupon_reservations::redeem(conn, run_id).await?;
            }
            confirm(conn, signer, run_id, booking).await
        }
        LocalCommand::ConfirmLatePayment { booking } => {
            if cancelled_before_sale(conn, run_id, booking.event_id).await? {
                return Ok(LocalOutcome::EventCancelled);
            }
            late_payment::confirm_late_payment(conn, signer, run_id, booking).await
        }
    }
}

/// The event was cancelled and this run has not written its sale yet. The
/// event row is read with a share lock: a cancellation (which updates it)
/// and a sale are ordered, so a sale either comes before the cancellation
/// (which then refunds it) or sees it. One statement: a run with its booking
/// written reads no row, and locks none.
async fn cancelled_before_sale(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    event_id: Uuid,
) -> QueryResult<bool> {
    use boxoffice_models::schema::{bookings as bookings_table, events};
    let sold = diesel::dsl::exists(bookings_table::table.filter(bookings_table::run_id.eq(run_id)));
    let status: Option<String> = events::table
        .find(event_id)
        .filter(diesel::dsl::not(sold))
        .select(events::status)
        .for_share()
        .first(conn)
        .await
        .optional()?;
    Ok(status.as_deref() == Some("cancelled"))
}

/// A hold's outcome, as the checkout hears it.
fn held(outcome: HoldOutcome, expires_at: DateTime<Utc>) -> LocalOutcome {
    match outcome {
        HoldOutcome::Held(priced) => {
            metrics::counter!("holds_placed_total").increment(1);
            LocalOutcome::Held {
                expires_at,
                currency: priced
                    .as_slice()
                    .first()
                    .map(|p| p.currency.clone())
                    .unwrap_or_default(),
                lines: priced
                    .iter()
                    .map(|p| PricedItem {
                        ticket_type_id: p.ticket_type_id,
                        quantity: p.quantity,
                        unit_price_minor: p.unit_price_minor,
                    })
                    .collect(),
            }
        }
        HoldOutcome::Refused {
            ticket_type_id,
            requested,
            available,
        } => LocalOutcome::HoldRefused {
            ticket_type_id,
            requested,
            available,
        },
    }
}

/// The hold taken ahead of this transaction when there is one (see `ahead`),
/// or taken now.
async fn hold(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    lines: &[Line],
    expires_at: DateTime<Utc>,
    ahead: Option<&Ahead>,
) -> QueryResult<HoldOutcome> {
    match ahead.and_then(|a| a.outcome_for(lines)) {
        Some(outcome) => Ok(outcome.clone()),
        None => holds::hold(conn, run_id, lines, expires_at).await,
    }
}

/// Writes the booking and its tickets and queues the confirmation email. Safe to
/// repeat for a run: the booking, tickets and email are each created once.
async fn confirm(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run_id: Uuid,
    draft: &BookingDraft,
) -> QueryResult<LocalOutcome> {
    let (booking, created) = bookings::create_for_run(
        conn,
        &bookings::NewBooking {
            id: Uuid::now_v7(),
            run_id,
            user_id: draft.user_id,
            event_id: draft.event_id,
            currency: draft.currency.clone(),
            subtotal_minor: draft.subtotal_minor,
            discount_minor: draft.discount_minor,
            total_minor: draft.subtotal_minor - draft.discount_minor,
            coupon_id: draft.coupon_id,
            payment_intent_id: draft.payment_intent_id.clone(),
        },
    )
    .await?;
    let to_issue = to_issue::tickets_to_issue(draft)?;
    let issued = if created {
        tickets::issue_for_new_booking(conn, booking.id, draft.event_id, &to_issue, signer).await?
    } else {
        tickets::insert_for_booking(conn, booking.id, draft.event_id, &to_issue, signer).await?
    };
    queue_confirmation(conn, &booking, &issued).await?;
    metrics::counter!("bookings_confirmed_total").increment(1);
    metrics::counter!("tickets_sold_total").increment(issued.len() as u64);
    Ok(LocalOutcome::Confirmed {
        booking_id: booking.id,
        ticket_ids: issued.iter().map(|t| t.id).collect(),
    })
}

async fn queue_confirmation(
    conn: &mut AsyncPgConnection,
    booking: &bookings::Booking,
    issued: &[tickets::Ticket],
) -> QueryResult<()> {
    // The title, and when and where in the venue's time zone, in one read:
    // the text is also what the participant's notifications list shows. The
    // booking's event exists (its key says so).
    let event = crate::mail::facts::event(conn, booking.event_id)
        .await?
        .ok_or(diesel::result::Error::NotFound)?;
    let title = &event.title;
    let when = crate::mail::when::local_times(&event).one_line();
    let place = match &event.venue {
        Some(venue) => format!("{}, {}", venue.name, venue.full_address()),
        None => "Online".to_owned(),
    };
    let place = format!("When: {when}\nWhere: {place}\n");
    let mut body = format!(
        "Thank you for your order.\n\nEvent: {title}\n{place}Booking: {}\nTotal: {} {}\n\nYour tickets:\n",
        booking.id,
        format_minor(booking.total_minor),
        booking.currency
    );
    for t in issued {
        body.push_str(&format!("  {}\n", t.number));
    }
    body.push_str("\nShow the QR code of each ticket at the entrance.\n");
    notifications::enqueue_within(
        conn,
        NewNotification {
            dedupe_key: &format!("booking:{}:confirmation", booking.id),
            kind: "booking_confirmation",
            recipient: Recipient::Account,
            subject: &format!("Your tickets for {title}"),
            body_text: &body,
            user_id: Some(booking.user_id),
            context: &serde_json::json!({
                "event_id": booking.event_id,
                "booking_id": booking.id,
            }),
        },
    )
    .await?;
    Ok(())
}

/// 4500 → "45.00": every currency Boxoffice sells in has two decimals.
fn format_minor(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, (minor % 100).abs())
}
