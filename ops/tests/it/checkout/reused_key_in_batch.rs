//! A batch of checkout starts holds its winners' seats before it inserts their
//! runs (`workers::engine::first_step::take_together`). A start whose
//! idempotency key had started a run that has ended since passes the
//! participant's limits (no open checkout), may fit, and is held; its insert
//! then finds the key taken. Its hold cannot stand without its run: the batch
//! is rolled back whole, and each of its starts starts alone.

use boxoffice_models::users::Role;
use serde_json::Value;

use super::fixtures::{
    SaleEvent, counters, event_on_sale, gathered_starts, metric, order, start, start_held,
};
use crate::harness::TestApp;
use crate::harness::users::TestUser;

const KEY: &str = "reused-1";

/// `buyer`'s start of one seat with the key [`KEY`]: answered 202.
async fn start_with_the_key(app: &TestApp, buyer: &TestUser, event: &SaleEvent) -> Value {
    let r = start(
        &app.base_url,
        &app.client,
        buyer,
        order(event, 0, 1),
        Some(KEY),
    )
    .await;
    assert_eq!(r.status(), 202);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_reused_key_held_in_a_batch_rolls_the_batch_back_and_the_retry_finds_its_run() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1500, 1)], 15).await;
    let first = app.create_user(&[Role::Participant]).await;
    start_held(&app, &first, order(&event, 0, 1)).await;

    // The buyer's first start comes after the only seat: sold out, ended.
    let buyer = app.create_user(&[Role::Participant]).await;
    let sold_out = start_with_the_key(&app, &buyer, &event).await;
    assert_eq!(sold_out["error"]["code"], "sold_out", "{sold_out}");

    // A second seat: the same start, sent again, now fits.
    let r = app
        .client
        .patch(format!(
            "{}/v1/events/{}/ticket-types/{}",
            app.base_url, event.event_id, event.ticket_types[0]
        ))
        .header("authorization", organizer.bearer())
        .json(&serde_json::json!({"capacity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    let before = app.metrics().await;
    let again = start_with_the_key(&app, &buyer, &event).await;
    let after = app.metrics().await;

    // Answered with the run its key started, as it is now; nothing held.
    assert_eq!(again["run_id"], sold_out["run_id"], "{again}");
    assert_eq!(again["error"]["code"], "sold_out", "{again}");
    let failed = |metrics: &str| metric(metrics, "checkout_start_batches_failed_total ");
    assert_eq!(
        failed(&after) - failed(&before),
        1.0,
        "the batch that held the seat was rolled back: {after}"
    );
    assert_eq!(
        gathered_starts(&after, "alone") - gathered_starts(&before, "alone"),
        1.0,
        "{after}"
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (2, 0, 1),
        "capacity, sold, held: the first buyer's seat only"
    );

    // The seat the rolled-back batch held is there for the next buyer.
    let next = app.create_user(&[Role::Participant]).await;
    start_held(&app, &next, order(&event, 0, 1)).await;
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (2, 0, 2)
    );
}
