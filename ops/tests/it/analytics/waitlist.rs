//! The waitlist's figures, exact to its entries: participants join a sold-out
//! ticket type over HTTP, freed units become offers in serving order, one
//! offer is accepted and paid (an offer that became a sale), one declined, one
//! left to expire (its units offered on), one accepted and its checkout left
//! to lapse (the entry then expires and its unit is offered on); then every figure of the analytics equals the raw tables.

use std::time::Duration;

use boxoffice_models::users::Role;
use futures::future::join_all;
use serde_json::Value;

use super::exactness::assert_equal_to_raw_tables;
use super::support::analytics;
use crate::checkout_support::{awaiting_payment, count, is_finished, pull_deadlines, wait_for};
use crate::harness::TestApp;
use crate::harness::users::TestUser;
use crate::harness::wait;
use crate::waitlist::support::{
    answer, expire_checkouts, expire_offer, joined, sold_out_in, status_of,
};

async fn offered(app: &TestApp, entry: &str) {
    wait::until(Duration::from_secs(30), "entry offered", || async {
        status_of(app, entry).await == "offered"
    })
    .await;
}

/// Accepts the offer: the checkout that adopts its units, waiting for payment.
async fn accept(app: &TestApp, user: &TestUser, entry: &str) -> (String, String) {
    let r = answer(app, user, entry, "accept").await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    let run = body["run_id"].as_str().unwrap().to_owned();
    let view = wait_for(app, user, &run, Duration::from_secs(30), awaiting_payment).await;
    let intent = view["payment"]["intent_id"].as_str().unwrap().to_owned();
    (run, intent)
}

/// No run is being worked on (those left wait for an answer or a payment).
async fn settled(app: &TestApp) {
    let busy = "SELECT 1 FROM workflow_runs WHERE status IN ('running', 'compensating')";
    for _ in 0..2 {
        wait::until(Duration::from_secs(30), "runs settle", || async {
            count(&app.db.url, busy).await == 0
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waitlist_joins_offers_accepts_and_expiries_equal_the_raw_tables() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let sold_out = sold_out_in(&app, &[1, 1, 1, 1]).await;
    let people = join_all((0..6).map(|_| app.create_user(&[Role::Participant]))).await;
    let mut entries = Vec::new();
    for person in &people {
        entries.push(joined(&app, person, &sold_out, 1).await);
    }

    // Three units freed: offers to the first three entries.
    expire_checkouts(&app, &sold_out.holding_runs[..3]).await;
    for entry in &entries[..3] {
        offered(&app, entry).await;
    }
    // The first accepts and pays: an offer that became a sale.
    let (run, intent) = accept(&app, &people[0], &entries[0]).await;
    sandbox.pay(&intent).await;
    let done = wait_for(&app, &people[0], &run, Duration::from_secs(30), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    // The second declines, the third lets its offer expire: their units go on.
    assert_eq!(
        answer(&app, &people[1], &entries[1], "decline")
            .await
            .status(),
        202
    );
    expire_offer(&app, &entries[2]).await;
    for entry in &entries[3..5] {
        offered(&app, entry).await;
    }
    // The fourth accepts and lets its checkout lapse: accepted, never sold.
    let (run, _) = accept(&app, &people[3], &entries[3]).await;
    pull_deadlines(&app.db.url, &format!("id = '{run}'")).await;
    let lapsed = wait_for(&app, &people[3], &run, Duration::from_secs(30), is_finished).await;
    assert_eq!(lapsed["status"], "compensated", "{lapsed}");
    // Its unit is offered to the last entry.
    offered(&app, &entries[5]).await;
    settled(&app).await;

    let event_id = sold_out.event.event_id;
    let a = analytics(&app, &sold_out.organizer, event_id, "?granularity=hour").await;
    assert_equal_to_raw_tables(&app, event_id, &a).await;
    // ... and what the participants did.
    let w = &a["waitlist"];
    assert_eq!(w["joined"], 6, "{w}");
    // The lapsed acceptance ends its entry `expired`, and its unit is offered
    // to the last entry.
    assert_eq!(w["accepted"], 1, "{w}");
    assert_eq!(w["declined"], 1, "{w}");
    assert_eq!(w["expired"], 2, "{w}");
    assert_eq!(w["offers_sold"], 1, "{w}");
    assert_eq!(w["offered"], 6, "{w}");
    assert_eq!(a["funnel"]["completed"], 1, "{}", a["funnel"]);
    println!("waitlist: {w}; funnel {}", a["funnel"]);
}
