//! An organizer cancels an event with sales: the API answers 202 with the
//! cancellation run, nothing more is sold, checkouts in flight are
//! compensated (a payment that arrives anyway is refunded), every booking is
//! refunded in full through a child refund run, each buyer is told once, and
//! the organizer's figures show what was refunded.

use std::time::Duration;

use boxoffice_models::users::Role;
use futures::future::join_all;
use serde_json::Value;

use crate::checkout_support::{
    count, counters, event_on_sale, is_finished, order, start, wait_for,
};
use crate::harness::sandbox::TestSandbox;
use crate::harness::users::TestUser;
use crate::harness::{TEST_STRIPE_KEY, TestApp, assert_problem};

const PRICE: i64 = 4500;

async fn cancel(app: &TestApp, organizer: &TestUser, event_id: uuid::Uuid) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/events/{event_id}/cancel")))
        .header("authorization", organizer.bearer())
        .send()
        .await
        .unwrap()
}

/// Starts a checkout of `quantity` tickets and waits until it awaits payment:
/// `(run_id, intent_id)`.
async fn awaiting_payment(app: &TestApp, buyer: &TestUser, body: Value) -> (String, String) {
    let r = start(&app.base_url, &app.client, buyer, body, None).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = wait_for(app, buyer, &run_id, Duration::from_secs(20), |v| {
        v["payment"]["intent_id"].is_string()
    })
    .await;
    let intent = view["payment"]["intent_id"].as_str().unwrap().to_owned();
    (run_id, intent)
}

/// A confirmed booking: `(intent_id, booking_id)`.
async fn bought(
    app: &TestApp,
    sandbox: &TestSandbox,
    buyer: &TestUser,
    body: Value,
) -> (String, String) {
    let (run_id, intent) = awaiting_payment(app, buyer, body).await;
    sandbox.pay(&intent).await;
    let done = wait_for(app, buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    (intent, done["booking_id"].as_str().unwrap().to_owned())
}

/// The intent's status at the provider.
async fn intent_status(sandbox: &TestSandbox, intent: &str) -> String {
    let v: Value = sandbox
        .client
        .get(format!("{}/v1/payment_intents/{intent}", sandbox.base_url))
        .bearer_auth(TEST_STRIPE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn cancelling_an_event_with_sales_refunds_every_booking_and_stops_every_sale() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyers = join_all((0..4).map(|_| app.create_user(&[Role::Participant]))).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(PRICE, 50)], 15).await;

    // Two confirmed bookings (1 and 2 tickets), one checkout waiting for
    // payment, and one whose buyer will pay after the cancellation.
    let (intent_a, booking_a) = bought(&app, &sandbox, &buyers[0], order(&event, 0, 1)).await;
    let (intent_b, booking_b) = bought(&app, &sandbox, &buyers[1], order(&event, 0, 2)).await;
    let (waiting_run, waiting_intent) =
        awaiting_payment(&app, &buyers[2], order(&event, 0, 1)).await;
    let (late_run, late_intent) = awaiting_payment(&app, &buyers[3], order(&event, 0, 3)).await;
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (50, 3, 4)
    );

    let r = cancel(&app, &organizer, event.event_id).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let tag = r.headers()["etag"].to_str().unwrap().to_owned();
    let started: Value = r.json().await.unwrap();
    let parent = started["run_id"]
        .as_str()
        .expect("the cancellation run")
        .to_owned();
    assert_eq!(started["event"]["status"], "cancelled", "{started}");
    // The answer's ETag is the event's, for `If-Match`; the run's version is
    // in the body.
    assert_eq!(
        tag,
        format!("\"{}\"", started["event"]["version"]),
        "{started}"
    );
    assert!(started["version"].is_i64(), "{started}");
    // The buyer pays just after the cancellation (at a provider that takes the
    // money even if the intent was cancelled in between).
    sandbox.pay_late(&late_intent).await;

    // Nothing more is sold.
    let r = start(
        &app.base_url,
        &app.client,
        &buyers[0],
        order(&event, 0, 1),
        None,
    )
    .await;
    assert_problem(r, 409, "event_cancelled").await;

    // The parent completes once each booking's refund has ended.
    let done = wait_for(
        &app,
        &organizer,
        &parent,
        Duration::from_secs(60),
        is_finished,
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["kind"], "event_cancellation", "{done}");
    assert_eq!(done["bookings_total"], 2, "{done}");
    assert_eq!(done["refunded"], 2, "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    assert_eq!(done["pending"], 0, "{done}");
    assert_eq!(done["refunded_amount"]["amount_minor"], 3 * PRICE, "{done}");

    // The waiting checkout is compensated and its intent cancelled.
    let waiting = wait_for(
        &app,
        &buyers[2],
        &waiting_run,
        Duration::from_secs(30),
        is_finished,
    )
    .await;
    assert_eq!(waiting["status"], "compensated", "{waiting}");
    assert!(waiting["booking_id"].is_null(), "{waiting}");
    assert_eq!(intent_status(&sandbox, &waiting_intent).await, "canceled");

    // The buyer who paid after the cancellation is refunded, never confirmed.
    let late = wait_for(
        &app,
        &buyers[3],
        &late_run,
        Duration::from_secs(30),
        is_finished,
    )
    .await;
    assert_eq!(late["status"], "compensated", "{late}");
    assert!(late["booking_id"].is_null(), "{late}");
    let refunded_late = wait_until_refunded(&sandbox, &late_intent, 3 * PRICE).await;
    assert_eq!(
        refunded_late["refunds_by_intent"][&late_intent], 1,
        "{refunded_late}"
    );

    // Every booking refunded once, in full; nothing else charged was kept.
    let stats = sandbox.stats().await;
    for (intent, paid) in [(&intent_a, PRICE), (&intent_b, 2 * PRICE)] {
        assert_eq!(stats["charged_minor_by_intent"][intent], paid, "{stats}");
        assert_eq!(stats["refunded_minor_by_intent"][intent], paid, "{stats}");
        assert_eq!(stats["refunds_by_intent"][intent], 1, "{stats}");
    }
    assert!(
        stats["refunds_by_intent"][&waiting_intent].is_null(),
        "{stats}"
    );
    for booking in [&booking_a, &booking_b] {
        assert_eq!(
            count(&app.db.url, &format!("SELECT 1 FROM bookings WHERE id = '{booking}' AND status = 'refunded' AND refunded_minor = total_minor")).await,
            1,
            "booking {booking} is refunded in full"
        );
    }
    assert_eq!(
        count(
            &app.db.url,
            &format!(
                "SELECT 1 FROM bookings WHERE event_id = '{}'",
                event.event_id
            )
        )
        .await,
        2,
        "no booking was confirmed after the cancellation"
    );
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM tickets WHERE status <> 'void'").await,
        0,
        "every ticket is void"
    );
    // Units back, nothing held.
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (50, 0, 0)
    );

    // One cancellation email per buyer with a booking, none to the others.
    let emails = count(
        &app.db.url,
        &format!("SELECT 1 FROM notifications WHERE kind = 'event_cancelled' AND dedupe_key LIKE 'event:{}:cancelled:%'", event.event_id),
    )
    .await;
    assert_eq!(emails, 2);
    for buyer in &buyers[..2] {
        assert_eq!(
            count(&app.db.url, &format!("SELECT 1 FROM notifications WHERE kind = 'event_cancelled' AND recipient = '{}'", buyer.email)).await,
            1
        );
    }

    // The organizer sees it.
    let page: Value = app
        .client
        .get(app.url("/v1/organizer/events"))
        .header("authorization", organizer.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == event.event_id.to_string())
        .expect("the cancelled event is listed")
        .clone();
    assert_eq!(listed["status"], "cancelled", "{listed}");
    assert_eq!(listed["totals"]["sold"], 0, "{listed}");
    assert_eq!(listed["totals"]["refunded"], 3, "{listed}");
    assert_eq!(listed["totals"]["refunded_minor"], 3 * PRICE, "{listed}");
    assert_eq!(listed["ticket_types"][0]["refunded"], 3, "{listed}");
}

/// Waits until the sandbox has refunded `amount` of `intent`; the stats.
async fn wait_until_refunded(sandbox: &TestSandbox, intent: &str, amount: i64) -> Value {
    let started = std::time::Instant::now();
    loop {
        let stats = sandbox.stats().await;
        if stats["refunded_minor_by_intent"][intent] == amount {
            return stats;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{intent} was not refunded {amount}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_event_with_nothing_sold_is_cancelled_at_once() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(PRICE, 10)], 15).await;
    let r = cancel(&app, &organizer, event.event_id).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "cancelled", "{body}");
    assert!(body["run_id"].is_null(), "{body}");
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM workflow_runs").await,
        0,
        "no run started"
    );
}
