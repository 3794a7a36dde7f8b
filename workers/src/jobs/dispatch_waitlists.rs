//! The waitlist dispatcher, run on every tick of the run sweep: offers free
//! units of each ticket type to its waiting entries, by the serving policy
//! (`boxoffice_workflows::waitlist::policy`).
//!
//! Per ticket type, one transaction holds the type's row lock (`FOR NO KEY
//! UPDATE`: two worker processes serve one type one after the other, the
//! second finding what the first left) and, for each entry to offer, inserts
//! its `waitlist_offer` run (with its start message), holds its units for
//! that run (`held += q`, `waiting_units -= q`) and marks the entry
//! `offered`. A crash anywhere commits all of it or none.
//!
//! The dispatcher waits its turn for the lock, at most [`LOCK_WAIT`]: every
//! hold of the type takes the same lock, one statement after another while
//! the public keeps trying, so a dispatcher that skipped a locked type could
//! miss it at every tick and the freed units would never be offered. Waiting,
//! it is next after the statement that holds the lock; a longer holder makes
//! it give up until the next tick.

use boxoffice_models::schema::events;
use boxoffice_models::waitlist::{self, Entry};
use boxoffice_models::workflow_runs::{self, Inserted, NewRun};
use boxoffice_models::{DbPool, holds};
use boxoffice_workflows::engine::{RunStatus, Workflow};
use boxoffice_workflows::waitlist::policy::{self, Waiting};
use boxoffice_workflows::waitlist_offer::{OfferState, WaitlistOffer};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The default head-wait window (`BOXOFFICE_WAITLIST_HEAD_WAIT_SECS`).
pub const HEAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);
const BATCH: i64 = 200;
/// The longest the dispatcher waits for a ticket type's row lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves every ticket type with waiting entries and free units; returns how
/// many offers were made.
pub async fn dispatch(db: &DbPool, head_wait: std::time::Duration) -> anyhow::Result<u64> {
    let head_wait = Duration::from_std(head_wait)?;
    let types = {
        let mut conn = db.get().await?;
        waitlist::types_to_serve(&mut conn, BATCH).await?
    };
    let mut offered = 0;
    for ticket_type_id in types {
        let mut conn = db.get().await?;
        match serve(&mut conn, ticket_type_id, Utc::now(), head_wait).await {
            Ok(n) => offered += n,
            Err(error) => {
                tracing::warn!(%ticket_type_id, %error, "waitlist dispatch failed for a ticket type")
            }
        }
    }
    if offered > 0 {
        metrics::counter!("waitlist_offers_total").increment(offered);
    }
    Ok(offered)
}

/// Serves one ticket type in one transaction.
pub async fn serve(
    conn: &mut AsyncPgConnection,
    ticket_type_id: Uuid,
    now: DateTime<Utc>,
    head_wait: Duration,
) -> anyhow::Result<u64> {
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        diesel::sql_query(format!(
            "SET LOCAL lock_timeout = '{}ms'",
            LOCK_WAIT.as_millis()
        ))
        .execute(conn)
        .await?;
        let Some(counters) = waitlist::lock_counters(conn, ticket_type_id).await? else {
            return Ok(0);
        };
        if counters.waiting_units == 0 || counters.free() <= 0 {
            return Ok(0);
        }
        let (status, ends_at, offer_minutes): (String, DateTime<Utc>, i32) = events::table
            .find(counters.event_id)
            .select((
                events::status,
                events::ends_at,
                events::waitlist_offer_minutes,
            ))
            .first(conn)
            .await?;
        // Nothing is offered for an event that is off or over.
        if status != "published" || ends_at <= now {
            return Ok(0);
        }
        let entries = waitlist::waiting_in_order(conn, ticket_type_id).await?;
        let queue: Vec<Waiting> = entries
            .iter()
            .map(|e| Waiting {
                id: e.id,
                quantity: e.quantity,
                blocked_since: e.blocked_since,
            })
            .collect();
        let plan = policy::plan(counters.free(), &queue, now, head_wait);
        for (entry_id, since) in &plan.blocked_since {
            waitlist::set_blocked_since(conn, *entry_id, *since).await?;
        }
        let expires_at = now + Duration::minutes(i64::from(offer_minutes));
        let mut offered = 0;
        for entry in entries.iter().filter(|e| plan.offers.contains(&e.id)) {
            offer(conn, entry, now, expires_at).await?;
            offered += 1;
        }
        Ok(offered)
    })
    .await
}

/// The entry's offer run, its hold and the entry's new status.
async fn offer(
    conn: &mut AsyncPgConnection,
    entry: &Entry,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let state = OfferState::new(
        entry.id,
        entry.event_id,
        entry.ticket_type_id,
        entry.participant_id,
        entry.quantity,
        expires_at,
    );
    let new = NewRun {
        id: Uuid::now_v7(),
        kind: WaitlistOffer::KIND.into(),
        status: RunStatus::Running.as_str().into(),
        step: WaitlistOffer::initial_step().into(),
        state: serde_json::to_value(&state)?,
        correlation_id: Some(format!("waitlist:{}", entry.id)),
        owner_id: Some(entry.participant_id),
        idempotency_key: None,
        request_hash: None,
        view: serde_json::to_value(WaitlistOffer::view(&state))?,
        parent_id: None,
        child_key: None,
    };
    let Inserted::Created(run) = workflow_runs::start_within(conn, &new).await? else {
        anyhow::bail!("the offer run of entry {} was not created", entry.id);
    };
    if !holds::hold_for_offer(
        conn,
        run.id,
        entry.ticket_type_id,
        entry.quantity,
        expires_at,
    )
    .await?
    {
        anyhow::bail!("the units planned for entry {} are not free", entry.id);
    }
    waitlist::mark_offered(conn, entry.id, run.id, now, expires_at).await?;
    metrics::counter!("workflows_started_total", "kind" => WaitlistOffer::KIND).increment(1);
    Ok(())
}
