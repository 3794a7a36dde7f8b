//! `GET /v1/me/notifications` and `POST /v1/me/notifications/{id}/read`: each
//! participant reads back their own notifications, newest first, page by
//! page, and nobody else's.

use std::time::Duration;

use boxoffice_models::notifications::{self, NewNotification};
use boxoffice_models::users::Role;
use diesel_async::AsyncPgConnection;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog_fixtures::send;
use crate::email::notification;
use crate::harness::users::TestUser;
use crate::harness::wait;
use crate::harness::{TestApp, assert_problem};

async fn queue(conn: &mut AsyncPgConnection, user: Option<&TestUser>, subject: &str) -> Uuid {
    let empty = json!({});
    notifications::enqueue(
        conn,
        NewNotification {
            dedupe_key: &format!("list-test:{}", Uuid::new_v4()),
            kind: "booking_confirmation",
            recipient: notifications::Recipient::Address(
                user.map_or("nobody@example.com", |u| u.email.as_str()),
            ),
            subject,
            body_text: &format!("Body of {subject}"),
            user_id: user.map(|u| u.id),
            context: &empty,
        },
    )
    .await
    .unwrap()
    .expect("a new notification")
}

async fn page(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let r = send(
        app,
        Method::GET,
        &format!("/v1/me/notifications{query}"),
        Some(user),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn subjects(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["subject"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn participants_list_and_read_their_own_notifications_and_nobody_elses() {
    let app = TestApp::spawn().await;
    let ada = app.create_user(&[Role::Participant]).await;
    let bob = app.create_user(&[Role::Participant]).await;
    let mut conn = app.raw_conn().await;
    let first = queue(&mut conn, Some(&ada), "first").await;
    queue(&mut conn, Some(&bob), "bob's").await;
    queue(&mut conn, None, "to an address without an account").await;
    queue(&mut conn, Some(&ada), "second").await;
    let third = queue(&mut conn, Some(&ada), "third").await;

    // Unsent yet: listed as pending.
    let all = page(&app, &ada, "").await;
    assert_eq!(subjects(&all), ["third", "second", "first"]);
    assert_eq!(all["items"][0]["status"], "pending");
    assert_eq!(all["items"][0]["body_text"], "Body of third");
    assert_eq!(all["items"][0]["kind"], "booking_confirmation");

    // Once sent, the list says so.
    app.start_workers("http://127.0.0.1:1");
    wait::value(
        Duration::from_secs(30),
        "the notifications to be sent",
        async || (notification(&mut conn, third).await.status == "sent").then_some(()),
    )
    .await;
    let all = page(&app, &ada, "").await;
    assert_eq!(all["items"][0]["status"], "sent");
    assert!(all["items"][0]["sent_at"].is_string(), "{all}");
    assert_eq!(all["next_cursor"], Value::Null);

    // Pages, newest first.
    let one = page(&app, &ada, "?limit=2").await;
    assert_eq!(subjects(&one), ["third", "second"]);
    let cursor = one["next_cursor"].as_str().expect("a next page").to_owned();
    let two = page(&app, &ada, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(subjects(&two), ["first"]);
    assert_eq!(two["next_cursor"], Value::Null);
    assert_eq!(subjects(&page(&app, &bob, "").await), ["bob's"]);

    // Bob can't read (or mark) Ada's: the same 404 as for no notification.
    let path = format!("/v1/me/notifications/{first}/read");
    let r = send(&app, Method::POST, &path, Some(&bob), None).await;
    assert_problem(r, 404, "not_found").await;
    let missing = format!("/v1/me/notifications/{}/read", Uuid::now_v7());
    let r = send(&app, Method::POST, &missing, Some(&ada), None).await;
    assert_problem(r, 404, "not_found").await;
    assert_eq!(notification(&mut conn, first).await.read_at, None);

    // Ada reads hers; reading again keeps the first time.
    let r = send(&app, Method::POST, &path, Some(&ada), None).await;
    assert_eq!(r.status(), 200);
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["id"], json!(first));
    let read_at = read["read_at"].as_str().expect("read_at set").to_owned();
    let again: Value = send(&app, Method::POST, &path, Some(&ada), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["read_at"].as_str(), Some(read_at.as_str()));
    let all = page(&app, &ada, "").await;
    assert_eq!(all["items"][2]["read_at"].as_str(), Some(read_at.as_str()));
    assert_eq!(all["items"][0]["read_at"], Value::Null);

    // Signed-out callers and bad cursors get problems.
    let r = send(&app, Method::GET, "/v1/me/notifications", None, None).await;
    assert_problem(r, 401, "unauthorized").await;
    let r = send(
        &app,
        Method::GET,
        "/v1/me/notifications?cursor=nope",
        Some(&ada),
        None,
    )
    .await;
    assert_problem(r, 400, "invalid_cursor").await;
    let r = send(
        &app,
        Method::GET,
        "/v1/me/notifications?limit=0",
        Some(&ada),
        None,
    )
    .await;
    assert_problem(r, 400, "invalid_query").await;
}
