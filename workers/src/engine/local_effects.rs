//! Local commands: changes to our own tables, inside the run's transaction.

use boxoffice_models::holds::{self, HoldOutcome, Line};
use boxoffice_models::notifications::{self, NewNotification};
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::{bookings, coupon_reservations, coupons, tickets};
use boxoffice_workflows::engine::{BookingDraft, Item, LocalCommand, LocalOutcome, PricedItem};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::ahead::Ahead;

pub fn lines(items: &[Item]) -> Vec<Line> {
    items
        .iter()
        .map(|i| Line {
            ticket_type_id: i.ticket_type_id,
            quantity: i.quantity,
        })
        .collect()
}

pub async fn apply(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run_id: Uuid,
    command: &LocalCommand,
    now: DateTime<Utc>,
    ahead: Option<&Ahead>,
) -> QueryResult<LocalOutcome> {
    match command {
        LocalCommand::HoldCapacity { items, expires_at } => Ok(
            match hold(conn, run_id, &lines(items), *expires_at, ahead).await? {
                HoldOutcome::Held(priced) => {
                    metrics::counter!("holds_placed_total").increment(1);
                    LocalOutcome::Held {
                        expires_at: *expires_at,
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
            },
        ),
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
            let released = holds::release_for_run(conn, run_id).await?;
            coupon_reservations::release(conn, run_id).await?;
            metrics::counter!("holds_released_tickets_total").increment(released.max(0) as u64);
            Ok(LocalOutcome::Released)
        }
        LocalCommand::ConfirmBooking { booking } => {
            holds::convert_for_run(conn, run_id).await?;
            coupon_reservations::redeem(conn, run_id).await?;
            confirm(conn, signer, run_id, booking).await
        }
        LocalCommand::ConfirmLatePayment { booking } => {
            super::late_payment::confirm_late_payment(conn, signer, run_id, booking).await
        }
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
pub(super) async fn confirm(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run_id: Uuid,
    draft: &BookingDraft,
) -> QueryResult<LocalOutcome> {
    let (booking, _) = bookings::create_for_run(
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
    let items: Vec<(Uuid, i32)> = draft
        .items
        .iter()
        .map(|i| (i.ticket_type_id, i.quantity))
        .collect();
    let issued =
        tickets::insert_for_booking(conn, booking.id, draft.event_id, &items, signer).await?;
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
    use boxoffice_models::schema::{events, users};
    let email: String = users::table
        .find(booking.user_id)
        .select(users::email)
        .first(conn)
        .await?;
    let title: String = events::table
        .find(booking.event_id)
        .select(events::title)
        .first(conn)
        .await?;
    let mut body = format!(
        "Thank you for your order.\n\nEvent: {title}\nBooking: {}\nTotal: {} {}\n\nYour tickets:\n",
        booking.id,
        format_minor(booking.total_minor),
        booking.currency
    );
    for t in issued {
        body.push_str(&format!("  {}\n", t.number));
    }
    body.push_str("\nShow the QR code of each ticket at the entrance.\n");
    notifications::enqueue(
        conn,
        NewNotification {
            dedupe_key: &format!("booking:{}:confirmation", booking.id),
            kind: "booking_confirmation",
            recipient: &email,
            subject: &format!("Your tickets for {title}"),
            body_text: &body,
        },
    )
    .await?;
    Ok(())
}

/// 4500 → "45.00": every currency Boxoffice sells in has two decimals.
fn format_minor(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, (minor % 100).abs())
}
