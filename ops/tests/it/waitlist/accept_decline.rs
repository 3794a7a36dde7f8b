//! Answering an offer: two concurrent accepts give one checkout, a decline
//! and a leave pass the units to the next entry, an accept after the deadline
//! is refused, and the deadline tells the participant and frees the units
//! (to public sale when nobody waits).

use std::time::Duration;

use boxoffice_models::users::Role;
use futures::future::join_all;
use serde_json::Value;

use super::support::{
    answer, assert_invariants, emails_to, expire_checkouts, expire_offer, joined, sold_out_in,
    status_of,
};
use crate::checkout_support::{
    awaiting_payment, count, is_finished, order, start, started_run, wait_for,
};
use crate::harness::wait;
use crate::harness::{TestApp, assert_problem};

async fn offered(app: &TestApp, entry: &str) {
    wait::until(Duration::from_secs(30), "entry offered", || async {
        status_of(app, entry).await == "offered"
    })
    .await;
}

async fn offer_run(app: &TestApp, user: &crate::harness::users::TestUser, entry: &str) -> String {
    let r = app
        .client
        .get(app.url("/v1/me/waitlist"))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let item = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == entry)
        .cloned()
        .unwrap();
    item["offer"]["run_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_twice_decline_leave_and_a_late_accept() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let sold_out = sold_out_in(&app, &[1, 1, 1]).await;
    let tt = sold_out.ticket_type();
    let p = join_all((0..5).map(|_| app.create_user(&[Role::Participant]))).await;
    let mut e = Vec::new();
    for person in &p[..4] {
        e.push(joined(&app, person, &sold_out, 1).await);
    }

    // Two accepts at once: one checkout.
    expire_checkouts(&app, &sold_out.holding_runs[..1]).await;
    offered(&app, &e[0]).await;
    let offer = offer_run(&app, &p[0], &e[0]).await;
    let (first, second) = tokio::join!(
        answer(&app, &p[0], &e[0], "accept"),
        answer(&app, &p[0], &e[0], "accept")
    );
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (202, 202)
    );
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let (first, second): (Value, Value) =
        (first.json().await.unwrap(), second.json().await.unwrap());
    assert_eq!(first["run_id"], second["run_id"], "one checkout");
    assert_eq!(
        location,
        format!("/v1/workflows/{}", first["run_id"].as_str().unwrap())
    );
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM workflow_runs WHERE kind = 'checkout' AND state->>'waitlist_entry_id' = '{}'", e[0])
        )
        .await,
        1
    );
    let checkout = first["run_id"].as_str().unwrap().to_owned();
    wait_for(
        &app,
        &p[0],
        &checkout,
        Duration::from_secs(30),
        awaiting_payment,
    )
    .await;
    let offer_view = wait_for(&app, &p[0], &offer, Duration::from_secs(30), is_finished).await;
    assert_eq!(offer_view["status"], "completed");
    assert_eq!(offer_view["state"], "accepted", "{offer_view}");
    assert_eq!(status_of(&app, &e[0]).await, "accepted");
    // The checkout holds the offer's unit: nothing new was taken.
    let mut conn = app.raw_conn().await;
    let c = assert_invariants(&mut conn, tt).await;
    assert_eq!((c.sold, c.held), (0, 3), "{c:?}");

    // A decline passes the unit on.
    expire_checkouts(&app, &sold_out.holding_runs[1..2]).await;
    offered(&app, &e[1]).await;
    assert_eq!(answer(&app, &p[1], &e[1], "decline").await.status(), 202);
    offered(&app, &e[2]).await;
    assert_eq!(status_of(&app, &e[1]).await, "declined");

    // Leaving while offered passes it on too.
    let r = app
        .client
        .delete(app.url(&format!("/v1/waitlist/{}", e[2])))
        .header("authorization", p[2].bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    offered(&app, &e[3]).await;
    assert_eq!(status_of(&app, &e[2]).await, "left");

    // Past its deadline an offer can't be accepted, even before its run wakes.
    expire_offer(&app, &e[3]).await;
    let late = answer(&app, &p[3], &e[3], "accept").await;
    assert_problem(late, 409, "offer_expired").await;
    wait::until(
        Duration::from_secs(30),
        "the late entry expired",
        || async { status_of(&app, &e[3]).await == "expired" },
    )
    .await;
    assert_eq!(emails_to(&app, p[3].id, "waitlist_offer_expired").await, 1);
    assert_eq!(emails_to(&app, p[3].id, "waitlist_offer").await, 1);

    // Nobody waits any more: the unit is on sale again.
    let c = assert_invariants(&mut conn, tt).await;
    assert_eq!((c.sold, c.held, c.waiting_units), (0, 2, 0), "{c:?}");
    let public = started_run(
        start(
            &app.base_url,
            &app.client,
            &p[4],
            order(&sold_out.event, 0, 1),
            None,
        )
        .await,
    )
    .await;
    wait_for(
        &app,
        &p[4],
        &public,
        Duration::from_secs(30),
        awaiting_payment,
    )
    .await;
    println!(
        "point 4: two concurrent accepts -> one checkout {checkout}; decline -> next offered; \
         leave while offered -> next offered; accept after the deadline -> 409 offer_expired, entry expired and told"
    );
}
