//! The organizer API's rules: publishing, cancelling, deleting drafts, ticket
//! types with sales, one currency per event, coupons and their validation, the
//! organizer's sales figures, and the demo catalog of `boxoffice up`.

use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog_fixtures::*;
use crate::harness::{TestApp, assert_problem, counts_moved_sql};

#[tokio::test]
async fn publishing_needs_ticket_types_a_future_start_and_a_place() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let e = id_of(&create_event(&app, &alice, json!({"online": false})).await);
    let publish_path = format!("/v1/events/{e}/publish");

    let r = send(&app, Method::POST, &publish_path, Some(&alice), None).await;
    let body = assert_problem(r, 409, "cannot_publish").await;
    assert_eq!(body["reasons"], json!(["no_ticket_types", "no_location"]));

    create_ticket_type(&app, &alice, e, json!({})).await;
    let mut conn = app.raw_conn().await;
    diesel::sql_query(format!(
        "UPDATE events SET starts_at = now() - interval '1 hour', ends_at = now() + interval '1 hour' WHERE id = '{e}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let r = send(&app, Method::POST, &publish_path, Some(&alice), None).await;
    assert_eq!(
        assert_problem(r, 409, "cannot_publish").await["reasons"],
        json!(["starts_in_past", "no_location"])
    );

    let venue = id_of(&create_venue(&app, &alice, "Leipzig").await);
    let r = patch_event(
        &app,
        &alice,
        e,
        1,
        json!({"venue_id": venue, "starts_at": in_days(5), "ends_at": in_days(6)}),
    )
    .await;
    expect(r, 200).await;
    let published = publish(&app, &alice, e).await;
    assert_eq!(published["status"], "published");
    assert_eq!(published["version"], 3);
    assert!(published["published_at"].is_string());
    assert_eq!(published["venue"]["city"], "Leipzig");

    // Published: can't publish again, delete, or lose its place or its last ticket type.
    let r = send(&app, Method::POST, &publish_path, Some(&alice), None).await;
    assert_eq!(
        assert_problem(r, 409, "cannot_publish").await["reasons"],
        json!(["not_draft"])
    );
    let r = send(
        &app,
        Method::DELETE,
        &format!("/v1/events/{e}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(
        assert_problem(r, 409, "event_not_draft").await["event_status"],
        "published"
    );
    let r = patch_event(&app, &alice, e, 3, json!({"venue_id": null})).await;
    assert_eq!(
        assert_problem(r, 422, "validation_failed").await["field"],
        "venue_id"
    );
    let tt = published["ticket_types"][0]["id"].as_str().unwrap();
    let r = send(
        &app,
        Method::DELETE,
        &format!("/v1/events/{e}/ticket-types/{tt}"),
        Some(&alice),
        None,
    )
    .await;
    assert_problem(r, 409, "last_ticket_type").await;
}

#[tokio::test]
async fn cancelled_events_leave_the_listing_and_stop_changing() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let (event, ticket_type) =
        published_event(&app, &alice, json!({"title": "Soon cancelled"})).await;
    let (e, tt) = (id_of(&event), id_of(&ticket_type));
    assert_eq!(
        get_json(&app, "/v1/events").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let cancelled = expect(
        send(
            &app,
            Method::POST,
            &format!("/v1/events/{e}/cancel"),
            Some(&alice),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["cancelled_at"].is_string());
    assert_eq!(get_json(&app, "/v1/events").await["items"], json!([]));
    // Still readable, so ticket holders learn of it.
    assert_eq!(
        get_json(&app, &format!("/v1/events/{e}")).await["status"],
        "cancelled"
    );

    let r = send(
        &app,
        Method::POST,
        &format!("/v1/events/{e}/cancel"),
        Some(&alice),
        None,
    )
    .await;
    assert_problem(r, 409, "event_not_published").await;
    let r = patch_event(
        &app,
        &alice,
        e,
        cancelled["version"].as_i64().unwrap(),
        json!({"title": "x"}),
    )
    .await;
    assert_problem(r, 409, "event_not_editable").await;
    let r = send(
        &app,
        Method::PATCH,
        &format!("/v1/events/{e}/ticket-types/{tt}"),
        Some(&alice),
        Some(json!({"capacity": 5})),
    )
    .await;
    assert_problem(r, 409, "event_not_editable").await;
    let r = send(
        &app,
        Method::POST,
        &format!("/v1/events/{e}/coupons"),
        Some(&alice),
        Some(json!({"code": "LATE", "kind": "percent", "value": 5})),
    )
    .await;
    assert_problem(r, 409, "event_not_editable").await;

    // A draft is deleted, not cancelled, and takes its ticket types and coupons along.
    let draft = id_of(&create_event(&app, &alice, json!({})).await);
    let draft_tt = id_of(&create_ticket_type(&app, &alice, draft, json!({})).await);
    create_coupon(&app, &alice, draft, json!({"ticket_type_ids": [draft_tt]})).await;
    let r = send(
        &app,
        Method::POST,
        &format!("/v1/events/{draft}/cancel"),
        Some(&alice),
        None,
    )
    .await;
    assert_problem(r, 409, "event_not_published").await;
    expect(
        send(
            &app,
            Method::DELETE,
            &format!("/v1/events/{draft}"),
            Some(&alice),
            None,
        )
        .await,
        204,
    )
    .await;
    let r = send(
        &app,
        Method::GET,
        &format!("/v1/events/{draft}"),
        Some(&alice),
        None,
    )
    .await;
    assert_problem(r, 404, "not_found").await;
}

#[tokio::test]
async fn ticket_types_with_sales_stay_and_prices_share_the_events_currency() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    // No currency yet: the first ticket type fixes it.
    let e = id_of(&create_event(&app, &alice, json!({"currency": null})).await);
    let r = send(
        &app,
        Method::POST,
        &format!("/v1/events/{e}/ticket-types"),
        Some(&alice),
        Some(json!({"name": "A", "price_minor": 100, "capacity": 5})),
    )
    .await;
    assert_eq!(
        assert_problem(r, 422, "validation_failed").await["field"],
        "currency"
    );
    let general = create_ticket_type(&app, &alice, e, json!({"currency": "usd"})).await;
    assert_eq!(general["currency"], "USD");
    let event = expect(
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
    assert_eq!(event["currency"], "USD");
    // Later ticket types default to it and can't differ from it.
    assert_eq!(
        create_ticket_type(&app, &alice, e, json!({"name": "VIP", "currency": null})).await["currency"],
        "USD"
    );
    let r = send(
        &app,
        Method::POST,
        &format!("/v1/events/{e}/ticket-types"),
        Some(&alice),
        Some(json!({"name": "Euro", "price_minor": 100, "currency": "EUR", "capacity": 5})),
    )
    .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(body["event_currency"], "USD");
    // Nor can the event switch under them.
    let r = patch_event(
        &app,
        &alice,
        e,
        event["version"].as_i64().unwrap(),
        json!({"currency": "EUR"}),
    )
    .await;
    assert_problem(r, 409, "currency_locked").await;
    // Names are unique per event, ignoring case.
    let r = send(
        &app,
        Method::POST,
        &format!("/v1/events/{e}/ticket-types"),
        Some(&alice),
        Some(json!({"name": "vip", "price_minor": 1, "capacity": 1})),
    )
    .await;
    assert_problem(r, 409, "duplicate_ticket_type_name").await;

    let g = id_of(&general);
    let mut conn = app.raw_conn().await;
    diesel::sql_query(counts_moved_sql(g, 2, 0))
        .execute(&mut conn)
        .await
        .unwrap();
    let r = send(
        &app,
        Method::DELETE,
        &format!("/v1/events/{e}/ticket-types/{g}"),
        Some(&alice),
        None,
    )
    .await;
    let body = assert_problem(r, 409, "ticket_type_has_sales").await;
    assert_eq!(body["sold"], 2);
    diesel::sql_query(counts_moved_sql(g, -2, 1))
        .execute(&mut conn)
        .await
        .unwrap();
    let r = send(
        &app,
        Method::DELETE,
        &format!("/v1/events/{e}/ticket-types/{g}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(
        assert_problem(r, 409, "ticket_type_has_sales").await["held"],
        1
    );
    diesel::sql_query(counts_moved_sql(g, 0, -1))
        .execute(&mut conn)
        .await
        .unwrap();
    // A coupon restricted to it keeps it too, until the coupon lets go.
    let coupon = create_coupon(&app, &alice, e, json!({"ticket_type_ids": [g]})).await;
    let r = send(
        &app,
        Method::DELETE,
        &format!("/v1/events/{e}/ticket-types/{g}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(
        assert_problem(r, 409, "ticket_type_in_use").await["codes"],
        json!(["SAVE10"])
    );
    let path = format!("/v1/events/{e}/coupons/{}", id_of(&coupon));
    expect(
        send(
            &app,
            Method::PATCH,
            &path,
            Some(&alice),
            Some(json!({"ticket_type_ids": []})),
        )
        .await,
        200,
    )
    .await;
    expect(
        send(
            &app,
            Method::DELETE,
            &format!("/v1/events/{e}/ticket-types/{g}"),
            Some(&alice),
            None,
        )
        .await,
        204,
    )
    .await;
}

async fn validate(app: &TestApp, event: uuid::Uuid, code: &str, items: Value) -> Value {
    let path = format!("/v1/events/{event}/coupons/validate");
    expect(
        send(
            app,
            Method::POST,
            &path,
            None,
            Some(json!({"code": code, "items": items})),
        )
        .await,
        200,
    )
    .await
}

#[tokio::test]
async fn coupons_validate_to_a_discount_or_a_reason() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let e = id_of(&create_event(&app, &alice, json!({})).await);
    let general = id_of(
        &create_ticket_type(
            &app,
            &alice,
            e,
            json!({"name": "General", "price_minor": 4500}),
        )
        .await,
    );
    let vip = id_of(
        &create_ticket_type(
            &app,
            &alice,
            e,
            json!({"name": "VIP", "price_minor": 12000}),
        )
        .await,
    );
    publish(&app, &alice, e).await;

    let welcome = create_coupon(&app, &alice, e, json!({"code": "WELCOME10", "max_uses": 3})).await;
    create_coupon(
        &app,
        &alice,
        e,
        json!({"code": "VIPFIVE", "kind": "fixed", "value": 500, "ticket_type_ids": [vip]}),
    )
    .await;
    create_coupon(
        &app,
        &alice,
        e,
        json!({"code": "OLD", "valid_from": in_days(-10), "valid_until": in_days(-1)}),
    )
    .await;
    create_coupon(
        &app,
        &alice,
        e,
        json!({"code": "LATER", "valid_from": in_days(1)}),
    )
    .await;
    let r = send(
        &app,
        Method::POST,
        &format!("/v1/events/{e}/coupons"),
        Some(&alice),
        Some(json!({"code": "welcome10", "kind": "percent", "value": 5})),
    )
    .await;
    assert_problem(r, 409, "duplicate_coupon_code").await;

    let order =
        json!([{"ticket_type_id": general, "quantity": 2}, {"ticket_type_id": vip, "quantity": 1}]);
    // Codes match ignoring case; 10 % of 210.00 is 21.00.
    let v = validate(&app, e, "welcome10", order.clone()).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(
        (
            v["subtotal_minor"].as_i64(),
            v["discount_minor"].as_i64(),
            v["total_minor"].as_i64()
        ),
        (Some(21000), Some(2100), Some(18900))
    );
    assert_eq!(v["code"], "WELCOME10");
    assert_eq!(v["currency"], "EUR");
    // A fixed coupon for VIP only: 5.00 off, once.
    let v = validate(&app, e, "VIPFIVE", order.clone()).await;
    assert_eq!(
        (v["discount_minor"].as_i64(), v["applies_to"].clone()),
        (Some(500), json!([vip]))
    );

    let only_general = json!([{"ticket_type_id": general, "quantity": 1}]);
    for (code, items, reason) in [
        ("VIPFIVE", only_general.clone(), "not_applicable"),
        ("OLD", order.clone(), "expired"),
        ("LATER", order.clone(), "not_yet_valid"),
        ("NOPE", order.clone(), "not_found"),
    ] {
        let v = validate(&app, e, code, items).await;
        assert_eq!(
            (v["valid"].clone(), v["reason"].clone()),
            (json!(false), json!(reason)),
            "{code}: {v}"
        );
        assert_eq!(v["discount_minor"], 0);
    }
    let mut conn = app.raw_conn().await;
    diesel::sql_query(format!(
        "UPDATE coupons SET used = 3 WHERE id = '{}'",
        id_of(&welcome)
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        validate(&app, e, "WELCOME10", order).await["reason"],
        "used_up"
    );
    // Used coupons can't be deleted or limited below their uses.
    let path = format!("/v1/events/{e}/coupons/{}", id_of(&welcome));
    assert_problem(
        send(&app, Method::DELETE, &path, Some(&alice), None).await,
        409,
        "coupon_used",
    )
    .await;
    let r = send(
        &app,
        Method::PATCH,
        &path,
        Some(&alice),
        Some(json!({"max_uses": 2})),
    )
    .await;
    assert_eq!(
        assert_problem(r, 409, "max_uses_below_used").await["used"],
        3
    );
    // An item that is not the event's is a 422, not a silent "not applicable".
    let r = send(
        &app,
        Method::POST,
        &format!("/v1/events/{e}/coupons/validate"),
        None,
        Some(json!({"code": "WELCOME10", "items": [{"ticket_type_id": uuid::Uuid::new_v4(), "quantity": 1}]})),
    )
    .await;
    assert_eq!(
        assert_problem(r, 422, "validation_failed").await["field"],
        "items"
    );
}

#[tokio::test]
async fn organizers_see_sales_figures_per_ticket_type() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let e = id_of(&create_event(&app, &alice, json!({"title": "Figures"})).await);
    let general = id_of(
        &create_ticket_type(
            &app,
            &alice,
            e,
            json!({"name": "General", "price_minor": 4500, "capacity": 200}),
        )
        .await,
    );
    let vip = id_of(
        &create_ticket_type(
            &app,
            &alice,
            e,
            json!({"name": "VIP", "price_minor": 12000, "capacity": 20, "sort_order": 1}),
        )
        .await,
    );
    let mut conn = app.raw_conn().await;
    for (ticket_type, sold, held) in [(general, 10, 3), (vip, 2, 0)] {
        diesel::sql_query(counts_moved_sql(ticket_type, sold, held))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    let page = expect(
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
    let item = &page["items"][0];
    assert_eq!(item["title"], "Figures");
    assert_eq!(
        item["ticket_types"],
        json!([
            {"id": general, "name": "General", "price_minor": 4500, "capacity": 200, "sold": 10, "held": 3, "available": 187, "gross_minor": 45000, "refunded": 0},
            {"id": vip, "name": "VIP", "price_minor": 12000, "capacity": 20, "sold": 2, "held": 0, "available": 18, "gross_minor": 24000, "refunded": 0},
        ])
    );
    assert_eq!(
        item["totals"],
        json!({"capacity": 220, "sold": 12, "held": 3, "available": 205, "gross_minor": 69000, "refunded": 0, "refunded_minor": 0})
    );

    // Paged by start time with an opaque cursor.
    for days in 1..=4 {
        create_event(
            &app,
            &alice,
            json!({"starts_at": in_days(days), "ends_at": in_days(days + 1)}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/organizer/events?limit=2&cursor={c}"),
            None => "/v1/organizer/events?limit=2".to_owned(),
        };
        let page = expect(
            send(&app, Method::GET, &path, Some(&alice), None).await,
            200,
        )
        .await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen.last().unwrap(),
        &json!(e),
        "the event 30 days out comes last"
    );
    let published = expect(
        send(
            &app,
            Method::GET,
            "/v1/organizer/events?status=published",
            Some(&alice),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(published["items"], json!([]), "all of them are drafts");
}

#[tokio::test]
async fn the_demo_catalog_is_seeded_once() {
    let app = TestApp::spawn().await;
    let data_dir =
        std::env::temp_dir().join(format!("boxoffice-seed-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data_dir).unwrap();
    boxoffice_ops::seed::demo(&app.db.url, &data_dir)
        .await
        .expect("first seed");
    boxoffice_ops::seed::demo(&app.db.url, &data_dir)
        .await
        .expect("second seed");
    let _ = std::fs::remove_dir_all(&data_dir);

    let page = get_json(&app, "/v1/events").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "one demo event, however often `up` runs: {page}"
    );
    let event = get_json(
        &app,
        &format!("/v1/events/{}", items[0]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(event["status"], "published");
    assert_eq!(event["venue"]["timezone"], "Europe/Berlin");
    let days_ahead = (event["starts_at"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        - chrono::Utc::now())
    .num_days();
    assert!((28..=30).contains(&days_ahead), "{days_ahead}");
    let types: Vec<(Value, Value, Value)> = event["ticket_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].clone(),
                t["price_minor"].clone(),
                t["capacity"].clone(),
            )
        })
        .collect();
    assert_eq!(
        types,
        vec![
            (json!("General"), json!(4500), json!(200)),
            (json!("VIP"), json!(12000), json!(20))
        ]
    );
    let general = event["ticket_types"][0]["id"].clone();
    let v = validate(
        &app,
        id_of(&event),
        "WELCOME10",
        json!([{"ticket_type_id": general, "quantity": 1}]),
    )
    .await;
    assert_eq!(
        (v["valid"].clone(), v["discount_minor"].clone()),
        (json!(true), json!(450))
    );
}

#[tokio::test]
async fn venues_are_listed_by_name_in_pages_and_by_city() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    for (name, city) in [
        ("Club | Bar", "Köln"),
        ("Arena", "Berlin"),
        ("Bühne", "berlin"),
    ] {
        let body = json!({"name": name, "address": "Street 1", "city": city, "country": "de", "timezone": "Europe/Berlin"});
        let venue = expect(
            send(&app, Method::POST, "/v1/venues", Some(&alice), Some(body)).await,
            201,
        )
        .await;
        assert_eq!(venue["country"], "DE");
    }
    let mut names = Vec::new();
    let mut path = "/v1/venues?limit=2".to_owned();
    loop {
        let page = get_json(&app, &path).await;
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/venues?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(names, ["Arena", "Bühne", "Club | Bar"]);
    let berlin = get_json(&app, "/v1/venues?city=BERLIN").await;
    assert_eq!(berlin["items"].as_array().unwrap().len(), 2);
}
