//! A new connection's first use of a checkout's statements, paid as its pool
//! warms instead of in front of a sale's first buyers.
//!
//! A Postgres backend compiles a PL/pgSQL function on its first call, and
//! reads a table's triggers and indexes from the catalog on its first
//! statement against it. Measured on a fresh session of this project's
//! PostgreSQL 15 (2 cores): `lock_and_find_open_checkout` took 2.6 ms on its
//! first call and 0.1 ms after; the first insert into the outbox (its
//! `outbox_due_now` trigger) 2.9 ms, then 0.15 ms. Every start of a checkout
//! makes both, and its run's insert and first transition fire the funnel's
//! triggers at commit. A pool opens its connections as its process starts
//! (`pool::warm`), so a sale's first checkouts come to fresh connections.

use chrono::Utc;
use diesel::prelude::*;
use diesel::result::{Error, QueryResult};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

use crate::schema::workflow_runs;
use crate::workflow_runs::{NewRun, Transition};
use crate::{checkout_limits, hold_batch, outbox, seats_left, workflow_signals};

/// What a pool's connections are for: which statements a warmed one runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primer {
    /// Requests and steps: a checkout's start and its run's transitions.
    Requests,
    /// An API process's hold lanes: the batch statement of holds.
    HoldLanes,
    /// An API process's writer of checkout starts: a start's statements, and
    /// those of its batches (the participants' locks, what is left of the
    /// ticket types, the holds, the winners' moves), which a flood's first
    /// batch would otherwise plan in front of its buyers.
    Starts,
}

/// Runs the statements of `primer` once on `conn`, leaving nothing behind.
pub async fn prime(conn: &mut AsyncPgConnection, primer: Primer) -> QueryResult<()> {
    match primer {
        Primer::Requests => requests(conn).await,
        Primer::HoldLanes => hold_lanes(conn).await,
        Primer::Starts => starts(conn).await,
    }
}

/// A checkout's start: the open-checkout lookup, the run's insert and its
/// start message, and the funnel's triggers that its insert and its first
/// transition fire.
async fn requests(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    // A read, under the advisory lock of a participant and event that do not
    // exist, released as the statement ends. A new participant each time:
    // the processes of a deployment warm their pools at once, and primes
    // sharing one lock would queue behind each other (and behind a prime
    // slowed by a busy machine) while a sale is already running.
    checkout_limits::lock_and_find_open(conn, Uuid::new_v4(), Uuid::nil(), &[]).await?;
    // Rolled back: nothing is queued or counted, and no NOTIFY is sent.
    let written = conn
        .transaction::<(), Error, _>(async |conn| {
            outbox::push(conn, workflow_signals::ADVANCE_QUEUE, &(), None).await?;
            fire_funnel_triggers(conn).await?;
            Err(Error::RollbackTransaction)
        })
        .await;
    match written {
        Err(Error::RollbackTransaction) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Inserts a checkout run and moves it to an outcome, then has the deferred
/// triggers run now instead of at a commit that never comes. Its event is new
/// each time, so the funnel's counter rows it writes (and locks until the
/// rollback) are its own: no prime waits for another, nor for a sale.
async fn fire_funnel_triggers(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    let run = NewRun {
        id: Uuid::now_v7(),
        kind: "checkout".into(),
        status: "running".into(),
        step: "holding".into(),
        state: serde_json::json!({ "event_id": Uuid::new_v4() }),
        correlation_id: None,
        owner_id: None,
        idempotency_key: None,
        request_hash: None,
        view: serde_json::json!({}),
        parent_id: None,
        child_key: None,
    };
    crate::workflow_runs::insert_idempotent(conn, &run).await?;
    diesel::update(workflow_runs::table.find(run.id))
        .set(workflow_runs::status.eq("compensated"))
        .execute(conn)
        .await?;
    conn.batch_execute("SET CONSTRAINTS ALL IMMEDIATE").await
}

/// A start's statements, then a batch's: on a participant, an event, a
/// ticket type and a run that do not exist, so nothing is locked past the
/// statement, taken or moved.
async fn starts(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    requests(conn).await?;
    let starter = checkout_limits::Starter {
        user_id: Uuid::new_v4(),
        event_id: Uuid::nil(),
    };
    checkout_limits::lock_and_find_open_many(conn, &[starter], &[]).await?;
    seats_left::left_for_public(conn, &[Uuid::new_v4()]).await?;
    hold_lanes(conn).await?;
    let nowhere = Transition {
        status: "running".into(),
        step: "holding".into(),
        state: serde_json::json!({}),
        wake_at: None,
        pending_effect: None,
        attempts: 0,
        last_error: None,
        finished_at: None,
        view: serde_json::json!({}),
    };
    crate::workflow_runs::apply_many(conn, &[(Uuid::new_v4(), &nowhere)]).await?;
    Ok(())
}

/// The batch statement of holds, on a ticket type that does not exist: it
/// finds no row to lock and takes nothing.
async fn hold_lanes(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    let request = hold_batch::Request {
        run_id: Uuid::new_v4(),
        quantity: 1,
        expires_at: Utc::now(),
    };
    hold_batch::hold_many(conn, Uuid::new_v4(), &[request]).await?;
    Ok(())
}
