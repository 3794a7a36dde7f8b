//! What one participant may hold of an event, checked when a checkout starts:
//! one open checkout at a time (another start is `409 checkout_in_progress`,
//! naming the open run), and the event's `max_tickets_per_participant` over
//! confirmed bookings and open checkouts (`409 ticket_limit_reached`).
//!
//! Both are checked under [`lock`], inside the transaction that inserts the run,
//! so two simultaneous starts cannot both pass (see `models::checkout_limits`).

use boxoffice_models::checkout_limits;
use boxoffice_workflows::checkout::{Checkout, STEPS_HOLDING_NOTHING};
use boxoffice_workflows::engine::Workflow;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::start::CheckoutRequest;
use super::validate::status_path;
use crate::error::{AppError, AppResult};

/// Serialises the starts of this participant's checkouts of the event until the
/// end of the caller's transaction.
pub async fn lock(conn: &mut AsyncPgConnection, user_id: Uuid, event_id: Uuid) -> AppResult<()> {
    Ok(checkout_limits::lock(conn, user_id, event_id).await?)
}

/// Refuses the start when `req` would take the participant past the event's
/// `limit` (told first: it says how many they already have), or when they
/// already have an open checkout of the event.
pub async fn check(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    req: &CheckoutRequest,
    limit: Option<i32>,
) -> AppResult<()> {
    if let Some(limit) = limit {
        let already = checkout_limits::tickets_of(
            conn,
            Checkout::KIND,
            user_id,
            req.event_id,
            STEPS_HOLDING_NOTHING,
        )
        .await?;
        let requested: i64 = req.items.iter().map(|i| i64::from(i.quantity)).sum();
        if already + requested > i64::from(limit) {
            return Err(AppError::conflict(
                "ticket_limit_reached",
                format!(
                    "at most {limit} tickets per participant for this event; you have {already} \
                     (bought or in an open checkout)"
                ),
            )
            .with("max_tickets_per_participant", limit)
            .with("tickets_already", already));
        }
    }
    let open = checkout_limits::open_run(
        conn,
        Checkout::KIND,
        user_id,
        req.event_id,
        STEPS_HOLDING_NOTHING,
    )
    .await?;
    if let Some(run_id) = open {
        return Err(AppError::conflict(
            "checkout_in_progress",
            "you already have an open checkout for this event: pay for it or cancel it first",
        )
        .with("run_id", run_id)
        .with("status_url", status_path(run_id)));
    }
    Ok(())
}
