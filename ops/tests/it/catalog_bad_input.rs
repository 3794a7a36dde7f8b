//! Issue point 6: bad input on every catalog route gets a problem+json 4xx that
//! says what is wrong, never a 500: malformed JSON, wrong types, huge strings,
//! NUL bytes, impossible dates, bad uuids, bad query parameters, bad If-Match.

use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog_fixtures::*;
use crate::harness::{TestApp, assert_problem};

struct Case {
    method: Method,
    path: String,
    body: Option<String>,
    if_match: Option<&'static str>,
    status: u16,
    code: &'static str,
}

fn case(
    method: Method,
    path: impl Into<String>,
    body: Option<Value>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        method,
        path: path.into(),
        body: body.map(|b| b.to_string()),
        if_match: None,
        status,
        code,
    }
}

fn raw(
    method: Method,
    path: impl Into<String>,
    body: &str,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        method,
        path: path.into(),
        body: Some(body.to_owned()),
        if_match: None,
        status,
        code,
    }
}

fn with_if_match(mut c: Case, tag: &'static str) -> Case {
    c.if_match = Some(tag);
    c
}

#[tokio::test]
async fn bad_input_on_every_catalog_route_is_a_problem_not_a_500() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let venue = create_venue(&app, &alice, "Berlin").await;
    let (event, ticket_type) = published_event(&app, &alice, json!({})).await;
    let coupon = create_coupon(&app, &alice, id_of(&event), json!({})).await;
    let (v, e, tt, c) = (
        id_of(&venue),
        id_of(&event),
        id_of(&ticket_type),
        id_of(&coupon),
    );
    let version = "\"2\"";

    let long = |n: usize| "x".repeat(n);
    let venue_ok = json!({"name": "Hall", "address": "Street 1", "city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"});
    let event_ok = json!({"title": "T", "category": "music", "online": true, "starts_at": in_days(3), "ends_at": in_days(4)});
    let tt_ok = json!({"name": "Extra", "price_minor": 100, "capacity": 10});
    let coupon_ok = json!({"code": "GOOD1", "kind": "percent", "value": 5});
    let order = |quantity: Value| json!({"code": "SAVE10", "items": [{"ticket_type_id": tt, "quantity": quantity}]});
    let post = Method::POST;
    let patch = Method::PATCH;
    let get = Method::GET;

    let mut cases = vec![
        // Venues.
        raw(post.clone(), "/v1/venues", "{", 400, "malformed_json"),
        raw(post.clone(), "/v1/venues", "[]", 422, "invalid_body"),
        raw(post.clone(), "/v1/venues", "null", 422, "invalid_body"),
        case(
            post.clone(),
            "/v1/venues",
            Some(json!({})),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            "/v1/venues",
            Some(merged(venue_ok.clone(), json!({"name": 5}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            "/v1/venues",
            Some(merged(venue_ok.clone(), json!({"owner": "me"}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            "/v1/venues",
            Some(merged(venue_ok.clone(), json!({"name": long(201)}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/venues",
            Some(merged(venue_ok.clone(), json!({"name": "a\u{0}b"}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/venues",
            Some(merged(venue_ok.clone(), json!({"address": "  "}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/venues",
            Some(merged(venue_ok.clone(), json!({"country": "Germany"}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/venues",
            Some(merged(
                venue_ok.clone(),
                json!({"timezone": "Mars/Olympus_Mons"}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/venues",
            Some(merged(
                venue_ok.clone(),
                json!({"timezone": "../../etc/passwd"}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/venues",
            Some(merged(venue_ok.clone(), json!({"timezone": long(5000)}))),
            422,
            "validation_failed",
        ),
        case(
            get.clone(),
            "/v1/venues/not-a-uuid",
            None,
            400,
            "invalid_path",
        ),
        case(
            get.clone(),
            format!("/v1/venues/{}", uuid::Uuid::new_v4()),
            None,
            404,
            "not_found",
        ),
        case(
            get.clone(),
            "/v1/venues?limit=-1",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/venues?limit=101",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            format!("/v1/venues?city={}", long(101)),
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/venues?cursor=%%%",
            None,
            400,
            "invalid_cursor",
        ),
        case(
            get.clone(),
            "/v1/venues?cursor=bm9wZQ",
            None,
            400,
            "invalid_cursor",
        ),
        case(
            get.clone(),
            "/v1/venues?colour=red",
            None,
            400,
            "invalid_query",
        ),
        case(
            patch.clone(),
            format!("/v1/venues/{v}"),
            Some(json!({"timezone": "Nowhere/Land"})),
            422,
            "validation_failed",
        ),
        case(
            patch.clone(),
            format!("/v1/venues/{v}"),
            Some(json!({"city": ""})),
            422,
            "validation_failed",
        ),
        case(
            patch.clone(),
            "/v1/venues/123",
            Some(json!({"city": "x"})),
            400,
            "invalid_path",
        ),
        case(Method::DELETE, "/v1/venues/123", None, 400, "invalid_path"),
        // Creating events.
        raw(
            post.clone(),
            "/v1/events",
            "{\"title\": \"T\",",
            400,
            "malformed_json",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"title": ""}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"title": long(10_000)}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(
                event_ok.clone(),
                json!({"description": long(10_001)}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(
                event_ok.clone(),
                json!({"description": "nul \u{0} byte"}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"category": "Rock & Roll"}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"currency": "EURO"}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"starts_at": "yesterday"}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(
                event_ok.clone(),
                json!({"starts_at": "2030-02-30T10:00:00Z"}),
            )),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(
                event_ok.clone(),
                json!({"starts_at": "1500-01-01T00:00:00Z"}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"ends_at": in_days(2)}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(
                event_ok.clone(),
                json!({"sales_end_at": in_days(5)}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"hold_minutes": 0}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"hold_minutes": 121}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"hold_minutes": 1e10}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(
                event_ok.clone(),
                json!({"max_tickets_per_order": 101}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(
                event_ok.clone(),
                json!({"refundable_until_hours_before": -1}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"venue_id": "not-a-uuid"}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(
                event_ok.clone(),
                json!({"venue_id": uuid::Uuid::new_v4()}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"online": "yes"}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            "/v1/events",
            Some(merged(event_ok.clone(), json!({"status": "published"}))),
            422,
            "invalid_body",
        ),
        // The public listing.
        case(
            get.clone(),
            "/v1/events/not-a-uuid",
            None,
            400,
            "invalid_path",
        ),
        case(
            get.clone(),
            format!("/v1/events/{e}x"),
            None,
            400,
            "invalid_path",
        ),
        case(
            get.clone(),
            format!("/v1/events/{}", uuid::Uuid::new_v4()),
            None,
            404,
            "not_found",
        ),
        case(
            get.clone(),
            "/v1/events?limit=abc",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?limit=0",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?limit=1000",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?price_max=-1",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?price_max=99999999999999999999",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?from=tomorrow",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?from=2031-01-01T00:00:00Z&to=2030-01-01T00:00:00Z",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?sort=cheapest",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?available=maybe",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?cursor=garbage",
            None,
            400,
            "invalid_cursor",
        ),
        case(
            get.clone(),
            format!("/v1/events?cursor={}", long(5000)),
            None,
            400,
            "invalid_cursor",
        ),
        case(
            get.clone(),
            "/v1/events?q=a%00b",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            format!("/v1/events?q={}", long(201)),
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?category=Rock%20%26%20Roll",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/events?city=a%00b",
            None,
            400,
            "invalid_query",
        ),
        case(get.clone(), "/v1/events?page=2", None, 400, "invalid_query"),
        // Changing events.
        case(
            patch.clone(),
            format!("/v1/events/{e}"),
            Some(json!({"title": "x"})),
            428,
            "precondition_required",
        ),
        with_if_match(
            case(
                patch.clone(),
                format!("/v1/events/{e}"),
                Some(json!({"title": "x"})),
                400,
                "invalid_if_match",
            ),
            "abc",
        ),
        with_if_match(
            case(
                patch.clone(),
                format!("/v1/events/{e}"),
                Some(json!({"title": "x"})),
                400,
                "invalid_if_match",
            ),
            "*, \"2\"",
        ),
        with_if_match(
            case(
                patch.clone(),
                format!("/v1/events/{e}"),
                Some(json!({"title": "x"})),
                400,
                "invalid_if_match",
            ),
            "99999999999999",
        ),
        with_if_match(
            raw(
                patch.clone(),
                format!("/v1/events/{e}"),
                "{]",
                400,
                "malformed_json",
            ),
            version,
        ),
        with_if_match(
            case(
                patch.clone(),
                format!("/v1/events/{e}"),
                Some(json!({"hold_minutes": "ten"})),
                422,
                "invalid_body",
            ),
            version,
        ),
        with_if_match(
            case(
                patch.clone(),
                format!("/v1/events/{e}"),
                Some(json!({"starts_at": "2030-13-01T00:00:00Z"})),
                422,
                "invalid_body",
            ),
            version,
        ),
        with_if_match(
            case(
                patch.clone(),
                format!("/v1/events/{e}"),
                Some(json!({"ends_at": in_days(1)})),
                422,
                "validation_failed",
            ),
            version,
        ),
        with_if_match(
            case(
                patch.clone(),
                format!("/v1/events/{e}"),
                Some(json!({"status": "draft"})),
                422,
                "invalid_body",
            ),
            version,
        ),
        with_if_match(
            case(
                patch.clone(),
                format!("/v1/events/{e}"),
                Some(json!({"title": "  "})),
                422,
                "validation_failed",
            ),
            version,
        ),
        with_if_match(
            case(
                patch.clone(),
                "/v1/events/123",
                Some(json!({"title": "x"})),
                400,
                "invalid_path",
            ),
            version,
        ),
        case(
            post.clone(),
            "/v1/events/123/publish",
            None,
            400,
            "invalid_path",
        ),
        case(
            post.clone(),
            "/v1/events/123/cancel",
            None,
            400,
            "invalid_path",
        ),
        case(Method::DELETE, "/v1/events/123", None, 400, "invalid_path"),
        // Ticket types.
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(tt_ok.clone(), json!({"price_minor": -1}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(
                tt_ok.clone(),
                json!({"price_minor": 10_000_000_000_000_i64}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(tt_ok.clone(), json!({"price_minor": 12.5}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(tt_ok.clone(), json!({"price_minor": "45.00"}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(tt_ok.clone(), json!({"capacity": -5}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(tt_ok.clone(), json!({"capacity": 1_u64 << 40}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(tt_ok.clone(), json!({"currency": "E1R"}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(tt_ok.clone(), json!({"name": long(101)}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(tt_ok.clone(), json!({"max_per_order": 0}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/ticket-types"),
            Some(merged(
                tt_ok.clone(),
                json!({"sales_start_at": in_days(2), "sales_end_at": in_days(1)}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            "/v1/events/nope/ticket-types",
            Some(tt_ok.clone()),
            400,
            "invalid_path",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/ticket-types/nope"),
            Some(json!({"capacity": 5})),
            400,
            "invalid_path",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/ticket-types/{tt}"),
            Some(json!({"capacity": -1})),
            422,
            "validation_failed",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/ticket-types/{tt}"),
            Some(json!({"currency": "USD"})),
            422,
            "invalid_body",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/ticket-types/{tt}"),
            Some(json!({"name": null, "description": 7})),
            422,
            "invalid_body",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/ticket-types/{}", uuid::Uuid::new_v4()),
            Some(json!({"capacity": 5})),
            404,
            "not_found",
        ),
        case(
            Method::DELETE,
            format!("/v1/events/{e}/ticket-types/{}", uuid::Uuid::new_v4()),
            None,
            404,
            "not_found",
        ),
        // Coupons.
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(coupon_ok.clone(), json!({"code": "a"}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(coupon_ok.clone(), json!({"code": "with space"}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(coupon_ok.clone(), json!({"code": long(41)}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(coupon_ok.clone(), json!({"kind": "bogus"}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(coupon_ok.clone(), json!({"value": 101}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(
                coupon_ok.clone(),
                json!({"kind": "fixed", "value": 0}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(coupon_ok.clone(), json!({"max_uses": 0}))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(
                coupon_ok.clone(),
                json!({"valid_from": in_days(2), "valid_until": in_days(1)}),
            )),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(coupon_ok.clone(), json!({"ticket_type_ids": ["x"]}))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons"),
            Some(merged(
                coupon_ok.clone(),
                json!({"ticket_type_ids": [uuid::Uuid::new_v4()]}),
            )),
            422,
            "validation_failed",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/coupons/{c}"),
            Some(json!({"value": 0})),
            422,
            "validation_failed",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/coupons/{c}"),
            Some(json!({"value": 500})),
            422,
            "validation_failed",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/coupons/{c}"),
            Some(json!({"kind": "percent", "value": 500})),
            422,
            "validation_failed",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/coupons/{c}"),
            Some(json!({"code": ""})),
            422,
            "validation_failed",
        ),
        case(
            patch.clone(),
            format!("/v1/events/{e}/coupons/bad"),
            Some(json!({"value": 5})),
            400,
            "invalid_path",
        ),
        case(
            get.clone(),
            "/v1/events/bad/coupons",
            None,
            400,
            "invalid_path",
        ),
        // Validating a coupon.
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons/validate"),
            Some(json!({"code": "SAVE10", "items": []})),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons/validate"),
            Some(order(json!(0))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons/validate"),
            Some(order(json!(1_000_000))),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons/validate"),
            Some(order(json!(1e30))),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons/validate"),
            Some(json!({"code": "", "items": [{"ticket_type_id": tt, "quantity": 1}]})),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons/validate"),
            Some(json!({"code": "A\u{0}B", "items": [{"ticket_type_id": tt, "quantity": 1}]})),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons/validate"),
            Some(json!({"code": long(10_000), "items": [{"ticket_type_id": tt, "quantity": 1}]})),
            422,
            "validation_failed",
        ),
        case(
            post.clone(),
            format!("/v1/events/{e}/coupons/validate"),
            Some(json!({"code": "SAVE10", "items": {"a": 1}})),
            422,
            "invalid_body",
        ),
        case(
            post.clone(),
            "/v1/events/x/coupons/validate",
            Some(order(json!(1))),
            400,
            "invalid_path",
        ),
        // The organizer's view.
        case(
            get.clone(),
            "/v1/organizer/events?status=bogus",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/organizer/events?limit=0",
            None,
            400,
            "invalid_query",
        ),
        case(
            get.clone(),
            "/v1/organizer/events?cursor=zzz",
            None,
            400,
            "invalid_cursor",
        ),
        case(
            get.clone(),
            "/v1/organizer/events?organizer_id=me",
            None,
            400,
            "invalid_query",
        ),
    ];
    // Wrong or missing content type on every body-taking route.
    for path in [
        "/v1/venues".to_owned(),
        "/v1/events".to_owned(),
        format!("/v1/events/{e}/ticket-types"),
        format!("/v1/events/{e}/coupons"),
        format!("/v1/events/{e}/coupons/validate"),
    ] {
        cases.push(Case {
            method: post.clone(),
            path,
            body: None,
            if_match: None,
            status: 415,
            code: "unsupported_media_type",
        });
    }

    for c in cases {
        let mut request = app
            .client
            .request(c.method.clone(), app.url(&c.path))
            .header("authorization", alice.bearer());
        if let Some(tag) = c.if_match {
            request = request.header("if-match", tag);
        }
        if let Some(body) = c.body.clone() {
            request = request
                .header("content-type", "application/json")
                .body(body);
        } else if c.status == 415 {
            request = request.header("content-type", "text/plain").body("title=x");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert!(status < 500, "{} {} answered {status}", c.method, c.path);
        let what = format!(
            "{} {} {:?}",
            c.method,
            c.path,
            c.body.as_deref().map(|b| &b[..b.len().min(120)])
        );
        let body = response.text().await.unwrap();
        assert_eq!(status, c.status, "{what}: {body}");
        let problem: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
        assert_eq!(problem["code"], c.code, "{what}: {problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: {problem}"
        );
    }

    // Nothing of the above changed anything.
    let after = expect(
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
    assert_eq!(after["version"], 2);
    assert_eq!(after["ticket_types"].as_array().unwrap().len(), 1);
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
}

#[tokio::test]
async fn a_huge_body_is_413_and_validation_names_the_field() {
    let app = TestApp::builder()
        .config(|c| c.body_limit_bytes = 64 * 1024)
        .spawn()
        .await;
    let alice = organizer(&app).await;
    let huge = json!({"title": "x".repeat(100 * 1024), "category": "music"});
    let r = send(&app, Method::POST, "/v1/events", Some(&alice), Some(huge)).await;
    assert_problem(r, 413, "payload_too_large").await;

    let r = send(
        &app,
        Method::POST,
        "/v1/venues",
        Some(&alice),
        Some(json!({"name": "Hall", "address": "Street 1", "city": "Berlin", "country": "DE", "timezone": "Atlantis/Capital"})),
    )
    .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(problem["field"], "timezone");
    let r = send(
        &app,
        Method::POST,
        "/v1/events",
        Some(&alice),
        Some(json!({"title": "T", "category": "music", "starts_at": in_days(3), "ends_at": in_days(2)})),
    )
    .await;
    assert_eq!(
        assert_problem(r, 422, "validation_failed").await["field"],
        "ends_at"
    );
}
