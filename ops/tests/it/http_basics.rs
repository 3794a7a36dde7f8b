//! The HTTP contract every route shares: problem+json errors with request ids,
//! request id propagation, security headers, health, readiness, metrics, and an
//! OpenAPI document that lists every route.

use crate::harness::{TestApp, assert_problem};

#[tokio::test]
async fn unknown_route_and_method_are_problems() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/v1/no-such-thing"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "route_not_found").await;

    let r = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_problem(r, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn oversized_body_is_413_problem() {
    let app = TestApp::builder()
        .config(|c| c.body_limit_bytes = 4096)
        .spawn()
        .await;
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(10_000));
    let r = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_problem(r, 413, "payload_too_large").await;
}

#[tokio::test]
async fn request_id_is_accepted_generated_and_echoed() {
    let app = TestApp::spawn().await;

    let r = app
        .client
        .get(app.url("/v1/no-such-thing"))
        .header("x-request-id", "client-chosen-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-chosen-id-42");
    let body = assert_problem(r, 404, "route_not_found").await;
    assert_eq!(body["request_id"], "client-chosen-id-42");

    // No id, or one with characters that could forge log lines: a fresh one.
    for sent in [None, Some("bad id\twith tabs")] {
        let mut req = app.client.get(app.url("/healthz"));
        if let Some(id) = sent {
            req = req.header("x-request-id", id);
        }
        let r = req.send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "generated id {id:?}");
    }
}

#[tokio::test]
async fn security_headers_are_set() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(h.contains_key("strict-transport-security"));
}

/// The outermost layer does four things to every answer: a problem made of
/// a bare error status keeps the security headers and the request id, and
/// the interactive docs get a content policy of their own.
#[tokio::test]
async fn an_error_answer_has_the_security_headers_and_its_request_id() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/healthz"))
        .header("x-request-id", "edge-405")
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    assert_eq!(h["x-request-id"], "edge-405");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    let body = assert_problem(r, 405, "method_not_allowed").await;
    assert_eq!(body["request_id"], "edge-405");

    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let policy = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::builder()
        .config(|c| c.cors_origins = vec!["https://tickets.example".into()])
        .spawn()
        .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://tickets.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://tickets.example"
    );
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["postgres"]["ok"], true);
    assert_eq!(body["redis"]["ok"], true);
    assert!(body["postgres"]["latency_ms"].as_f64().unwrap() >= 0.0);

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

/// Requests are counted by route template, not raw path: one series per route
/// whatever the ids, the Swagger UI's routes too, and a path no route serves
/// as `unmatched`. A method the route lacks is counted under its route.
#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = TestApp::spawn().await;
    let get = |path: String| {
        let url = app.url(&path);
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    for _ in 0..2 {
        let missing = uuid::Uuid::now_v7();
        assert_eq!(get(format!("/v1/events/{missing}")).await, 404);
    }
    assert_eq!(get("/v1/no-such-thing".to_owned()).await, 404);
    assert_eq!(get("/docs/openapi.json".to_owned()).await, 200);
    assert_eq!(get("/openapi.json".to_owned()).await, 200);
    let r = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 405);

    let metrics = app.metrics().await;
    let count = |labels: &str| {
        let series = format!("http_requests_total{{{labels}}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no series {series} in:\n{metrics}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        count(r#"method="GET",route="/v1/events/{id}",status="404""#),
        "2"
    );
    assert_eq!(count(r#"method="GET",route="unmatched",status="404""#), "1");
    assert_eq!(
        count(r#"method="GET",route="/docs/openapi.json",status="200""#),
        "1"
    );
    assert_eq!(
        count(r#"method="GET",route="/openapi.json",status="200""#),
        "1"
    );
    assert_eq!(
        count(r#"method="DELETE",route="/healthz",status="405""#),
        "1"
    );
    assert!(
        !metrics.contains(r#"route="/v1/events/0"#),
        "a raw path became a label:\n{metrics}"
    );
}

#[tokio::test]
async fn readiness_reports_a_dead_redis() {
    // Nothing listens on port 1 of loopback: Redis is "down".
    let app = TestApp::builder()
        .redis_url("redis://127.0.0.1:1/")
        .spawn()
        .await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["postgres"]["ok"], true);
    assert_eq!(body["redis"]["ok"], false);
}

/// Every operation in the document is routed (answers something other than the
/// router's own 404/405), and every route the API is expected to have is in the
/// document.
#[tokio::test]
async fn openapi_documents_every_route() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().expect("paths");

    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    for op in &documented {
        let (method, path) = op.split_once(' ').unwrap();
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "00000000-0000-0000-0000-000000000000"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        assert!(
            !(body["code"] == "route_not_found" || body["code"] == "method_not_allowed"),
            "{op} is documented but not routed ({status})"
        );
    }

    let expected = [
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "POST /v1/auth/register",
        "POST /v1/auth/login",
        "POST /v1/auth/refresh",
        "POST /v1/auth/logout",
        "GET /v1/me",
        "PATCH /v1/me",
        "GET /v1/admin/users",
        "PUT /v1/admin/users/{id}/roles",
        "POST /v1/admin/users/{id}/disable",
        "GET /v1/admin/audit",
    ];
    for op in expected {
        assert!(
            documented.iter().any(|d| d == op),
            "{op} missing from the OpenAPI document"
        );
    }

    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
}
