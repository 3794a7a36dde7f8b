//! The refund's effects: marking and voiding tickets, the booking's refunded
//! amount, units back on sale, the buyer's emails; its remote commands go to
//! the payment provider.

use boxoffice_models::notifications::{self, NewNotification, Recipient};
use boxoffice_models::refunds::{self, Refusal, Request, Scope};
use boxoffice_workflows::money::Money;
use boxoffice_workflows::payments::{PaymentCommand, PaymentOutcome};
use boxoffice_workflows::refund::{LocalCommand, LocalOutcome, Refund, RequestedBy};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Effects, LocalCx, payment_calls};
use crate::adapters::payments::{PaymentProvider, ProviderError};

impl Effects for Refund {
    async fn apply_local(
        conn: &mut AsyncPgConnection,
        _cx: &LocalCx<'_>,
        run_id: Uuid,
        command: &LocalCommand,
    ) -> anyhow::Result<LocalOutcome> {
        Ok(match command {
            LocalCommand::Reserve { booking_id } => {
                let request = Request {
                    run_id,
                    booking_id: *booking_id,
                    scope: Scope::Everything,
                    requested_by: RequestedBy::EventCancellation.as_str(),
                    allow_checked_in: true,
                    reason: Some("event cancelled"),
                };
                match refunds::reserve(conn, &request).await? {
                    Ok(reserved) => LocalOutcome::Reserved {
                        ticket_ids: reserved.ticket_ids,
                        amount: Money::new(
                            reserved.amount_minor,
                            reserved.booking.currency.clone(),
                        ),
                        intent_id: reserved
                            .booking
                            .payment_intent_id
                            .filter(|_| reserved.amount_minor > 0),
                    },
                    Err(_) => LocalOutcome::NothingToRefund,
                }
            }
            LocalCommand::Complete { refund_id } => {
                if let Some(done) = refunds::complete(conn, run_id, refund_id.as_deref()).await? {
                    metrics::counter!("refunds_completed_total").increment(1);
                    metrics::counter!("tickets_refunded_total").increment(done.tickets as u64);
                    tell_buyer(
                        conn,
                        run_id,
                        done.user_id,
                        done.event_id,
                        Told::Refunded(Money::new(done.amount_minor, done.currency)),
                    )
                    .await?;
                }
                LocalOutcome::Completed
            }
            LocalCommand::Restore => {
                if let Some(row) = refunds::find(conn, run_id).await?
                    && refunds::restore(conn, run_id).await?
                {
                    let (user_id, event_id) = booking_owner(conn, row.booking_id).await?;
                    tell_buyer(conn, run_id, user_id, event_id, Told::Failed).await?;
                }
                LocalOutcome::Restored
            }
            LocalCommand::Remark { ticket_ids } => {
                match refunds::remark(conn, run_id, ticket_ids).await? {
                    Ok(()) => LocalOutcome::Remarked,
                    Err(refusal) => LocalOutcome::RemarkRefused {
                        code: refusal_code(&refusal).into(),
                    },
                }
            }
        })
    }

    async fn call_remote(
        payments: &dyn PaymentProvider,
        run_id: Uuid,
        command: &PaymentCommand,
    ) -> Result<PaymentOutcome, ProviderError> {
        payment_calls::call(payments, run_id, command).await
    }
}

/// A refusal's stable code (the API answers with the same codes).
pub fn refusal_code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::NoSuchBooking => "not_found",
        Refusal::UnknownTicket(_) => "unknown_ticket",
        Refusal::NotRefundable { .. } => "ticket_not_refundable",
        Refusal::Used(_) => "ticket_used",
        Refusal::AmountTooLarge { .. } => "amount_exceeds_refundable",
        Refusal::NothingToRefund => "nothing_to_refund",
    }
}

async fn booking_owner(
    conn: &mut AsyncPgConnection,
    booking_id: Uuid,
) -> diesel::QueryResult<(Uuid, Uuid)> {
    use boxoffice_models::schema::bookings;
    bookings::table
        .find(booking_id)
        .select((bookings::user_id, bookings::event_id))
        .first(conn)
        .await
}

enum Told {
    Refunded(Money),
    Failed,
}

/// One email per refund and outcome (the dedupe key makes a retried step a no-op).
async fn tell_buyer(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    user_id: Uuid,
    event_id: Uuid,
    told: Told,
) -> diesel::QueryResult<()> {
    let title = super::notices::event_title(conn, event_id).await?;
    let (key, kind, subject, body) = match told {
        Told::Refunded(amount) => (
            format!("refund:{run_id}:refunded"),
            "refund_completed",
            format!("Your refund for {title}"),
            format!(
                "We have refunded {amount} for {title}.\n\nIt reaches your card within a few days, depending on your bank.\nRefunded tickets no longer admit anyone.\n"
            ),
        ),
        Told::Failed => (
            format!("refund:{run_id}:failed"),
            "refund_failed",
            format!("Your refund for {title} could not be made"),
            format!(
                "The payment provider could not refund your payment for {title}.\n\nYour tickets are valid again, and our staff will look into it.\n"
            ),
        ),
    };
    notifications::enqueue_within(
        conn,
        NewNotification {
            dedupe_key: &key,
            kind,
            recipient: Recipient::Account,
            subject: &subject,
            body_text: &body,
            user_id: Some(user_id),
            context: &serde_json::json!({ "event_id": event_id, "refund_run_id": run_id }),
        },
    )
    .await?;
    Ok(())
}
