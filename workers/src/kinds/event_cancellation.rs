//! The event cancellation's effects: stopping the event's checkouts still in
//! flight, and taking its bookings in batches, each buyer told once.

use boxoffice_models::notifications::{self, NewNotification, Recipient};
use boxoffice_models::refunds;
use boxoffice_models::workflow_signals::{self, NewSignal};
use boxoffice_workflows::checkout::{Checkout, SIGNAL_EVENT_CANCELLED};
use boxoffice_workflows::engine::{NoRemote, Workflow};
use boxoffice_workflows::event_cancellation::{
    BookingToRefund, EventCancellation, LocalCommand, LocalOutcome,
};
use diesel::prelude::*;
use diesel::sql_types;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Effects, LocalCx};
use crate::adapters::payments::{PaymentProvider, ProviderError};

#[derive(QueryableByName)]
struct RunId {
    #[diesel(sql_type = sql_types::Uuid)]
    id: Uuid,
}

impl Effects for EventCancellation {
    async fn apply_local(
        conn: &mut AsyncPgConnection,
        _cx: &LocalCx<'_>,
        run_id: Uuid,
        command: &LocalCommand,
    ) -> anyhow::Result<LocalOutcome> {
        Ok(match command {
            LocalCommand::StopCheckouts { event_id } => {
                // Checkouts of the event not finished yet: each is told, and
                // one still paying cancels its intent and lets its seats go.
                // (A sale racing this is refused when it is written: see the
                // checkout's confirmation.)
                let open: Vec<RunId> = diesel::sql_query(
                    "SELECT id FROM workflow_runs WHERE kind = $1 \
                     AND status IN ('running', 'waiting', 'compensating') \
                     AND state->>'event_id' = $2::text",
                )
                .bind::<sql_types::Text, _>(Checkout::KIND)
                .bind::<sql_types::Uuid, _>(event_id)
                .load(conn)
                .await?;
                for checkout in &open {
                    workflow_signals::record(
                        conn,
                        NewSignal {
                            run_id: checkout.id,
                            name: SIGNAL_EVENT_CANCELLED.into(),
                            dedupe_key: format!("event_cancelled:{}:{run_id}", checkout.id),
                            payload: serde_json::json!({ "event_id": event_id }),
                        },
                    )
                    .await?;
                }
                let total = refunds::count_to_cancel(conn, *event_id).await?;
                LocalOutcome::CheckoutsStopped {
                    count: open.len() as u32,
                    bookings_total: total as u32,
                }
            }
            LocalCommand::NextBatch {
                event_id,
                after,
                limit,
            } => {
                let batch =
                    refunds::bookings_to_cancel(conn, *event_id, *after, i64::from(*limit)).await?;
                for (_, buyer_id) in &batch {
                    tell_buyer(conn, *event_id, *buyer_id).await?;
                }
                LocalOutcome::Batch {
                    exhausted: batch.len() < *limit as usize,
                    bookings: batch
                        .into_iter()
                        .map(|(booking_id, buyer_id)| BookingToRefund {
                            booking_id,
                            buyer_id,
                        })
                        .collect(),
                }
            }
        })
    }

    /// A cancellation makes no remote call of its own (its refunds do).
    async fn call_remote(
        _payments: &dyn PaymentProvider,
        _run_id: Uuid,
        command: &NoRemote,
    ) -> Result<(), ProviderError> {
        match *command {}
    }
}

/// One cancellation email per buyer and event, however many bookings.
async fn tell_buyer(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    buyer_id: Uuid,
) -> diesel::QueryResult<()> {
    let title = super::notices::event_title(conn, event_id).await?;
    notifications::enqueue_within(
        conn,
        NewNotification {
            dedupe_key: &format!("event:{event_id}:cancelled:{buyer_id}"),
            kind: "event_cancelled",
            recipient: Recipient::Account,
            subject: &format!("{title} is cancelled"),
            body_text: &format!(
                "We are sorry: {title} has been cancelled by its organizer.\n\nEvery ticket you bought is refunded in full; you will get an email for each refund.\n"
            ),
            user_id: Some(buyer_id),
            context: &serde_json::json!({ "event_id": event_id }),
        },
    )
    .await?;
    Ok(())
}
