//! The analytics and export routes are in the OpenAPI document, with their
//! client errors, and the CSV answers are documented as text/csv.

use serde_json::Value;

use crate::catalog_fixtures::get_json;
use crate::harness::TestApp;

#[tokio::test]
async fn every_analytics_route_is_documented() {
    let app = TestApp::spawn().await;
    let doc = get_json(&app, "/openapi.json").await;
    for path in [
        "/v1/organizer/events/{id}/analytics",
        "/v1/organizer/events/{id}/attendees.csv",
        "/v1/organizer/events/{id}/orders.csv",
        "/v1/admin/analytics",
    ] {
        let operation = &doc["paths"][path]["get"];
        assert!(operation.is_object(), "GET {path} is not documented");
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('4')),
            "GET {path} documents no client errors"
        );
        if path.ends_with(".csv") {
            assert!(
                responses["200"]["content"]["text/csv"].is_object(),
                "{path}: {}",
                responses["200"]
            );
        }
    }
    let params: Vec<&str> =
        doc["paths"]["/v1/organizer/events/{id}/analytics"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
    assert_eq!(params, ["id", "from", "to", "granularity"]);
    // Money is documented as integers.
    let money = &doc["components"]["schemas"]["Money"]["properties"];
    assert_eq!(money["net_minor"]["type"], Value::from("integer"));
}
