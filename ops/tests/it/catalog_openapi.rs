//! Every catalog route is in the OpenAPI document, with its method.

use serde_json::Value;

use crate::catalog_fixtures::get_json;
use crate::harness::TestApp;

#[tokio::test]
async fn every_catalog_route_is_documented() {
    let app = TestApp::spawn().await;
    let doc = get_json(&app, "/openapi.json").await;
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/v1/venues", &["get", "post"][..]),
        ("/v1/venues/{id}", &["get", "patch", "delete"]),
        ("/v1/events", &["get", "post"]),
        ("/v1/events/{id}", &["get", "patch", "delete"]),
        ("/v1/events/{id}/publish", &["post"]),
        ("/v1/events/{id}/cancel", &["post"]),
        ("/v1/events/{id}/messages", &["get", "post"]),
        ("/v1/events/{id}/messages/{message_id}", &["delete"]),
        ("/v1/events/{id}/ticket-types", &["post"]),
        (
            "/v1/events/{id}/ticket-types/{ticket_type_id}",
            &["patch", "delete"],
        ),
        ("/v1/events/{id}/coupons", &["get", "post"]),
        ("/v1/events/{id}/coupons/{coupon_id}", &["patch", "delete"]),
        ("/v1/events/{id}/coupons/validate", &["post"]),
        ("/v1/organizer/events", &["get"]),
    ] {
        for method in methods {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('4')),
                "{method} {path} documents no client errors"
            );
        }
    }
    // Money is documented as integers.
    let ticket_type = &doc["components"]["schemas"]["TicketTypeView"]["properties"];
    assert_eq!(ticket_type["price_minor"]["type"], Value::from("integer"));
    assert_eq!(
        doc["components"]["schemas"]["EventStatusView"]["enum"],
        serde_json::json!(["draft", "published", "cancelled", "completed"])
    );
}
