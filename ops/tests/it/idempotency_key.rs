//! Routes that start a run require an `Idempotency-Key`: without one, a
//! client's retry would start a second run and a second payment.

use boxoffice_models::users::Role;
use serde_json::Value;

use crate::checkout_support::{count, event_on_sale, order};
use crate::harness::{TestApp, assert_problem};

#[tokio::test]
async fn a_checkout_without_a_key_is_refused_and_starts_nothing() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, 10)], 15).await;
    let post = || {
        app.client
            .post(app.url("/v1/checkouts"))
            .header("authorization", buyer.bearer())
            .json(&order(&event, 0, 1))
    };

    let p = assert_problem(
        post().send().await.unwrap(),
        400,
        "idempotency_key_required",
    )
    .await;
    assert_eq!(p["field"], "Idempotency-Key");
    for blank in ["", "   "] {
        let r = post()
            .header("idempotency-key", blank)
            .send()
            .await
            .unwrap();
        assert_problem(r, 400, "idempotency_key_required").await;
    }
    let r = post()
        .header("idempotency-key", "first")
        .header("idempotency-key", "second")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_idempotency_key").await;
    let r = post()
        .header("idempotency-key", "k".repeat(256))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_idempotency_key").await;
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM workflow_runs").await,
        0,
        "no run was started"
    );
    assert_eq!(count(&app.db.url, "SELECT 1 FROM holds").await, 0);

    // With a key, it starts; the same key again is the same run.
    let mut runs = Vec::new();
    for _ in 0..2 {
        let r = post()
            .header("idempotency-key", "k".repeat(255))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        runs.push(r.json::<Value>().await.unwrap()["run_id"].clone());
    }
    assert_eq!(runs[0], runs[1]);
    assert_eq!(count(&app.db.url, "SELECT 1 FROM workflow_runs").await, 1);
}
