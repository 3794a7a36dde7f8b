//! What the refund tests share: a refundable event, a paid booking, a refund
//! request, and a snapshot of everything a refused refund must leave alone.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::checkout_support::{SaleEvent, count, event_on_sale, is_finished, start, wait_for};
use crate::harness::TestApp;
use crate::harness::sandbox::TestSandbox;
use crate::harness::users::TestUser;

/// An event on sale 30 days from now, one ticket type of `capacity` at
/// `price_minor`, whose buyers may refund until `window_hours` before it
/// (`None`: not refundable by its buyers).
pub async fn refundable_event(
    app: &TestApp,
    organizer: &TestUser,
    price_minor: i64,
    capacity: i32,
    window_hours: Option<i32>,
) -> SaleEvent {
    let event = event_on_sale(&app.db.url, organizer.id, &[(price_minor, capacity)], 15).await;
    set_window(app, event.event_id, window_hours).await;
    event
}

/// Changes the event's refund window (`None`: no window).
pub async fn set_window(app: &TestApp, event_id: Uuid, window_hours: Option<i32>) {
    let hours = window_hours.map_or_else(|| "NULL".to_owned(), |h| h.to_string());
    app.raw_conn()
        .await
        .batch_execute(&format!(
            "UPDATE events SET refundable_until_hours_before = {hours} WHERE id = '{event_id}'"
        ))
        .await
        .unwrap();
}

/// A confirmed booking, paid through the sandbox.
pub struct Paid {
    pub booking: String,
    pub tickets: Vec<String>,
    pub intent: String,
    pub amount_minor: i64,
}

/// `buyer` buys `quantity` tickets of the event's first type and pays.
pub async fn paid_booking(
    app: &TestApp,
    sandbox: &TestSandbox,
    buyer: &TestUser,
    event: &SaleEvent,
    quantity: i32,
) -> Paid {
    let body = json!({ "event_id": event.event_id,
                       "items": [{ "ticket_type_id": event.ticket_types[0], "quantity": quantity }] });
    let r = start(&app.base_url, &app.client, buyer, body, None).await;
    assert_eq!(r.status(), 202);
    let run = run_id(r).await;
    let paying = wait_for(app, buyer, &run, Duration::from_secs(20), |v| {
        v["payment"]["intent_id"].is_string()
    })
    .await;
    let intent = paying["payment"]["intent_id"].as_str().unwrap().to_owned();
    let amount_minor = paying["payment"]["amount_minor"].as_i64().unwrap();
    sandbox.pay(&intent).await;
    let done = wait_for(app, buyer, &run, Duration::from_secs(20), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    Paid {
        booking: done["booking_id"].as_str().unwrap().to_owned(),
        tickets: done["ticket_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect(),
        intent,
        amount_minor,
    }
}

/// `POST /v1/bookings/{booking}/refunds` with `body` under `key`.
pub async fn refund(
    app: &TestApp,
    user: &TestUser,
    booking: &str,
    body: Value,
    key: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/bookings/{booking}/refunds")))
        .header("authorization", user.bearer())
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `run_id` of a 202, whose `ETag` names the run's version it shows.
pub async fn run_id(r: reqwest::Response) -> String {
    let status = r.status();
    let tag = r.headers().get("etag").cloned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    let run_id = body["run_id"].as_str().unwrap().to_owned();
    let version = body["version"].as_i64().expect("the answer's version");
    assert_eq!(
        tag.as_ref().and_then(|t| t.to_str().ok()),
        Some(format!("\"{}-{version}\"", run_id.replace('-', "")).as_str())
    );
    run_id
}

/// Waits until the run has ended, and returns its view.
pub async fn finished(app: &TestApp, user: &TestUser, run: &str) -> Value {
    wait_for(app, user, run, Duration::from_secs(40), is_finished).await
}

/// Everything a refund can change: the booking's tickets and their states,
/// its refunded amount and status, the runs, the refunds, the units sold and
/// the sandbox's refunds.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    tickets: String,
    booking: String,
    runs: i64,
    refunds: i64,
    sold: String,
    sandbox_refunds: String,
}

pub async fn snapshot(app: &TestApp, sandbox: &TestSandbox, booking: &str) -> Snapshot {
    let stats = sandbox.stats().await;
    Snapshot {
        tickets: text(
            app,
            &format!(
                "SELECT string_agg(id::text || ':' || status || ':' || coalesce(refund_run_id::text, '-'), ',' ORDER BY id)
                   FROM tickets WHERE booking_id = '{booking}'"
            ),
        )
        .await,
        booking: text(
            app,
            &format!(
                "SELECT status || ':' || refunded_minor::text FROM bookings WHERE id = '{booking}'"
            ),
        )
        .await,
        runs: count(&app.db.url, "SELECT 1 FROM workflow_runs").await,
        refunds: count(&app.db.url, "SELECT 1 FROM refunds").await,
        sold: text(
            app,
            "SELECT string_agg(sold::text, ',' ORDER BY id) FROM ticket_types",
        )
        .await,
        sandbox_refunds: format!(
            "{} {} {}",
            stats["refunds_by_intent"], stats["refunds_pending_by_intent"], stats["refunds_failed_by_intent"]
        ),
    }
}

/// A one-row, one-column text query.
pub async fn text(app: &TestApp, sql: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        t: Option<String>,
    }
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let row: Row = diesel::sql_query(format!("SELECT ({sql}) AS t"))
        .get_result(&mut conn)
        .await
        .unwrap();
    row.t.unwrap_or_default()
}

pub async fn ticket_status(app: &TestApp, ticket: &str) -> String {
    text(
        app,
        &format!("SELECT status FROM tickets WHERE id = '{ticket}'"),
    )
    .await
}

/// `(status, refunded_minor)` of the booking.
pub async fn booking_money(app: &TestApp, booking: &str) -> (String, i64) {
    let s = text(
        app,
        &format!(
            "SELECT status || ':' || refunded_minor::text FROM bookings WHERE id = '{booking}'"
        ),
    )
    .await;
    let (status, minor) = s.split_once(':').unwrap();
    (status.to_owned(), minor.parse().unwrap())
}

/// Emails of `kind` queued so far.
pub async fn emails(app: &TestApp, kind: &str) -> i64 {
    count(
        &app.db.url,
        &format!("SELECT 1 FROM notifications WHERE kind = '{kind}'"),
    )
    .await
}

/// The QR payload printed on the ticket.
pub async fn qr_payload(app: &TestApp, ticket: &str) -> String {
    text(
        app,
        &format!("SELECT qr_payload FROM tickets WHERE id = '{ticket}'"),
    )
    .await
}

/// The door scans a ticket's QR code.
pub async fn check_in(
    app: &TestApp,
    staff: &TestUser,
    event_id: Uuid,
    payload: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/events/{event_id}/check-in")))
        .header("authorization", staff.bearer())
        .json(&json!({ "qr_payload": payload }))
        .send()
        .await
        .unwrap()
}
