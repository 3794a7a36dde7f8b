//! Refunds against a misbehaving provider: duplicated and reordered webhooks,
//! lost webhooks, refunds that fail late or at once, and an operator's retry.

use boxoffice_models::users::Role;
use serde_json::{Value, json};

use super::support::{
    booking_money, emails, finished, paid_booking, refund, refundable_event, run_id, ticket_status,
};
use std::time::Duration;

use crate::checkout_support::{count, counters, is_finished, wait_for};
use crate::harness::TestApp;
use crate::harness::wait;

/// Steps of `run` whose input matches the SQL `LIKE` pattern.
async fn steps(app: &TestApp, run: &str, input_like: &str) -> i64 {
    count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM workflow_steps WHERE run_id = '{run}' AND input LIKE '{input_like}'"
        ),
    )
    .await
}

/// Whether `run` has stored at least two distinct `refund_updated` signals.
async fn signals(app: &TestApp, run: &str) -> bool {
    count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM workflow_signals WHERE run_id = '{run}' AND name = 'refund_updated'"
        ),
    )
    .await
        >= 2
}

#[tokio::test]
async fn webhooks_duplicated_five_times_and_reordered_make_one_refund_per_run() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 2).await;
    // Answered pending, settled by webhook: `charge.refunded` (pending) then
    // `refund.updated` (succeeded), each delivered 5 times in any order.
    sandbox
        .configure(json!({ "duplicate_deliveries": 5, "out_of_order": true,
                           "out_of_order_max_delay_ms": 800, "refund_pending_ms": 300 }))
        .await;

    // Two refunds of one payment, of the same amount, at the same time.
    let (a, b) = tokio::join!(
        refund(
            &app,
            &buyer,
            &paid.booking,
            json!({ "ticket_ids": [paid.tickets[0]] }),
            "wh-a"
        ),
        refund(
            &app,
            &buyer,
            &paid.booking,
            json!({ "ticket_ids": [paid.tickets[1]] }),
            "wh-b"
        ),
    );
    let (a, b) = (run_id(a).await, run_id(b).await);
    let (done_a, done_b) = tokio::join!(finished(&app, &buyer, &a), finished(&app, &buyer, &b));
    for done in [&done_a, &done_b] {
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["state"], "refunded", "{done}");
        assert_eq!(done["amount_minor"], 4500, "{done}");
    }
    assert_ne!(
        done_a["refund_id"], done_b["refund_id"],
        "each run has its own refund"
    );

    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&paid.intent], 2, "{stats}");
    assert_eq!(
        stats["refunded_minor_by_intent"][&paid.intent], 9000,
        "{stats}"
    );
    assert_eq!(
        stats["charged_minor_by_intent"][&paid.intent], 9000,
        "{stats}"
    );
    assert!(
        stats
            .get("refunds_pending_by_intent")
            .is_none_or(|p| p.get(&paid.intent).is_none()),
        "{stats}"
    );
    // Both runs heard of their refund by webhook: each stored once, however
    // often it came, the refund's creation (`charge.refunded`) and its
    // settling (`refund.updated`). Which one a run took as a step depends on
    // the order they came in: one that settled first completes the run.
    for run in [&a, &b] {
        wait::until(
            Duration::from_secs(10),
            "both events of each refund",
            || signals(&app, run),
        )
        .await;
        assert!(
            steps(&app, run, "signal:refund_updated").await >= 1,
            "run {run}"
        );
    }
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("refunded".into(), 9000)
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 0)
    );
    assert_eq!(emails(&app, "refund_completed").await, 2);
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM refunds WHERE status = 'succeeded'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_lost_webhook_makes_the_run_ask_the_provider() {
    let app = TestApp::builder()
        .config(|c| c.refund_poll_secs = 1)
        .spawn()
        .await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 1).await;
    sandbox
        .configure(json!({ "refund_pending_ms": 300, "drop_refund_webhooks": true }))
        .await;

    let r = refund(&app, &buyer, &paid.booking, json!({}), "lost-1").await;
    let run = run_id(r).await;
    let done = finished(&app, &buyer, &run).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["state"], "refunded");

    // No webhook reached us: the run learned it from `GET /v1/refunds/{id}`.
    let stats = sandbox.stats().await;
    assert!(
        stats["webhooks"]["dropped"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert_eq!(steps(&app, &run, "signal:%").await, 0);
    assert!(steps(&app, &run, "remote_done:refund:1:lookup:%").await >= 1);
    assert_eq!(stats["refunds_by_intent"][&paid.intent], 1, "{stats}");
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("refunded".into(), 4500)
    );
    assert_eq!(ticket_status(&app, &paid.tickets[0]).await, "void");
    assert_eq!(emails(&app, "refund_completed").await, 1);
}

#[tokio::test]
async fn a_refund_answered_pending_then_reported_failed_gives_the_tickets_back() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 2).await;
    sandbox
        .configure(json!({ "refund_pending_ms": 500, "refund_fail_intents": [paid.intent] }))
        .await;

    let r = refund(&app, &buyer, &paid.booking, json!({}), "late-fail").await;
    let run = run_id(r).await;
    let done = finished(&app, &buyer, &run).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "refund_failed", "{done}");
    // Answered pending, then told by webhook that it failed.
    assert_eq!(steps(&app, &run, "remote_done:refund:1").await, 1);
    assert!(steps(&app, &run, "signal:refund_updated").await >= 1);

    for t in &paid.tickets {
        assert_eq!(
            ticket_status(&app, t).await,
            "valid",
            "the buyer keeps the tickets"
        );
    }
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("confirmed".into(), 0)
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 2, 0)
    );
    let stats = sandbox.stats().await;
    assert_eq!(
        stats["refunds_failed_by_intent"][&paid.intent], 1,
        "{stats}"
    );
    assert!(
        stats["refunds_by_intent"].get(&paid.intent).is_none(),
        "{stats}"
    );
    assert_eq!(emails(&app, "refund_failed").await, 1);
    assert_eq!(emails(&app, "refund_completed").await, 0);
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM refunds WHERE run_id = '{run}' AND status = 'failed'")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_refund_refused_for_good_is_parked_and_an_operator_retry_refunds_under_a_new_key() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 2).await;
    sandbox
        .configure(json!({ "refund_fail_intents": [paid.intent] }))
        .await;

    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [paid.tickets[0]] }),
        "fails",
    )
    .await;
    let run = run_id(r).await;
    let done = finished(&app, &buyer, &run).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "refund_failed", "{done}");
    assert_eq!(ticket_status(&app, &paid.tickets[0]).await, "valid");
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("confirmed".into(), 0)
    );
    assert_eq!(emails(&app, "refund_failed").await, 1);
    let failed_email = count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM notifications WHERE kind = 'refund_failed' AND recipient = '{}'",
            buyer.email
        ),
    )
    .await;
    assert_eq!(failed_email, 1, "the buyer is told");

    // Parked for an operator.
    let admin_get = |path: String| {
        let req = app
            .client
            .get(app.url(&path))
            .header("authorization", admin.bearer());
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let parked = admin_get("/v1/ops/runs?status=failed".into()).await;
    assert!(
        parked
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == run.as_str() && r["kind"] == "refund"),
        "{parked}"
    );

    // The provider is fixed; the operator retries.
    sandbox
        .configure(json!({ "refund_fail_intents": [] }))
        .await;
    let r = app
        .client
        .post(app.url(&format!("/v1/ops/runs/{run}/retry")))
        .header("authorization", admin.bearer())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let outcome: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["action"], "run.retry", "{outcome}");
    let done = wait_for(&app, &buyer, &run, Duration::from_secs(30), |v| {
        v["status"] == "completed"
    })
    .await;
    assert_eq!(done["state"], "refunded", "{done}");
    assert_eq!(done["error"], Value::Null, "{done}");

    let stats = sandbox.stats().await;
    let keys = &stats["refunds_by_idempotency_key"];
    assert_eq!(keys[format!("{run}:refund:1")], 1, "{stats}");
    assert_eq!(
        keys[format!("{run}:refund:2")],
        1,
        "the retry used a new key: {stats}"
    );
    assert_eq!(
        stats["refunds_failed_by_intent"][&paid.intent], 1,
        "{stats}"
    );
    assert_eq!(stats["refunds_by_intent"][&paid.intent], 1, "{stats}");
    assert_eq!(
        stats["refunded_minor_by_intent"][&paid.intent], 4500,
        "{stats}"
    );
    assert_eq!(ticket_status(&app, &paid.tickets[0]).await, "void");
    assert_eq!(ticket_status(&app, &paid.tickets[1]).await, "valid");
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("partially_refunded".into(), 4500)
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 1, 0)
    );
    assert_eq!(emails(&app, "refund_completed").await, 1);
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM audit_log WHERE action = 'run.retry' AND target_id = '{run}'")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_retry_of_a_refund_whose_ticket_was_refunded_since_is_refused() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 2).await;
    let ticket = json!({ "ticket_ids": [paid.tickets[0]] });
    sandbox
        .configure(json!({ "refund_fail_intents": [paid.intent] }))
        .await;
    let first = run_id(refund(&app, &buyer, &paid.booking, ticket.clone(), "first").await).await;
    let done = finished(&app, &buyer, &first).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(ticket_status(&app, &paid.tickets[0]).await, "valid");

    // The provider is fixed and the buyer asks again, before any operator.
    sandbox
        .configure(json!({ "refund_fail_intents": [] }))
        .await;
    let second = run_id(refund(&app, &buyer, &paid.booking, ticket, "second").await).await;
    let done = finished(&app, &buyer, &second).await;
    assert_eq!(done["status"], "completed", "{done}");

    // Retrying the first would refund the same ticket twice: refused.
    let r = app
        .client
        .post(app.url(&format!("/v1/ops/runs/{first}/retry")))
        .header("authorization", admin.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let done = wait_for(&app, &buyer, &first, Duration::from_secs(20), |v| {
        is_finished(v) && v["error"]["code"] != "refund_failed"
    })
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "ticket_not_refundable", "{done}");

    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&paid.intent], 1, "{stats}");
    assert_eq!(
        stats["refunded_minor_by_intent"][&paid.intent], 4500,
        "{stats}"
    );
    assert!(
        stats["refunds_by_idempotency_key"]
            .get(format!("{first}:refund:2"))
            .is_none(),
        "{stats}"
    );
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("partially_refunded".into(), 4500)
    );
    assert_eq!(ticket_status(&app, &paid.tickets[0]).await, "void");
    assert_eq!(ticket_status(&app, &paid.tickets[1]).await, "valid");
}
