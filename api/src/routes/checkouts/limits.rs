//! What one participant may hold of an event, checked when a checkout starts:
//! one open checkout at a time (another start is `409 checkout_in_progress`,
//! naming the open run), and the event's `max_tickets_per_participant` over
//! confirmed bookings and open checkouts (`409 ticket_limit_reached`).
//!
//! Both are checked under the participant's lock on the event's checkouts,
//! inside the transaction that inserts the run, so two simultaneous starts
//! cannot both pass (see `models::checkout_limits`).

use std::collections::HashSet;

use boxoffice_models::checkout_limits::{self, Starter};
use boxoffice_workflows::checkout::{Checkout, STEPS_HOLDING_NOTHING};
use boxoffice_workflows::engine::Workflow;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::gathered::Start;
use super::start::CheckoutRequest;
use crate::error::{AppError, AppResult};
use crate::runs::status_path;

/// Takes the participant's lock on the event's checkouts until the end of the
/// caller's transaction, then refuses the start when `req` would take them past
/// the event's `limit` (told first: it says how many they already have), or
/// when they already have an open checkout of the event (unless it is this
/// very start's, with the same `idempotency_key`: a retry that raced the first
/// attempt, which the insert then answers with that run).
pub async fn lock_and_check(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    req: &CheckoutRequest,
    limit: Option<i32>,
    idempotency_key: &Option<String>,
) -> AppResult<()> {
    let open =
        checkout_limits::lock_and_find_open(conn, user_id, req.event_id, STEPS_HOLDING_NOTHING)
            .await?;
    let ours = open
        .as_ref()
        .is_some_and(|open| idempotency_key.is_some() && open.idempotency_key == *idempotency_key);
    if ours {
        return Ok(());
    }
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
    match open {
        Some(open) => Err(AppError::conflict(
            "checkout_in_progress",
            "you already have an open checkout for this event: pay for it or cancel it first",
        )
        .with("run_id", open.run_id)
        .with("status_url", status_path(open.run_id))),
        None => Ok(()),
    }
}

/// For a batch of starts ([`gathered`](super::gathered)): the starts (their
/// places in `starts`) that the participants' limits let through, under each
/// participant's lock: no open checkout of the event (a retry of the same
/// key is one too, and finds its run alone), and within the event's tickets
/// per participant.
pub async fn within_limits(
    conn: &mut AsyncPgConnection,
    starts: &[&Start],
) -> anyhow::Result<Vec<usize>> {
    let starters: Vec<Starter> = starts
        .iter()
        .map(|s| Starter {
            user_id: s.new.user_id,
            event_id: s.new.event_id,
        })
        .collect();
    // The locks are taken in one order by every batch, so that two batches
    // never wait on each other's.
    let mut lock_order: Vec<usize> = (0..starts.len()).collect();
    lock_order.sort_by_key(|&i| (starters[i].user_id, starters[i].event_id));
    let sorted: Vec<Starter> = lock_order.iter().map(|&i| starters[i]).collect();
    let found =
        checkout_limits::lock_and_find_open_many(conn, &sorted, STEPS_HOLDING_NOTHING).await?;
    let mut open = vec![false; starts.len()];
    for (&i, run) in lock_order.iter().zip(found) {
        open[i] = run.is_some();
    }
    let mut within: Vec<usize> = (0..starts.len()).filter(|&i| !open[i]).collect();
    let limited: Vec<usize> = within
        .iter()
        .copied()
        .filter(|&i| starts[i].limit.is_some())
        .collect();
    if limited.is_empty() {
        return Ok(within);
    }
    let limited_starters: Vec<Starter> = limited.iter().map(|&i| starters[i]).collect();
    let already = checkout_limits::tickets_of_many(
        conn,
        Checkout::KIND,
        &limited_starters,
        STEPS_HOLDING_NOTHING,
    )
    .await?;
    let over: HashSet<usize> = limited
        .iter()
        .zip(already)
        .filter(|&(&i, already)| {
            let limit = starts[i].limit.map_or(i64::MAX, i64::from);
            already + starts[i].new.requested() > limit
        })
        .map(|(&i, _)| i)
        .collect();
    within.retain(|i| !over.contains(i));
    Ok(within)
}
