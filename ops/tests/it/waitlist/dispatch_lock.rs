//! The dispatcher waits its turn for a ticket type's row lock, which every
//! hold of the type takes: a type locked by one statement after another (a
//! public that keeps trying a sold-out type) is still served, right after the
//! statement holding the lock, and a holder that keeps it longer than
//! `LOCK_WAIT` makes the dispatcher give up until its next tick, having
//! offered nothing.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use boxoffice_workers::jobs::dispatch_waitlists::{self, HEAD_WAIT, LOCK_WAIT};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use uuid::Uuid;

use super::support::{SoldOut, entries, joined};
use crate::checkout_support::event_on_sale;
use crate::harness::TestApp;

/// Holds the type's row lock as a hold statement does, for `how_long`.
async fn lock_the_type_for(db_url: &str, ticket_type: Uuid, how_long: Duration) {
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    conn.batch_execute(&format!(
        "BEGIN;
         SELECT 1 FROM ticket_type_rows WHERE id = '{ticket_type}' FOR NO KEY UPDATE;"
    ))
    .await
    .unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(how_long).await;
        conn.batch_execute("COMMIT").await.unwrap();
    });
}

#[tokio::test]
async fn the_dispatcher_waits_for_a_locked_type_and_gives_up_only_past_its_lock_wait() {
    // No workers: the dispatcher runs only when this test calls it.
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let waiter = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 1)], 15).await;
    let sold_out = SoldOut {
        event,
        organizer,
        holding_runs: Vec::new(),
    };
    let tt = sold_out.ticket_type();
    let mut conn = app.raw_conn().await;
    // Sold out, the waiter joins; then the unit is free for the waitlist.
    conn.batch_execute(&format!(
        "UPDATE ticket_type_rows SET taken = 1 WHERE id = '{tt}'"
    ))
    .await
    .unwrap();
    let entry = joined(&app, &waiter, &sold_out, 1).await;
    conn.batch_execute(&format!(
        "UPDATE ticket_type_rows SET taken = 0 WHERE id = '{tt}'"
    ))
    .await
    .unwrap();
    let mut dispatcher = app.pool().get().await.unwrap();
    let head_wait = chrono::Duration::from_std(HEAD_WAIT).unwrap();

    // Locked past the lock wait: an error after about LOCK_WAIT, nothing offered.
    lock_the_type_for(&app.db.url, tt, LOCK_WAIT * 3).await;
    let started = Instant::now();
    let refused =
        dispatch_waitlists::serve(&mut dispatcher, tt, chrono::Utc::now(), head_wait).await;
    let waited = started.elapsed();
    println!(
        "locked for {:?}: {refused:?} after {waited:?}",
        LOCK_WAIT * 3
    );
    assert!(refused.is_err(), "{refused:?}");
    assert!(waited >= LOCK_WAIT && waited < LOCK_WAIT * 3, "{waited:?}");
    assert_eq!(entries(&app, tt).await[0].status, "waiting");
    // Until the lock is let go.
    tokio::time::sleep(LOCK_WAIT * 2 + Duration::from_millis(200)).await;

    // Locked for a moment, as by a hold statement: served right after it.
    let held_for = LOCK_WAIT / 4;
    lock_the_type_for(&app.db.url, tt, held_for).await;
    let started = Instant::now();
    let offered = dispatch_waitlists::serve(&mut dispatcher, tt, chrono::Utc::now(), head_wait)
        .await
        .unwrap();
    let waited = started.elapsed();
    println!("locked for {held_for:?}: {offered} offered after {waited:?}");
    assert_eq!(offered, 1);
    assert!(
        waited >= held_for / 2,
        "it did not wait for the lock: {waited:?}"
    );
    let rows = entries(&app, tt).await;
    assert_eq!(
        (rows[0].id.as_str(), rows[0].status.as_str()),
        (entry.as_str(), "offered")
    );
}
