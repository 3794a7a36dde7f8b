//! Bad input on the checkout routes: always a problem+json 4xx with a stable
//! code, and no run, hold or booking left behind.

use boxoffice_models::users::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use super::fixtures::{count, event_on_sale};
use crate::harness::{TestApp, assert_problem};

#[tokio::test]
async fn bad_checkout_requests_are_refused_before_any_run_starts() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, 10)], 15).await;
    let other = event_on_sale(&app.db.url, organizer.id, &[(1000, 10)], 15).await;
    let tt = event.ticket_types[0];
    let huge = "x".repeat(1_000_000);

    let raw = |body: &'static str| {
        app.client
            .post(app.url("/v1/checkouts"))
            .header("idempotency-key", Uuid::new_v4().to_string())
            .header("authorization", buyer.bearer())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_problem(raw("{not json").await.unwrap(), 400, "malformed_json").await;
    assert_problem(
        raw(r#"{"event_id": 5, "items": []}"#).await.unwrap(),
        422,
        "invalid_body",
    )
    .await;
    assert_problem(
        raw(r#"{"event_id": "not-a-uuid", "items": []}"#)
            .await
            .unwrap(),
        422,
        "invalid_body",
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/checkouts"))
        .header("idempotency-key", Uuid::new_v4().to_string())
        .header("authorization", buyer.bearer())
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_json").await;
    let r = app
        .client
        .post(app.url("/v1/checkouts"))
        .header("idempotency-key", Uuid::new_v4().to_string())
        .header("authorization", buyer.bearer())
        .body("x")
        .send()
        .await
        .unwrap();
    assert_problem(r, 415, "unsupported_media_type").await;

    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({ "event_id": event.event_id, "items": [] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "event_id": event.event_id, "items": [{ "ticket_type_id": tt, "quantity": 0 }] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "event_id": event.event_id, "items": [{ "ticket_type_id": tt, "quantity": -3 }] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "event_id": event.event_id, "items": [{ "ticket_type_id": tt, "quantity": 11 }] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "event_id": event.event_id, "items": [{ "ticket_type_id": tt, "quantity": 2147483648i64 }] }),
            422,
            "invalid_body",
        ),
        (
            json!({ "event_id": event.event_id, "items": [{ "ticket_type_id": tt, "quantity": 1 }, { "ticket_type_id": tt, "quantity": 1 }] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "event_id": event.event_id, "items": [{ "ticket_type_id": other.ticket_types[0], "quantity": 1 }] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "event_id": event.event_id, "items": [{ "ticket_type_id": tt, "quantity": 1 }], "coupon_code": huge }),
            422,
            "validation_failed",
        ),
        (
            json!({ "event_id": event.event_id, "items": [{ "ticket_type_id": tt, "quantity": 1 }], "surprise": true }),
            422,
            "invalid_body",
        ),
        (
            json!({ "event_id": Uuid::now_v7(), "items": [{ "ticket_type_id": tt, "quantity": 1 }] }),
            404,
            "not_found",
        ),
        (
            json!({ "event_id": event.event_id, "items": (0..21).map(|_| json!({ "ticket_type_id": Uuid::now_v7(), "quantity": 1 })).collect::<Vec<_>>() }),
            422,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        let r = app
            .client
            .post(app.url("/v1/checkouts"))
            .header("idempotency-key", Uuid::new_v4().to_string())
            .header("authorization", buyer.bearer())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(r, status, code).await;
    }

    // A cancelled event sells nothing.
    let mut conn = app.raw_conn().await;
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        &format!(
            "UPDATE events SET status = 'cancelled', cancelled_at = now() WHERE id = '{}'",
            other.event_id
        ),
    )
    .await
    .unwrap();
    let body = json!({ "event_id": other.event_id, "items": [{ "ticket_type_id": other.ticket_types[0], "quantity": 1 }] });
    let r = app
        .client
        .post(app.url("/v1/checkouts"))
        .header("idempotency-key", Uuid::new_v4().to_string())
        .header("authorization", buyer.bearer())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(r, 409, "event_cancelled").await;

    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM workflow_runs").await,
        0,
        "no bad request started a run"
    );
    assert_eq!(count(&app.db.url, "SELECT 1 FROM holds").await, 0);
}

#[tokio::test]
async fn bad_status_and_booking_requests_are_problems() {
    let app = TestApp::spawn().await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let get = |path: String| {
        app.client
            .get(app.url(&path))
            .header("authorization", buyer.bearer())
            .send()
    };
    assert_problem(
        get("/v1/workflows/not-a-uuid".into()).await.unwrap(),
        400,
        "invalid_path",
    )
    .await;
    assert_problem(
        get(format!("/v1/workflows/{}", Uuid::now_v7()))
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_problem(
        get(format!("/v1/workflows/{}?wait=abc", Uuid::now_v7()))
            .await
            .unwrap(),
        400,
        "invalid_query",
    )
    .await;
    assert_problem(
        get(format!("/v1/workflows/{}?wait=-1", Uuid::now_v7()))
            .await
            .unwrap(),
        400,
        "invalid_query",
    )
    .await;
    assert_problem(
        get(format!("/v1/workflows/{}?colour=red", Uuid::now_v7()))
            .await
            .unwrap(),
        400,
        "invalid_query",
    )
    .await;
    assert_problem(
        get("/v1/bookings/123".into()).await.unwrap(),
        400,
        "invalid_path",
    )
    .await;
    assert_problem(
        get(format!("/v1/bookings/{}/tickets", Uuid::now_v7()))
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_problem(
        get("/v1/bookings?limit=0".into()).await.unwrap(),
        400,
        "invalid_query",
    )
    .await;
    assert_problem(
        get("/v1/bookings?limit=1000".into()).await.unwrap(),
        400,
        "invalid_query",
    )
    .await;
    assert_problem(
        get("/v1/bookings?cursor=%%%".into()).await.unwrap(),
        400,
        "invalid_cursor",
    )
    .await;
    let r = app
        .client
        .delete(app.url("/v1/checkouts"))
        .header("authorization", buyer.bearer())
        .send()
        .await
        .unwrap();
    assert_problem(r, 405, "method_not_allowed").await;
}
