//! Building catalog data for tests the way a client would: over HTTP, as an
//! organizer. Raw-SQL helpers are in the tests that need them.

#![allow(dead_code)] // Each catalog test module uses a different part.

use boxoffice_models::users::Role;
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::TestApp;
use crate::harness::users::TestUser;

/// Sends `body` (if any) as JSON, with `user`'s token (if any).
pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    user: Option<&TestUser>,
    body: Option<Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(user) = user {
        request = request.header("authorization", user.bearer());
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}

/// Expects `status` and returns the JSON body.
pub async fn expect(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("a body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

pub fn id_of(value: &Value) -> Uuid {
    value["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no id in {value}"))
}

/// Merges `overrides` into `base` (top-level keys).
pub fn merged(mut base: Value, overrides: Value) -> Value {
    if let (Some(base), Value::Object(overrides)) = (base.as_object_mut(), overrides) {
        base.extend(overrides);
    }
    base
}

pub fn in_days(days: i64) -> DateTime<Utc> {
    Utc::now() + Duration::days(days)
}

pub async fn organizer(app: &TestApp) -> TestUser {
    app.create_user(&[Role::Organizer]).await
}

pub async fn create_venue(app: &TestApp, user: &TestUser, city: &str) -> Value {
    let body = json!({
        "name": format!("Hall in {city}"),
        "address": "Main street 1",
        "city": city,
        "country": "DE",
        "timezone": "Europe/Berlin",
    });
    expect(
        send(app, Method::POST, "/v1/venues", Some(user), Some(body)).await,
        201,
    )
    .await
}

/// A draft event starting in 30 days, overridable field by field.
pub async fn create_event(app: &TestApp, user: &TestUser, overrides: Value) -> Value {
    let body = merged(
        json!({
            "title": "Test event",
            "description": "An event for tests",
            "category": "music",
            "online": true,
            "currency": "EUR",
            "starts_at": in_days(30),
            "ends_at": in_days(30) + Duration::hours(3),
        }),
        overrides,
    );
    expect(
        send(app, Method::POST, "/v1/events", Some(user), Some(body)).await,
        201,
    )
    .await
}

pub async fn create_ticket_type(
    app: &TestApp,
    user: &TestUser,
    event_id: Uuid,
    overrides: Value,
) -> Value {
    let body = merged(
        json!({"name": "General", "price_minor": 4500, "currency": "EUR", "capacity": 100}),
        overrides,
    );
    let path = format!("/v1/events/{event_id}/ticket-types");
    expect(
        send(app, Method::POST, &path, Some(user), Some(body)).await,
        201,
    )
    .await
}

pub async fn create_coupon(
    app: &TestApp,
    user: &TestUser,
    event_id: Uuid,
    overrides: Value,
) -> Value {
    let body = merged(
        json!({"code": "SAVE10", "kind": "percent", "value": 10}),
        overrides,
    );
    let path = format!("/v1/events/{event_id}/coupons");
    expect(
        send(app, Method::POST, &path, Some(user), Some(body)).await,
        201,
    )
    .await
}

pub async fn publish(app: &TestApp, user: &TestUser, event_id: Uuid) -> Value {
    let path = format!("/v1/events/{event_id}/publish");
    expect(send(app, Method::POST, &path, Some(user), None).await, 200).await
}

/// A published event with one ticket type; returns (event, ticket type).
pub async fn published_event(app: &TestApp, user: &TestUser, overrides: Value) -> (Value, Value) {
    let event = create_event(app, user, overrides).await;
    let ticket_type = create_ticket_type(app, user, id_of(&event), json!({})).await;
    let event = publish(app, user, id_of(&event)).await;
    (event, ticket_type)
}

/// `PATCH /v1/events/{id}` with `If-Match: "<version>"`.
pub async fn patch_event(
    app: &TestApp,
    user: &TestUser,
    event_id: Uuid,
    version: i64,
    body: Value,
) -> Response {
    app.client
        .patch(app.url(&format!("/v1/events/{event_id}")))
        .header("authorization", user.bearer())
        .header("if-match", format!("\"{version}\""))
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

pub async fn get_json(app: &TestApp, path: &str) -> Value {
    expect(send(app, Method::GET, path, None, None).await, 200).await
}
