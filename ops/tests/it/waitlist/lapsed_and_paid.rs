//! The checkout of an accepted offer: unpaid in time, its units go to the next
//! entry (not to the public); paid, it gives tickets, a booking and an email.

use std::time::Duration;

use boxoffice_models::users::Role;
use futures::future::join_all;
use serde_json::Value;

use super::support::{
    answer, assert_invariants, emails_to, expire_checkouts, joined, sold_out_in, status_of,
};
use crate::checkout_support::{awaiting_payment, count, is_finished, pull_deadlines, wait_for};
use crate::harness::TestApp;
use crate::harness::wait;

async fn accept(app: &TestApp, user: &crate::harness::users::TestUser, entry: &str) -> String {
    let r = answer(app, user, entry, "accept").await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    body["run_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_accepted_checkout_feeds_the_next_entry_and_a_paid_one_gets_tickets() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let sold_out = sold_out_in(&app, &[1, 1]).await;
    let tt = sold_out.ticket_type();
    let p = join_all((0..3).map(|_| app.create_user(&[Role::Participant]))).await;
    let mut e = Vec::new();
    for person in &p {
        e.push(joined(&app, person, &sold_out, 1).await);
    }
    expire_checkouts(&app, &sold_out.holding_runs[..1]).await;
    wait::until(Duration::from_secs(30), "first offered", || async {
        status_of(&app, &e[0]).await == "offered"
    })
    .await;

    // Accepted, then not paid in time.
    let lapsing = accept(&app, &p[0], &e[0]).await;
    wait_for(
        &app,
        &p[0],
        &lapsing,
        Duration::from_secs(30),
        awaiting_payment,
    )
    .await;
    pull_deadlines(&app.db.url, &format!("id = '{lapsing}'")).await;
    let view = wait_for(&app, &p[0], &lapsing, Duration::from_secs(30), is_finished).await;
    assert_eq!(view["status"], "compensated", "{view}");
    assert_eq!(view["error"]["code"], "expired", "{view}");
    // Its unit went to the next entry.
    wait::until(Duration::from_secs(30), "second offered", || async {
        status_of(&app, &e[1]).await == "offered"
    })
    .await;
    assert_eq!(status_of(&app, &e[0]).await, "expired");
    assert_eq!(status_of(&app, &e[2]).await, "waiting");

    // Accepted and paid: tickets, booking, email; the entry stays accepted.
    let paying = accept(&app, &p[1], &e[1]).await;
    let view = wait_for(
        &app,
        &p[1],
        &paying,
        Duration::from_secs(30),
        awaiting_payment,
    )
    .await;
    sandbox
        .pay(view["payment"]["intent_id"].as_str().unwrap())
        .await;
    let done = wait_for(&app, &p[1], &paying, Duration::from_secs(30), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["ticket_ids"].as_array().unwrap().len(), 1);
    assert_eq!(
        count(
            &app.db.url,
            &format!(
                "SELECT 1 FROM bookings WHERE user_id = '{}' AND run_id = '{paying}'",
                p[1].id
            )
        )
        .await,
        1
    );
    assert_eq!(emails_to(&app, p[1].id, "booking_confirmation").await, 1);
    assert_eq!(status_of(&app, &e[1]).await, "accepted");
    let mut conn = app.raw_conn().await;
    let c = assert_invariants(&mut conn, tt).await;
    // One sold, one still held by the other original checkout, one waits.
    assert_eq!((c.sold, c.held, c.waiting_units), (1, 1, 1), "{c:?}");
    println!(
        "point 5: lapsed accepted checkout -> compensated expired, entry expired, next entry offered; \
         paid accepted checkout -> completed with 1 ticket, booking, confirmation email, entry accepted"
    );
}
