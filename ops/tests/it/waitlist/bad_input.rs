//! Bad input on every waitlist route gets a problem document with a stable
//! code, never a 500; another participant's entry is a 404.

use boxoffice_models::users::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use super::support::{join, sql};
use crate::checkout_support::event_on_sale;
use crate::harness::{TestApp, assert_problem, counts_moved_sql};

#[tokio::test]
async fn every_waitlist_route_answers_bad_input_with_a_problem() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let other_organizer = app.create_user(&[Role::Organizer]).await;
    let alice = app.create_user(&[Role::Participant]).await;
    let bob = app.create_user(&[Role::Participant]).await;
    // Two types: the first sold out, the second with tickets left.
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 3), (4500, 3)], 15).await;
    let (full, open) = (event.ticket_types[0], event.ticket_types[1]);
    sql(&app, &counts_moved_sql(full, 3, 0)).await;
    let eid = event.event_id;

    let r = join(
        &app,
        &alice,
        eid,
        json!({ "ticket_type_id": full, "quantity": 2 }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let entry: Value = r.json().await.unwrap();
    assert_eq!(entry["status"], "waiting");
    assert_eq!(entry["position"], 0);
    let entry_id = entry["id"].as_str().unwrap().to_owned();
    let r = join(
        &app,
        &bob,
        eid,
        json!({ "ticket_type_id": full, "quantity": 1 }),
    )
    .await;
    let bobs: Value = r.json().await.unwrap();
    assert_eq!(bobs["position"], 2, "two units wait ahead of bob");

    // Joining.
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({ "ticket_type_id": full, "quantity": 0 }),
            422,
            "validation_failed",
        ),
        (
            json!({ "ticket_type_id": full, "quantity": 11 }),
            422,
            "validation_failed",
        ),
        (
            json!({ "ticket_type_id": full, "quantity": -1 }),
            422,
            "validation_failed",
        ),
        (
            json!({ "ticket_type_id": full, "quantity": 2147483648i64 }),
            422,
            "invalid_body",
        ),
        (json!({ "ticket_type_id": full }), 422, "invalid_body"),
        (
            json!({ "ticket_type_id": full, "quantity": 1, "extra": 1 }),
            422,
            "invalid_body",
        ),
        (
            json!({ "ticket_type_id": Uuid::now_v7(), "quantity": 1 }),
            404,
            "not_found",
        ),
        (
            json!({ "ticket_type_id": open, "quantity": 2 }),
            409,
            "tickets_available",
        ),
        (
            json!({ "ticket_type_id": full, "quantity": 1 }),
            409,
            "already_waiting",
        ),
    ];
    for (body, status, code) in cases {
        let r = join(&app, &alice, eid, body.clone()).await;
        let problem = assert_problem(r, status, code).await;
        if code == "tickets_available" {
            assert_eq!(problem["available"], 3, "{body}");
        }
    }
    let r = join(
        &app,
        &alice,
        Uuid::now_v7(),
        json!({ "ticket_type_id": full, "quantity": 1 }),
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    let r = app
        .client
        .post(app.url("/v1/events/not-a-uuid/waitlist"))
        .header("authorization", alice.bearer())
        .json(&json!({ "ticket_type_id": full, "quantity": 1 }))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_path").await;
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{eid}/waitlist")))
        .header("authorization", alice.bearer())
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_json").await;
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{eid}/waitlist")))
        .json(&json!({ "ticket_type_id": full, "quantity": 1 }))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;

    // Someone else's entry is not found, whatever is asked of it.
    for (method, path) in [
        ("DELETE", format!("/v1/waitlist/{entry_id}")),
        ("POST", format!("/v1/waitlist/{entry_id}/accept")),
        ("POST", format!("/v1/waitlist/{entry_id}/decline")),
        ("POST", format!("/v1/waitlist/{}/accept", Uuid::now_v7())),
    ] {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .header("authorization", bob.bearer())
            .header("idempotency-key", Uuid::new_v4().to_string())
            .send()
            .await
            .unwrap();
        assert_problem(r, 404, "not_found").await;
    }
    // An entry that waits has no offer to answer.
    for action in ["accept", "decline"] {
        let r = app
            .client
            .post(app.url(&format!("/v1/waitlist/{entry_id}/{action}")))
            .header("authorization", alice.bearer())
            .header("idempotency-key", Uuid::new_v4().to_string())
            .send()
            .await
            .unwrap();
        assert_problem(r, 409, "not_offered").await;
    }
    let r = app
        .client
        .post(app.url(&format!("/v1/waitlist/{entry_id}/accept")))
        .header("authorization", alice.bearer())
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "idempotency_key_required").await;
    let r = app
        .client
        .delete(app.url("/v1/waitlist/123"))
        .header("authorization", alice.bearer())
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_path").await;

    // The organizer's list and tiers.
    let list = |who: &crate::harness::users::TestUser, query: &str| {
        app.client
            .get(app.url(&format!("/v1/events/{eid}/waitlist{query}")))
            .header("authorization", who.bearer())
            .send()
    };
    assert_problem(list(&alice, "").await.unwrap(), 404, "not_found").await;
    assert_problem(list(&other_organizer, "").await.unwrap(), 404, "not_found").await;
    assert_problem(
        list(&organizer, "?cursor=zzz").await.unwrap(),
        400,
        "invalid_cursor",
    )
    .await;
    assert_problem(
        list(&organizer, "?status=gone").await.unwrap(),
        400,
        "invalid_query",
    )
    .await;
    assert_problem(
        list(&organizer, "?limit=0").await.unwrap(),
        400,
        "invalid_query",
    )
    .await;
    let page: Value = list(&organizer, "?limit=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], entry_id.as_str());
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let next: Value = list(&organizer, &format!("?limit=1&cursor={cursor}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["items"][0]["id"], bobs["id"]);
    assert!(next["next_cursor"].is_null());

    let patch = |who: &crate::harness::users::TestUser, entry: String, body: Value| {
        app.client
            .patch(app.url(&format!("/v1/events/{eid}/waitlist/{entry}")))
            .header("authorization", who.bearer())
            .json(&body)
            .send()
    };
    let bob_entry = bobs["id"].as_str().unwrap().to_owned();
    let r = patch(&organizer, bob_entry.clone(), json!({ "priority": "gold" }))
        .await
        .unwrap();
    assert_problem(r, 422, "invalid_body").await;
    let r = patch(&organizer, bob_entry.clone(), json!({}))
        .await
        .unwrap();
    assert_problem(r, 422, "invalid_body").await;
    let r = patch(
        &organizer,
        Uuid::now_v7().to_string(),
        json!({ "priority": "vip" }),
    )
    .await
    .unwrap();
    assert_problem(r, 404, "not_found").await;
    let r = patch(
        &other_organizer,
        bob_entry.clone(),
        json!({ "priority": "vip" }),
    )
    .await
    .unwrap();
    assert_problem(r, 404, "not_found").await;
    let r = patch(&organizer, bob_entry.clone(), json!({ "priority": "vip" }))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first: Value = list(&organizer, "").await.unwrap().json().await.unwrap();
    assert_eq!(first["items"][0]["id"], bob_entry.as_str(), "vip first");

    // The event's waitlist settings.
    let r = app
        .client
        .patch(app.url(&format!("/v1/events/{eid}")))
        .header("authorization", organizer.bearer())
        .header("if-match", "*")
        .json(&json!({ "waitlist_offer_minutes": 1 }))
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, "validation_failed").await;
    let r = app
        .client
        .patch(app.url(&format!("/v1/events/{eid}")))
        .header("authorization", organizer.bearer())
        .header("if-match", "*")
        .json(&json!({ "waitlist_enabled": false, "waitlist_offer_minutes": 60 }))
        .send()
        .await
        .unwrap();
    let event_view: Value = r.json().await.unwrap();
    assert_eq!(event_view["waitlist_enabled"], false, "{event_view}");
    assert_eq!(event_view["waitlist_offer_minutes"], 60);
    let carol = app.create_user(&[Role::Participant]).await;
    let r = join(
        &app,
        &carol,
        eid,
        json!({ "ticket_type_id": full, "quantity": 1 }),
    )
    .await;
    assert_problem(r, 409, "waitlist_disabled").await;

    // Leaving: once, then the entry is no longer on the waitlist.
    let leave = || {
        app.client
            .delete(app.url(&format!("/v1/waitlist/{entry_id}")))
            .header("authorization", alice.bearer())
            .send()
    };
    assert_eq!(leave().await.unwrap().status(), 204);
    assert_problem(leave().await.unwrap(), 409, "entry_not_active").await;
    let mine: Value = app
        .client
        .get(app.url("/v1/me/waitlist"))
        .header("authorization", alice.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"][0]["status"], "left");
    let r = app
        .client
        .get(app.url("/v1/me/waitlist"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
}
