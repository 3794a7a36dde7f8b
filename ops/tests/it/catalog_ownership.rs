//! Issue point 2: organizers act only on their own events (another organizer's
//! event is a 404, whatever the action), admins act on all, participants and
//! anonymous callers can't manage anything (403 / 401).

use boxoffice_models::users::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog_fixtures::*;
use crate::harness::{TestApp, assert_problem};

#[tokio::test]
async fn another_organizer_can_neither_see_nor_touch_a_draft() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let bob = organizer(&app).await;

    let event = create_event(&app, &alice, json!({"title": "Alice's draft"})).await;
    let e = id_of(&event);
    let tt = id_of(&create_ticket_type(&app, &alice, e, json!({})).await);
    let coupon = id_of(&create_coupon(&app, &alice, e, json!({})).await);

    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/events/{e}"), None),
        (
            Method::PATCH,
            format!("/v1/events/{e}"),
            Some(json!({"title": "Bob's now"})),
        ),
        (Method::POST, format!("/v1/events/{e}/publish"), None),
        (Method::POST, format!("/v1/events/{e}/cancel"), None),
        (Method::DELETE, format!("/v1/events/{e}"), None),
        (
            Method::POST,
            format!("/v1/events/{e}/ticket-types"),
            Some(json!({"name": "Bob", "price_minor": 1, "capacity": 1})),
        ),
        (
            Method::PATCH,
            format!("/v1/events/{e}/ticket-types/{tt}"),
            Some(json!({"capacity": 1})),
        ),
        (
            Method::DELETE,
            format!("/v1/events/{e}/ticket-types/{tt}"),
            None,
        ),
        (Method::GET, format!("/v1/events/{e}/coupons"), None),
        (
            Method::POST,
            format!("/v1/events/{e}/coupons"),
            Some(json!({"code": "BOB", "kind": "percent", "value": 100})),
        ),
        (
            Method::PATCH,
            format!("/v1/events/{e}/coupons/{coupon}"),
            Some(json!({"value": 100})),
        ),
        (
            Method::DELETE,
            format!("/v1/events/{e}/coupons/{coupon}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/events/{e}/coupons/validate"),
            Some(json!({"code": "SAVE10", "items": [{"ticket_type_id": tt, "quantity": 1}]})),
        ),
    ];
    for (method, path, body) in &attempts {
        let mut request = app
            .client
            .request(method.clone(), app.url(path))
            .header("authorization", bob.bearer());
        if method == Method::PATCH && path.ends_with(&e.to_string()) {
            request = request.header("if-match", "\"1\"");
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            404,
            "{method} {path} as another organizer"
        );
        assert_problem(response, 404, "not_found").await;
    }
    // Anonymous callers don't see the draft either, and Bob's list does not have it.
    assert_problem(
        send(&app, Method::GET, &format!("/v1/events/{e}"), None, None).await,
        404,
        "not_found",
    )
    .await;
    let bobs = expect(
        send(&app, Method::GET, "/v1/organizer/events", Some(&bob), None).await,
        200,
    )
    .await;
    assert_eq!(bobs["items"], json!([]));

    // Nothing Bob tried left a trace.
    let seen = expect(
        send(
            &app,
            Method::GET,
            &format!("/v1/events/{e}"),
            Some(&alice),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(seen["title"], "Alice's draft");
    assert_eq!(seen["status"], "draft");
    assert_eq!(seen["version"], 1);
    assert_eq!(seen["ticket_types"].as_array().unwrap().len(), 1);
    assert_eq!(seen["ticket_types"][0]["capacity"], 100);
    let coupons = expect(
        send(
            &app,
            Method::GET,
            &format!("/v1/events/{e}/coupons"),
            Some(&alice),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(coupons.as_array().unwrap().len(), 1);
    assert_eq!(coupons[0]["value"], 10);
    let alices = expect(
        send(
            &app,
            Method::GET,
            "/v1/organizer/events",
            Some(&alice),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(alices["items"][0]["id"], e.to_string());
}

#[tokio::test]
async fn a_published_event_is_public_but_still_only_its_organizers() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let bob = organizer(&app).await;
    let (event, ticket_type) = published_event(&app, &alice, json!({"title": "Open air"})).await;
    let (e, tt) = (id_of(&event), id_of(&ticket_type));

    // Everyone may read it; only its managers see the sales figures.
    let public = get_json(&app, &format!("/v1/events/{e}")).await;
    assert_eq!(public["title"], "Open air");
    assert_eq!(public["ticket_types"][0]["available"], 100);
    assert!(public["ticket_types"][0].get("sold").is_none());
    let as_bob = expect(
        send(
            &app,
            Method::GET,
            &format!("/v1/events/{e}"),
            Some(&bob),
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(as_bob["ticket_types"][0].get("sold").is_none());
    let as_alice = expect(
        send(
            &app,
            Method::GET,
            &format!("/v1/events/{e}"),
            Some(&alice),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(as_alice["ticket_types"][0]["sold"], 0);

    // Bob can't change, cancel or delete what he can see.
    let r = patch_event(&app, &bob, e, 2, json!({"title": "Bob's"})).await;
    assert_problem(r, 404, "not_found").await;
    for (method, path) in [
        (Method::POST, format!("/v1/events/{e}/cancel")),
        (Method::DELETE, format!("/v1/events/{e}")),
        (Method::DELETE, format!("/v1/events/{e}/ticket-types/{tt}")),
    ] {
        assert_problem(
            send(&app, method, &path, Some(&bob), None).await,
            404,
            "not_found",
        )
        .await;
    }
    let r = send(
        &app,
        Method::PATCH,
        &format!("/v1/events/{e}/ticket-types/{tt}"),
        Some(&bob),
        Some(json!({"price_minor": 1})),
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    assert_eq!(
        get_json(&app, &format!("/v1/events/{e}")).await["ticket_types"][0]["price_minor"],
        4500
    );
}

#[tokio::test]
async fn participants_and_anonymous_callers_cannot_manage_the_catalog() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let participant = app.create_user(&[Role::Participant]).await;
    let venue = create_venue(&app, &alice, "Berlin").await;
    let (event, ticket_type) = published_event(&app, &alice, json!({})).await;
    let (e, tt, v) = (id_of(&event), id_of(&ticket_type), id_of(&venue));

    let event_body = json!({
        "title": "Mine", "category": "music", "online": true,
        "starts_at": in_days(3), "ends_at": in_days(4),
    });
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/v1/events".into(), Some(event_body.clone())),
        (
            Method::POST,
            "/v1/venues".into(),
            Some(
                json!({"name": "x", "address": "y", "city": "z", "country": "DE", "timezone": "UTC"}),
            ),
        ),
        (
            Method::PATCH,
            format!("/v1/venues/{v}"),
            Some(json!({"name": "Mine"})),
        ),
        (Method::DELETE, format!("/v1/venues/{v}"), None),
        (Method::POST, format!("/v1/events/{e}/cancel"), None),
        (
            Method::POST,
            format!("/v1/events/{e}/ticket-types"),
            Some(json!({"name": "Free", "price_minor": 0, "capacity": 5})),
        ),
        (
            Method::DELETE,
            format!("/v1/events/{e}/ticket-types/{tt}"),
            None,
        ),
        (Method::GET, format!("/v1/events/{e}/coupons"), None),
        (
            Method::POST,
            format!("/v1/events/{e}/coupons"),
            Some(json!({"code": "FREE", "kind": "percent", "value": 100})),
        ),
        (Method::GET, "/v1/organizer/events".into(), None),
    ];
    for (method, path, body) in &writes {
        let r = send(&app, method.clone(), path, Some(&participant), body.clone()).await;
        assert_problem(r, 403, "forbidden").await;
        let r = send(&app, method.clone(), path, None, body.clone()).await;
        assert_problem(r, 401, "unauthorized").await;
    }
    // Nothing changed.
    let seen = get_json(&app, &format!("/v1/events/{e}")).await;
    assert_eq!(seen["status"], "published");
    assert_eq!(seen["ticket_types"].as_array().unwrap().len(), 1);
    assert_eq!(
        get_json(&app, &format!("/v1/venues/{v}")).await["name"],
        venue["name"]
    );
}

#[tokio::test]
async fn admins_manage_every_event_and_venue_creators_their_venues() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let bob = organizer(&app).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let event = create_event(&app, &alice, json!({})).await;
    let e = id_of(&event);

    let r = patch_event(&app, &admin, e, 1, json!({"title": "Fixed by an admin"})).await;
    assert_eq!(expect(r, 200).await["title"], "Fixed by an admin");
    create_ticket_type(&app, &admin, e, json!({})).await;
    publish(&app, &admin, e).await;
    let all = expect(
        send(
            &app,
            Method::GET,
            "/v1/organizer/events",
            Some(&admin),
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == e.to_string())
    );
    // An organizer may only list their own.
    let r = send(
        &app,
        Method::GET,
        &format!("/v1/organizer/events?organizer_id={}", alice.id),
        Some(&bob),
        None,
    )
    .await;
    assert_problem(r, 403, "forbidden").await;

    // Venues are shared for reading; only the creator (or an admin) changes one.
    let venue = create_venue(&app, &alice, "Hamburg").await;
    let v = id_of(&venue);
    let r = send(
        &app,
        Method::PATCH,
        &format!("/v1/venues/{v}"),
        Some(&bob),
        Some(json!({"name": "Bob's"})),
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    let r = send(
        &app,
        Method::DELETE,
        &format!("/v1/venues/{v}"),
        Some(&bob),
        None,
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    let r = send(
        &app,
        Method::PATCH,
        &format!("/v1/venues/{v}"),
        Some(&admin),
        Some(json!({"name": "Renamed"})),
    )
    .await;
    assert_eq!(expect(r, 200).await["name"], "Renamed");
    // Bob may still hold his own event there.
    create_event(&app, &bob, json!({"venue_id": v, "online": false})).await;
    let r = send(
        &app,
        Method::DELETE,
        &format!("/v1/venues/{v}"),
        Some(&alice),
        None,
    )
    .await;
    assert_problem(r, 409, "venue_in_use").await;
}
