//! The checkout API's promises: idempotent starts, one effect per step however
//! often its job runs, ETag/304 and long polls on the status, and privacy.

use std::time::{Duration, Instant};

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use boxoffice_models::users::Role;
use boxoffice_workers::engine::messages::{AdvanceRun, RunEffect};
use boxoffice_workers::queue;
use boxoffice_workers::relay::queue_depth;
use boxoffice_workflows::payments::PaymentCommand;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::Value;
use uuid::Uuid;

use super::fixtures::{
    SaleEvent, count, counters, event_on_sale, is_finished, order, start, wait_for,
};
use crate::harness::users::TestUser;
use crate::harness::{TestApp, assert_problem};

#[tokio::test]
async fn the_same_idempotency_key_never_makes_a_second_run() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let other = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 100)], 15).await;

    // A client that retries (timeouts, double clicks), concurrently.
    let attempts =
        futures::future::join_all((0..8).map(|_| buy(&app, &buyer, &event, 1, "order-42"))).await;
    let mut ids = Vec::new();
    for r in attempts {
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<Value>().await.unwrap()["run_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one run for one key: {ids:?}");
    assert_eq!(count(&app.db.url, "SELECT 1 FROM workflow_runs").await, 1);

    // Same key, another body: refused, and still one run.
    let r = buy(&app, &buyer, &event, 2, "order-42").await;
    assert_problem(r, 422, "idempotency_key_reused").await;
    // Keys belong to their user: another buyer's same key is another run.
    let r = buy(&app, &other, &event, 1, "order-42").await;
    assert_eq!(r.status(), 202);
    assert_eq!(count(&app.db.url, "SELECT 1 FROM workflow_runs").await, 2);
    let r = buy(&app, &buyer, &event, 1, "bad key with spaces").await;
    assert_problem(r, 400, "invalid_idempotency_key").await;

    // The sale closes; a client retrying its lost request still learns of the
    // run it started, while a new attempt to buy is refused.
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    conn.batch_execute(&format!(
        "UPDATE events SET sales_end_at = now() - interval '1 minute' WHERE id = '{}'",
        event.event_id
    ))
    .await
    .unwrap();
    let r = buy(&app, &buyer, &event, 1, "order-42").await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["run_id"], ids[0].as_str());
    let r = buy(&app, &buyer, &event, 1, "order-43").await;
    assert_problem(r, 409, "sales_ended").await;
    assert_eq!(count(&app.db.url, "SELECT 1 FROM workflow_runs").await, 2);
}

/// Starts a checkout of `quantity` seats of the event's first ticket type.
async fn buy(
    app: &TestApp,
    user: &TestUser,
    event: &SaleEvent,
    quantity: i32,
    key: &str,
) -> reqwest::Response {
    start(
        &app.base_url,
        &app.client,
        user,
        order(event, 0, quantity),
        Some(key),
    )
    .await
}

/// How many times the duplicated messages are delivered, each time.
const DUPLICATES: i64 = 3;

#[tokio::test]
async fn steps_run_twice_have_one_effect() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1500, 10)], 15).await;

    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 2),
        None,
    )
    .await;
    let run_id: Uuid = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let view = wait_for(
        &app,
        &buyer,
        &run_id.to_string(),
        Duration::from_secs(20),
        |v| v["status"] == "waiting",
    )
    .await;

    // Deliver every message of this run again, several times, as a crashed
    // worker's redelivery or a relay that pushed twice would: while it waits
    // for the payment, and again once it has completed.
    let redis = app.conns.redis_patient.clone();
    let advance_queue = queue::config(&app.redis_prefix, "advance_run");
    let effect_queue = queue::config(&app.redis_prefix, "run_effect");
    let mut advance =
        RedisStorage::<AdvanceRun, _>::new(redis.clone()).with_config(advance_queue.clone());
    let mut effects =
        RedisStorage::<RunEffect, _>::new(redis.clone()).with_config(effect_queue.clone());
    let create = PaymentCommand::CreatePaymentIntent {
        key: "create_payment_intent".into(),
        amount_minor: 3000,
        currency: "EUR".into(),
    };
    let duplicate = async |advance: &mut RedisStorage<AdvanceRun, _>,
                           effects: &mut RedisStorage<RunEffect, _>| {
        for _ in 0..DUPLICATES {
            advance.push(AdvanceRun::look_at(run_id)).await.unwrap();
            effects
                .push(RunEffect {
                    run_id,
                    kind: "checkout".into(),
                    key: "create_payment_intent".into(),
                    command: serde_json::to_value(&create).unwrap(),
                    attempt: 1,
                })
                .await
                .unwrap();
        }
    };
    duplicate(&mut advance, &mut effects).await;
    sandbox
        .pay(view["payment"]["intent_id"].as_str().unwrap())
        .await;
    let done = wait_for(
        &app,
        &buyer,
        &run_id.to_string(),
        Duration::from_secs(20),
        is_finished,
    )
    .await;
    assert_eq!(done["status"], "completed");
    duplicate(&mut advance, &mut effects).await;

    // Each duplicated effect calls the provider again (same idempotency key)
    // and hands the run an outcome it no longer waits for: an ignored step.
    // Wait until all of them are seen and both queues are empty.
    let ignored_creates = format!(
        "SELECT 1 FROM workflow_steps WHERE run_id = '{run_id}'
            AND input = 'remote_done:create_payment_intent' AND outcome = 'ignored'"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ignored = count(&app.db.url, &ignored_creates).await;
        let queued = queue_depth(&redis, &advance_queue).await.unwrap()
            + queue_depth(&redis, &effect_queue).await.unwrap();
        if ignored >= 2 * DUPLICATES && queued == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the duplicates were not all handled: {ignored} of {} duplicated effects ignored, {queued} jobs still queued",
            2 * DUPLICATES
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 2, 0),
        "held once, sold once"
    );
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM tickets").await,
        2,
        "tickets issued once"
    );
    assert_eq!(count(&app.db.url, "SELECT 1 FROM bookings").await, 1);
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM notifications").await,
        1,
        "one email"
    );
    let stats = sandbox.stats().await;
    assert_eq!(
        stats["intents_created"], 1,
        "the repeated create was the same intent: {stats}"
    );
    assert_eq!(stats["charges_by_run_id"][run_id.to_string()], 1);
}

#[tokio::test]
async fn status_has_etags_and_long_polls_until_the_run_changes() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2000, 10)], 15).await;
    // No workers yet: the run stays where it is until they start.
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 1),
        None,
    )
    .await;
    // The start's answer carries the ETag of the status it shows.
    let started_tag = r.headers()["etag"].to_str().unwrap().to_owned();
    let started: Value = r.json().await.unwrap();
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let url = app.url(&format!("/v1/workflows/{run_id}"));

    let first = app
        .client
        .get(&url)
        .header("authorization", buyer.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let view: Value = first.json().await.unwrap();
    assert_eq!(started_tag, etag, "the answer and the status agree");
    assert_eq!(started["version"], view["version"], "{started} vs {view}");
    assert_eq!(started["expires_at"], view["expires_at"]);
    // The API held the seats as it started the run; the payment intent waits
    // for a worker.
    assert_eq!(
        (view["status"].as_str(), view["step"].as_str()),
        (Some("running"), Some("creating_payment_intent"))
    );
    assert!(view["expires_at"].is_string(), "{view}");

    let again = app
        .client
        .get(&url)
        .header("authorization", buyer.bearer())
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);

    // Nothing changes: the long poll waits its full time, then says 304.
    let waited = Instant::now();
    let r = app
        .client
        .get(format!("{url}?wait=1"))
        .header("authorization", buyer.bearer())
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(waited.elapsed() >= Duration::from_millis(950));

    // The run moves while a long poll waits: it answers at once, with the change.
    let poll = {
        let (client, url, bearer, etag) = (
            app.client.clone(),
            format!("{url}?wait=20"),
            buyer.bearer(),
            etag.clone(),
        );
        tokio::spawn(async move {
            let t = Instant::now();
            let r = client
                .get(url)
                .header("authorization", bearer)
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap();
            (r.status(), t.elapsed(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.start_workers("http://127.0.0.1:1");
    let (status, took, body) = poll.await.unwrap();
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(15), "answered after {took:?}");
    // The worker's first attempt at the intent (the provider is unreachable)
    // is a new version of the run.
    assert!(
        body["version"].as_i64().unwrap() > view["version"].as_i64().unwrap(),
        "{body} after {view}"
    );

    let r = app
        .client
        .get(format!("{url}?wait=31"))
        .header("authorization", buyer.bearer())
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_query").await;
}

#[tokio::test]
async fn nobody_reads_another_participants_run_booking_or_tickets() {
    let app = TestApp::spawn().await;
    app.start_workers("http://127.0.0.1:1");
    let organizer = app.create_user(&[Role::Organizer]).await;
    let other_organizer = app.create_user(&[Role::Organizer]).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let snoop = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 1),
        None,
    )
    .await;
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    let booking = view["booking_id"].as_str().unwrap().to_owned();

    let get = |path: String, user: &crate::harness::users::TestUser| {
        app.client
            .get(app.url(&path))
            .header("authorization", user.bearer())
            .send()
    };
    for path in [
        format!("/v1/workflows/{run_id}"),
        format!("/v1/bookings/{booking}"),
        format!("/v1/bookings/{booking}/tickets"),
    ] {
        assert_problem(get(path.clone(), &snoop).await.unwrap(), 404, "not_found").await;
        assert_eq!(
            get(path.clone(), &buyer).await.unwrap().status(),
            200,
            "{path}"
        );
        assert_eq!(
            get(path.clone(), &admin).await.unwrap().status(),
            200,
            "{path}"
        );
    }
    // The event's organizer sees its bookings; another organizer does not.
    assert_eq!(
        get(format!("/v1/bookings/{booking}"), &organizer)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_problem(
        get(format!("/v1/bookings/{booking}"), &other_organizer)
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    // Listing shows only one's own.
    let mine: Value = get("/v1/bookings".into(), &buyer)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let theirs: Value = get("/v1/bookings".into(), &snoop)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    // No token at all.
    let r = app
        .client
        .get(app.url(&format!("/v1/workflows/{run_id}")))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
}
