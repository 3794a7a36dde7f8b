//! A new connection's first use of a checkout's statements, paid as its pool
//! warms instead of in front of a sale's first buyers.
//!
//! A Postgres backend compiles a PL/pgSQL function on its first call, and
//! reads a table's triggers and indexes from the catalog on its first
//! statement against it. Measured on a fresh session of this project's
//! PostgreSQL 15 (2 cores): `lock_and_find_open_checkout` took 2.6 ms on its
//! first call and 0.1 ms after; the first insert into the outbox (its
//! `outbox_due_now` trigger) 2.9 ms, then 0.15 ms. Every start of a checkout
//! makes both. A pool opens its connections as its process starts
//! (`pool::warm`), so a sale's first checkouts come to fresh connections.

use diesel::result::{Error, QueryResult};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::{checkout_limits, outbox, workflow_signals};

/// Runs each of those statements once on `conn`, leaving nothing behind.
pub async fn prime(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    // A read, under the advisory lock of a participant and event that do not
    // exist, released as the statement ends. A new participant each time:
    // the processes of a deployment warm their pools at once, and primes
    // sharing one lock would queue behind each other (and behind a prime
    // slowed by a busy machine) while a sale is already running.
    checkout_limits::lock_and_find_open(conn, Uuid::new_v4(), Uuid::nil(), &[]).await?;
    // Rolled back: nothing is queued, and the trigger's NOTIFY is not sent.
    let pushed = conn
        .transaction::<(), Error, _>(async |conn| {
            outbox::push(conn, workflow_signals::ADVANCE_QUEUE, &(), None).await?;
            Err(Error::RollbackTransaction)
        })
        .await;
    match pushed {
        Err(Error::RollbackTransaction) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}
