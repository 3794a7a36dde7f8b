//! `If-Match` on event, ticket type and coupon updates, per RFC 9110
//! §13.1.1: a well-formed tag that names another version is 412, `*` and a
//! list naming the current version match, a malformed header is 400.

use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog_fixtures::{
    create_coupon, create_event, create_ticket_type, expect, id_of, organizer,
};
use crate::harness::users::TestUser;
use crate::harness::{TestApp, assert_problem};

/// PATCH `path` with `body` and, if given, `If-Match: tag`.
async fn patch(
    app: &TestApp,
    user: &TestUser,
    path: &str,
    tag: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(Method::PATCH, app.url(path))
        .header("authorization", user.bearer())
        .json(&body);
    if let Some(tag) = tag {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap()
}

/// The same sequence against one resource at version 1: each update that
/// matches moves the version by one; the others change nothing.
async fn conditional_updates(app: &TestApp, user: &TestUser, path: &str, change: fn(u32) -> Value) {
    // "0" is well-formed and names no version the resource ever had.
    let p = assert_problem(
        patch(app, user, path, Some("\"0\""), change(1)).await,
        412,
        "version_mismatch",
    )
    .await;
    assert_eq!(p["current_version"], 1, "{path}");

    let r = patch(app, user, path, Some("\"1\""), change(2)).await;
    assert_eq!(r.headers()["etag"], "\"2\"", "{path}");
    assert_eq!(expect(r, 200).await["version"], 2, "{path}");

    // The version read before that change is stale now.
    let p = assert_problem(
        patch(app, user, path, Some("\"1\""), change(3)).await,
        412,
        "version_mismatch",
    )
    .await;
    assert_eq!(p["current_version"], 2, "{path}");
    // A weak tag never matches, even of the current version.
    assert_problem(
        patch(app, user, path, Some("W/\"2\""), change(3)).await,
        412,
        "version_mismatch",
    )
    .await;
    // A list matches when any of its tags does, and only then.
    assert_problem(
        patch(app, user, path, Some("\"1\", \"3\""), change(3)).await,
        412,
        "version_mismatch",
    )
    .await;
    let r = patch(app, user, path, Some("\"1\", \"2\""), change(3)).await;
    assert_eq!(expect(r, 200).await["version"], 3, "{path}");
    // `*` matches whatever the current version is.
    let r = patch(app, user, path, Some("*"), change(4)).await;
    assert_eq!(expect(r, 200).await["version"], 4, "{path}");
    // Malformed: 400, nothing written.
    for bad in ["4", "\"4", "*, \"4\"", "\"4\" \"5\""] {
        assert_problem(
            patch(app, user, path, Some(bad), change(9)).await,
            400,
            "invalid_if_match",
        )
        .await;
    }
    let r = patch(app, user, path, Some("\"4\""), change(5)).await;
    assert_eq!(
        expect(r, 200).await["version"],
        5,
        "{path}: nothing else was written"
    );
}

#[tokio::test]
async fn if_match_on_events_ticket_types_and_coupons() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let event = id_of(&create_event(&app, &alice, json!({})).await);
    let ticket_type = create_ticket_type(&app, &alice, event, json!({})).await;
    let coupon = create_coupon(&app, &alice, event, json!({})).await;
    assert_eq!(ticket_type["version"], 1);
    assert_eq!(coupon["version"], 1);
    let ticket_type = id_of(&ticket_type);
    let coupon = id_of(&coupon);

    conditional_updates(
        &app,
        &alice,
        &format!("/v1/events/{event}"),
        |n| json!({ "title": format!("Title {n}") }),
    )
    .await;
    conditional_updates(
        &app,
        &alice,
        &format!("/v1/events/{event}/ticket-types/{ticket_type}"),
        |n| json!({ "name": format!("Tier {n}") }),
    )
    .await;
    conditional_updates(
        &app,
        &alice,
        &format!("/v1/events/{event}/coupons/{coupon}"),
        |n| json!({ "value": n }),
    )
    .await;

    // Events require the header; ticket types and coupons take it when sent.
    assert_problem(
        patch(
            &app,
            &alice,
            &format!("/v1/events/{event}"),
            None,
            json!({"title": "x"}),
        )
        .await,
        428,
        "precondition_required",
    )
    .await;
    let r = patch(
        &app,
        &alice,
        &format!("/v1/events/{event}/ticket-types/{ticket_type}"),
        None,
        json!({"name": "Tier 6"}),
    )
    .await;
    assert_eq!(expect(r, 200).await["version"], 6);
    let r = patch(
        &app,
        &alice,
        &format!("/v1/events/{event}/coupons/{coupon}"),
        None,
        json!({"value": 6}),
    )
    .await;
    assert_eq!(expect(r, 200).await["version"], 6);
}
