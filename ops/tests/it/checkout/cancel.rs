//! The buyer's cancel: the seats come back at once and the intent is cancelled
//! at the provider; a payment that raced the cancel is sold if the seats are
//! still free, refunded otherwise.

use std::time::{Duration, Instant};

use boxoffice_models::holds;
use boxoffice_models::users::Role;
use serde_json::Value;

use super::fixtures::{
    cancel, counters, event_on_sale, is_finished, order, start, started_run, wait_for,
    waiting_checkout,
};
use crate::harness::{TEST_STRIPE_KEY, TestApp, assert_problem};

/// The intent as the provider has it.
async fn intent_at_provider(sandbox_url: &str, intent: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{sandbox_url}/v1/payment_intents/{intent}"))
        .bearer_auth(TEST_STRIPE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_buyers_cancel_gives_the_seats_back_at_once_and_cancels_the_intent() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let stranger = app.create_user(&[Role::Participant]).await;
    // Fifteen minutes to pay: only the cancel can give the seats back now.
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 2)], 15).await;
    let (run_id, intent) = waiting_checkout(&app, &buyer, order(&event, 0, 2), "abandon-1").await;
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (2, 0, 2)
    );

    // Someone else's checkout does not exist for them.
    assert_problem(cancel(&app, &stranger, &run_id).await, 404, "not_found").await;
    let r = cancel(&app, &stranger, "0190e0a0-0000-7000-8000-000000000001").await;
    assert_problem(r, 404, "not_found").await;

    let asked = Instant::now();
    let r = cancel(&app, &buyer, &run_id).await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status_url"], format!("/v1/workflows/{run_id}"));
    let done = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    println!(
        "cancel: seats back {:.2} s after the request",
        asked.elapsed().as_secs_f64()
    );
    assert_eq!(done["status"], "compensated", "{done}");
    assert_eq!(done["error"]["code"], "cancelled", "{done}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (2, 0, 0)
    );
    assert_eq!(
        intent_at_provider(&sandbox.base_url, &intent).await["status"],
        "canceled"
    );
    assert_eq!(sandbox.stats().await["cancellations"], 1);

    // It is over: a second cancel is refused, and the seats sell to the next buyer.
    let problem = assert_problem(
        cancel(&app, &buyer, &run_id).await,
        409,
        "checkout_finished",
    )
    .await;
    assert_eq!(problem["run_status"], "compensated", "{problem}");
    let (next, next_intent) =
        waiting_checkout(&app, &stranger, order(&event, 0, 2), "abandon-2").await;
    sandbox.pay(&next_intent).await;
    let sold = wait_for(&app, &stranger, &next, Duration::from_secs(20), is_finished).await;
    assert_eq!(sold["status"], "completed", "{sold}");
}

#[tokio::test]
async fn a_payment_racing_the_cancel_is_sold_while_seats_are_free_and_refunded_when_not() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let early = app.create_user(&[Role::Participant]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let loser = app.create_user(&[Role::Participant]).await;
    let rival = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 2)], 15).await;

    // Paid at the provider just before the cancel reached it: sold.
    let (paid_first, intent) = waiting_checkout(&app, &early, order(&event, 0, 1), "race-0").await;
    sandbox.pay(&intent).await;
    let r = cancel(&app, &early, &paid_first).await;
    assert!(matches!(r.status().as_u16(), 202 | 409), "{}", r.status());
    let done = wait_for(
        &app,
        &early,
        &paid_first,
        Duration::from_secs(20),
        is_finished,
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["ticket_ids"].as_array().unwrap().len(), 1);

    // Cancelled, then paid anyway (the payment was in flight): the seat is free, sold.
    let (sold_late, intent) = waiting_checkout(&app, &buyer, order(&event, 0, 1), "race-1").await;
    assert_eq!(cancel(&app, &buyer, &sold_late).await.status(), 202);
    wait_for(&app, &buyer, &sold_late, Duration::from_secs(20), |v| {
        v["status"] == "compensated"
    })
    .await;
    sandbox.pay_late(&intent).await;
    let done = wait_for(&app, &buyer, &sold_late, Duration::from_secs(20), |v| {
        v["status"] == "completed"
    })
    .await;
    assert_eq!(done["ticket_ids"].as_array().unwrap().len(), 1, "{done}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (2, 2, 0)
    );

    // Sold out: a cancelled checkout paid late is refunded.
    let more = event_on_sale(&app.db.url, organizer.id, &[(4500, 1)], 15).await;
    let (refunded, intent) = waiting_checkout(&app, &loser, order(&more, 0, 1), "race-2").await;
    assert_eq!(cancel(&app, &loser, &refunded).await.status(), 202);
    wait_for(&app, &loser, &refunded, Duration::from_secs(20), |v| {
        v["status"] == "compensated"
    })
    .await;
    let taker = started_run(
        start(
            &app.base_url,
            &app.client,
            &rival,
            order(&more, 0, 1),
            Some("race-3"),
        )
        .await,
    )
    .await;
    let taken = wait_for(&app, &rival, &taker, Duration::from_secs(20), |v| {
        v["status"] == "waiting"
    })
    .await;
    sandbox
        .pay(taken["payment"]["intent_id"].as_str().unwrap())
        .await;
    wait_for(&app, &rival, &taker, Duration::from_secs(20), |v| {
        v["status"] == "completed"
    })
    .await;
    sandbox.pay_late(&intent).await;
    let done = wait_for(&app, &loser, &refunded, Duration::from_secs(20), |v| {
        v["status"] == "compensated" && v["error"]["code"] == "sold_out_refunded"
    })
    .await;
    assert_eq!(done["status"], "compensated", "{done}");
    assert!(done["ticket_ids"].as_array().unwrap().is_empty());
    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&intent], 1, "{stats}");
    assert_eq!(counters(&app.db.url, more.ticket_types[0]).await, (1, 1, 0));
    let mut conn = app.raw_conn().await;
    assert!(holds::inconsistencies(&mut conn).await.unwrap().is_empty());
}
