//! Refunds raced and repeated: one run per key, one refund per ticket, one
//! effect however often the run's messages are delivered.

use std::time::{Duration, Instant};

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use boxoffice_models::users::Role;
use boxoffice_workers::engine::messages::{AdvanceRun, RunEffect};
use boxoffice_workers::queue;
use boxoffice_workflows::payments::PaymentCommand;
use serde_json::{Value, json};
use uuid::Uuid;

use super::support::{
    booking_money, emails, finished, paid_booking, refund, refundable_event, run_id, ticket_status,
};
use crate::checkout_support::{count, counters, is_finished, wait_for};
use crate::harness::{TestApp, assert_problem};

#[tokio::test]
async fn eight_identical_requests_make_one_run_and_one_refund() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 2).await;
    let body = json!({ "ticket_ids": [paid.tickets[0]], "reason": "cannot come" });

    let answers = futures::future::join_all(
        (0..8).map(|_| refund(&app, &buyer, &paid.booking, body.clone(), "refund-once")),
    )
    .await;
    let mut runs = Vec::new();
    for r in answers {
        runs.push(run_id(r).await);
    }
    runs.dedup();
    assert_eq!(runs.len(), 1, "one run for one key: {runs:?}");
    let refund_runs = "SELECT 1 FROM workflow_runs WHERE kind = 'refund'";
    assert_eq!(count(&app.db.url, refund_runs).await, 1);

    let done = finished(&app, &buyer, &runs[0]).await;
    assert_eq!(done["status"], "completed", "{done}");
    // Retries after it finished still get the same run; another body is refused.
    let r = refund(&app, &buyer, &paid.booking, body.clone(), "refund-once").await;
    assert_eq!(run_id(r).await, runs[0]);
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [paid.tickets[1]] }),
        "refund-once",
    )
    .await;
    assert_problem(r, 422, "idempotency_key_reused").await;
    assert_eq!(count(&app.db.url, refund_runs).await, 1);

    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&paid.intent], 1, "{stats}");
    assert_eq!(
        stats["refunded_minor_by_intent"][&paid.intent], 4500,
        "{stats}"
    );
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("partially_refunded".into(), 4500)
    );
    assert_eq!(ticket_status(&app, &paid.tickets[1]).await, "valid");
    assert_eq!(emails(&app, "refund_completed").await, 1);
}

#[tokio::test]
async fn concurrent_refunds_of_overlapping_tickets_refund_each_ticket_once() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 4).await;
    let t = &paid.tickets;

    // Two requests (different keys) share the second ticket: one wins.
    let (a, b) = tokio::join!(
        refund(
            &app,
            &buyer,
            &paid.booking,
            json!({ "ticket_ids": [t[0], t[1]] }),
            "overlap-a"
        ),
        refund(
            &app,
            &buyer,
            &paid.booking,
            json!({ "ticket_ids": [t[1], t[2]] }),
            "overlap-b"
        ),
    );
    let mut won = Vec::new();
    for r in [a, b] {
        if r.status() == 202 {
            won.push(
                r.json::<Value>().await.unwrap()["run_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        } else {
            let body = assert_problem(r, 409, "ticket_not_refundable").await;
            assert_eq!(body["ticket_id"], t[1].as_str(), "{body}");
        }
    }
    assert_eq!(won.len(), 1, "exactly one of the two starts");
    // Eight more keys race for the last ticket: one wins.
    let keys: Vec<String> = (0..8).map(|i| format!("last-{i}")).collect();
    let answers = futures::future::join_all(keys.iter().map(|key| {
        refund(
            &app,
            &buyer,
            &paid.booking,
            json!({ "ticket_ids": [t[3]] }),
            key,
        )
    }))
    .await;
    let mut started = 0;
    for r in answers {
        if r.status() == 202 {
            started += 1;
            won.push(run_id(r).await);
        } else {
            assert_problem(r, 409, "ticket_not_refundable").await;
        }
    }
    assert_eq!(started, 1, "one refund of the last ticket");
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM workflow_runs WHERE kind = 'refund'"
        )
        .await,
        2,
        "a refused request leaves no run"
    );
    for run in &won {
        let done = finished(&app, &buyer, run).await;
        assert_eq!(done["status"], "completed", "{done}");
    }

    // Three tickets refunded once each; the one left out is still valid.
    let mut void = 0;
    for id in t {
        if ticket_status(&app, id).await == "void" {
            void += 1;
        }
    }
    assert_eq!(void, 3, "two of the overlap's three tickets and the last");
    assert_eq!(ticket_status(&app, &t[1]).await, "void");
    assert_eq!(ticket_status(&app, &t[3]).await, "void");
    assert_eq!(
        count(
            &app.db.url,
            &format!(
                "SELECT 1 FROM tickets WHERE booking_id = '{}' AND status = 'valid'",
                paid.booking
            )
        )
        .await,
        1
    );
    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&paid.intent], 2, "{stats}");
    assert_eq!(
        stats["refunded_minor_by_intent"][&paid.intent],
        3 * 4500,
        "{stats}"
    );
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("partially_refunded".into(), 3 * 4500)
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 1, 0)
    );
}

#[tokio::test]
async fn a_refund_whose_messages_are_delivered_three_times_has_one_effect() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 2).await;
    // The refund stays pending a while, so the duplicates arrive mid-run.
    sandbox
        .configure(json!({ "refund_pending_ms": 2500 }))
        .await;

    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [paid.tickets[0]] }),
        "dup-1",
    )
    .await;
    let run = run_id(r).await;
    let run_uuid: Uuid = run.parse().unwrap();
    let waiting = wait_for(&app, &buyer, &run, Duration::from_secs(20), |v| {
        v["refund_id"].is_string() || is_finished(v)
    })
    .await;
    assert_eq!(waiting["status"], "waiting", "{waiting}");

    let redis = app.conns.redis_patient.clone();
    let mut advance = RedisStorage::<AdvanceRun, _>::new(redis.clone())
        .with_config(queue::config(&app.redis_prefix, "advance_run"));
    let mut effects = RedisStorage::<RunEffect, _>::new(redis)
        .with_config(queue::config(&app.redis_prefix, "run_effect"));
    let create = PaymentCommand::RefundPayment {
        key: "refund:1".into(),
        intent_id: paid.intent.clone(),
        amount_minor: 4500,
    };
    for _ in 0..3 {
        advance.push(AdvanceRun::look_at(run_uuid)).await.unwrap();
        effects
            .push(RunEffect {
                run_id: run_uuid,
                kind: "refund".into(),
                key: "refund:1".into(),
                command: serde_json::to_value(&create).unwrap(),
                attempt: 1,
            })
            .await
            .unwrap();
    }
    let done = finished(&app, &buyer, &run).await;
    assert_eq!(done["status"], "completed", "{done}");
    for _ in 0..3 {
        advance.push(AdvanceRun::look_at(run_uuid)).await.unwrap();
        effects
            .push(RunEffect {
                run_id: run_uuid,
                kind: "refund".into(),
                key: "refund:1".into(),
                command: serde_json::to_value(&create).unwrap(),
                attempt: 1,
            })
            .await
            .unwrap();
    }
    // Let the duplicates drain.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && count(&app.db.url, "SELECT 1 FROM outbox").await > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&paid.intent], 1, "{stats}");
    assert_eq!(
        stats["refunded_minor_by_intent"][&paid.intent], 4500,
        "{stats}"
    );
    assert_eq!(
        stats["refunds_by_idempotency_key"][format!("{run}:refund:1")],
        1,
        "{stats}"
    );
    assert_eq!(
        stats["refunds_by_idempotency_key"]
            .as_object()
            .unwrap()
            .len(),
        1,
        "{stats}"
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 1, 0),
        "one unit back on sale"
    );
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("partially_refunded".into(), 4500)
    );
    assert_eq!(ticket_status(&app, &paid.tickets[0]).await, "void");
    assert_eq!(ticket_status(&app, &paid.tickets[1]).await, "valid");
    assert_eq!(emails(&app, "refund_completed").await, 1, "one email");
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM refunds WHERE run_id = '{run}' AND status = 'succeeded'")
        )
        .await,
        1
    );
}
