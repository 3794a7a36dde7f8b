//! Bad input on every identity route gets a problem+json 4xx with a code and
//! the request id, never a 500: malformed JSON, wrong types, missing and unknown
//! fields, 1 MB strings, invalid UTF-8, NUL characters, wrong content types,
//! oversized bodies, bad path ids, bad query parameters, bad auth headers.

use boxoffice_models::users::Role;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::json;

use crate::harness::users::TestUser;
use crate::harness::{TestApp, assert_problem};

const MB_STRING: usize = 1_000_000;

/// Sends `body` as is, with the given content type and caller.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    caller: Option<&TestUser>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path));
    if let Some(u) = caller {
        req = req.header("authorization", u.bearer());
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(body).send().await.unwrap()
}

/// (name, content type, body, expected status, expected code)
type BodyCase<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

struct BodyRoute {
    method: Method,
    path: String,
    caller: Option<TestUser>,
    /// A body with every required field, so "missing fields" can be tested.
    requires_fields: bool,
}

fn big() -> String {
    "x".repeat(MB_STRING)
}

#[tokio::test]
async fn malformed_bodies_on_every_identity_route_are_problems() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;
    let admin = app.create_user(&[Role::Admin]).await;

    let routes = [
        BodyRoute {
            method: Method::POST,
            path: "/v1/auth/register".into(),
            caller: None,
            requires_fields: true,
        },
        BodyRoute {
            method: Method::POST,
            path: "/v1/auth/login".into(),
            caller: None,
            requires_fields: true,
        },
        BodyRoute {
            method: Method::POST,
            path: "/v1/auth/refresh".into(),
            caller: None,
            requires_fields: true,
        },
        BodyRoute {
            method: Method::PATCH,
            path: "/v1/me".into(),
            caller: Some(user.clone()),
            requires_fields: false,
        },
        BodyRoute {
            method: Method::PUT,
            path: format!("/v1/admin/users/{}/roles", user.id),
            caller: Some(admin.clone()),
            requires_fields: true,
        },
    ];
    let json_ct = Some("application/json");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    // In the first key, so it is read before any field could be refused.
    let mut invalid_utf8 = br#"{""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    invalid_utf8.extend_from_slice(br#"":"x"}"#);

    for route in &routes {
        let caller = route.caller.as_ref();
        let cases: Vec<BodyCase> = vec![
            // Syntax errors before the first key: a key that is wrong for the route
            // would otherwise be reported first, as a 422.
            (
                "truncated JSON",
                json_ct,
                b"{".to_vec(),
                400,
                "malformed_json",
            ),
            (
                "truncated key",
                json_ct,
                br#"{"ema"#.to_vec(),
                400,
                "malformed_json",
            ),
            (
                "not JSON at all",
                json_ct,
                b"email=a@example.com".to_vec(),
                400,
                "malformed_json",
            ),
            (
                "stray comma",
                json_ct,
                b"{,}".to_vec(),
                400,
                "malformed_json",
            ),
            (
                "single quotes",
                json_ct,
                b"{'email': 'a@example.com'}".to_vec(),
                400,
                "malformed_json",
            ),
            (
                "invalid UTF-8",
                json_ct,
                invalid_utf8.clone(),
                400,
                "malformed_json",
            ),
            // Refused at the outermost level: the parser never descends the nesting.
            (
                "nested 10,000 deep",
                json_ct,
                deep.clone().into_bytes(),
                422,
                "invalid_body",
            ),
            (
                "wrong types",
                json_ct,
                serde_json::to_vec(&json!({
                    "email": 5, "password": true, "display_name": [], "refresh_token": {},
                    "roles": "admin", "current_password": 1, "new_password": 2
                }))
                .unwrap(),
                422,
                "invalid_body",
            ),
            ("an array", json_ct, b"[]".to_vec(), 422, "invalid_body"),
            ("null", json_ct, b"null".to_vec(), 422, "invalid_body"),
            (
                "unknown field",
                json_ct,
                br#"{"is_admin": true}"#.to_vec(),
                422,
                "invalid_body",
            ),
            (
                "text/plain",
                Some("text/plain"),
                br#"{"email":"a@example.com"}"#.to_vec(),
                415,
                "unsupported_media_type",
            ),
            (
                "no content type",
                None,
                br#"{"email":"a@example.com"}"#.to_vec(),
                415,
                "unsupported_media_type",
            ),
            (
                "form content type",
                Some("application/x-www-form-urlencoded"),
                b"email=a%40example.com".to_vec(),
                415,
                "unsupported_media_type",
            ),
            (
                "2 MB body",
                json_ct,
                format!(r#"{{"email":"{}"}}"#, "a".repeat(2 << 20)).into_bytes(),
                413,
                "payload_too_large",
            ),
        ];
        for (name, ct, body, status, code) in cases {
            let r = send(&app, route.method.clone(), &route.path, caller, ct, body).await;
            assert!(
                r.status().as_u16() == status,
                "{} {} with {name}: expected {status}, got {}",
                route.method,
                route.path,
                r.status()
            );
            assert_problem(r, status, code).await;
        }
        if route.requires_fields {
            let r = send(
                &app,
                route.method.clone(),
                &route.path,
                caller,
                json_ct,
                b"{}".to_vec(),
            )
            .await;
            assert_problem(r, 422, "invalid_body").await;
        }
    }
}

/// Field-level validation: oversized, empty and NUL-bearing strings are 422
/// naming the field, and a 1 MB password never reaches argon2 (the answer is
/// immediate, and the account is not created).
#[tokio::test]
async fn oversized_and_invalid_strings_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;
    let admin = app.create_user(&[Role::Admin]).await;

    let register = |email: String, password: String, display_name: String| json!({"email": email, "password": password, "display_name": display_name});
    let ok_email = || "fresh@example.com".to_owned();
    let ok_password = || "long enough password".to_owned();
    let ok_name = || "Fresh".to_owned();
    let cases: Vec<(Method, String, Option<&TestUser>, serde_json::Value, &str)> = vec![
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            register(big(), ok_password(), ok_name()),
            "email",
        ),
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            register(ok_email(), big(), ok_name()),
            "password",
        ),
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            register(ok_email(), ok_password(), big()),
            "display_name",
        ),
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            register(ok_email(), ok_password(), "nul\u{0}".into()),
            "display_name",
        ),
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            register("nul\u{0}@example.com".into(), ok_password(), ok_name()),
            "email",
        ),
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            register(String::new(), ok_password(), ok_name()),
            "email",
        ),
        (
            Method::POST,
            "/v1/auth/login".into(),
            None,
            json!({"email": big(), "password": "x"}),
            "email",
        ),
        (
            Method::POST,
            "/v1/auth/login".into(),
            None,
            json!({"email": user.email, "password": big()}),
            "password",
        ),
        (
            Method::POST,
            "/v1/auth/login".into(),
            None,
            json!({"email": user.email, "password": ""}),
            "password",
        ),
        (
            Method::PATCH,
            "/v1/me".into(),
            Some(&user),
            json!({"display_name": big()}),
            "display_name",
        ),
        (
            Method::PATCH,
            "/v1/me".into(),
            Some(&user),
            json!({"display_name": ""}),
            "display_name",
        ),
        (
            Method::PATCH,
            "/v1/me".into(),
            Some(&user),
            json!({"display_name": "a\u{0}b"}),
            "display_name",
        ),
        (
            Method::PATCH,
            "/v1/me".into(),
            Some(&user),
            json!({"current_password": big(), "new_password": "long enough password"}),
            "current_password",
        ),
        (
            Method::PATCH,
            "/v1/me".into(),
            Some(&user),
            json!({"current_password": user.password, "new_password": big()}),
            "new_password",
        ),
        (
            Method::PATCH,
            "/v1/me".into(),
            Some(&user),
            json!({"current_password": user.password}),
            "new_password",
        ),
        (
            Method::PUT,
            format!("/v1/admin/users/{}/roles", user.id),
            Some(&admin),
            json!({"roles": [big()]}),
            "roles",
        ),
    ];
    for (method, path, caller, body, field) in cases {
        let started = std::time::Instant::now();
        let r = send(
            &app,
            method.clone(),
            &path,
            caller,
            Some("application/json"),
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        let problem = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(problem["field"], field, "{method} {path}: {problem}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{method} {path} took {:?}",
            started.elapsed()
        );
    }
    // Nothing was created or changed by the refused requests.
    let mut conn = app.pool().get().await.unwrap();
    assert!(
        boxoffice_models::users::find_by_email(&mut conn, "fresh@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let me = boxoffice_models::users::find(&mut conn, user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me.display_name, "Test User");
    assert_eq!(me.roles, vec!["participant"]);

    // A 1 MB refresh token is simply not a token we issued.
    let r = send(
        &app,
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some("application/json"),
        serde_json::to_vec(&json!({"refresh_token": big()})).unwrap(),
    )
    .await;
    assert_problem(r, 401, "invalid_refresh_token").await;
}

#[tokio::test]
async fn bad_path_ids_and_query_parameters_are_problems() {
    let app = TestApp::spawn().await;
    let admin = app.create_user(&[Role::Admin]).await;
    app.create_user(&[]).await;

    let bad_ids = [
        "not-a-uuid",
        "123",
        "%FF%FE",
        "'%20OR%201=1%20--",
        "00000000-0000-0000-0000-00000000000g",
    ];
    for id in bad_ids {
        let r = send(
            &app,
            Method::POST,
            &format!("/v1/admin/users/{id}/disable"),
            Some(&admin),
            None,
            Vec::new(),
        )
        .await;
        assert_problem(r, 400, "invalid_path").await;
        let r = send(
            &app,
            Method::PUT,
            &format!("/v1/admin/users/{id}/roles"),
            Some(&admin),
            Some("application/json"),
            br#"{"roles":["admin"]}"#.to_vec(),
        )
        .await;
        assert_problem(r, 400, "invalid_path").await;
    }

    let long_q = "q".repeat(1000);
    let bad_queries: Vec<(&str, String, &str)> = vec![
        ("/v1/admin/users", "limit=abc".into(), "invalid_query"),
        ("/v1/admin/users", "limit=-1".into(), "invalid_query"),
        ("/v1/admin/users", "limit=0".into(), "invalid_query"),
        ("/v1/admin/users", "limit=101".into(), "invalid_query"),
        ("/v1/admin/users", "limit=".into(), "invalid_query"),
        (
            "/v1/admin/users",
            "limit=99999999999999999999999".into(),
            "invalid_query",
        ),
        ("/v1/admin/users", "limit=1&limit=2".into(), "invalid_query"),
        ("/v1/admin/users", format!("q={long_q}"), "invalid_query"),
        ("/v1/admin/users", "q=%00".into(), "invalid_query"),
        ("/v1/admin/users", "cursor=!!!".into(), "invalid_cursor"),
        (
            "/v1/admin/users",
            "cursor=bm90IGEgY3Vyc29y".into(),
            "invalid_cursor",
        ),
        (
            "/v1/admin/users",
            format!("cursor={}", "A".repeat(5000)),
            "invalid_cursor",
        ),
        ("/v1/admin/audit", "limit=abc".into(), "invalid_query"),
        ("/v1/admin/audit", "limit=1000".into(), "invalid_query"),
        ("/v1/admin/audit", "cursor=%FF".into(), "invalid_cursor"),
        (
            "/v1/admin/audit",
            "cursor=MTIzfGFiYw".into(),
            "invalid_cursor",
        ),
    ];
    for (path, query, code) in bad_queries {
        let r = send(
            &app,
            Method::GET,
            &format!("{path}?{query}"),
            Some(&admin),
            None,
            Vec::new(),
        )
        .await;
        assert_eq!(r.status(), 400, "{path}?{}", &query[..query.len().min(40)]);
        assert_problem(r, 400, code).await;
    }
    // A users cursor is not an audit cursor (their ids differ in kind).
    let page: serde_json::Value = send(
        &app,
        Method::GET,
        "/v1/admin/users?limit=1",
        Some(&admin),
        None,
        Vec::new(),
    )
    .await
    .json()
    .await
    .unwrap();
    let users_cursor = page["next_cursor"]
        .as_str()
        .expect("two users, so a next page");
    let r = send(
        &app,
        Method::GET,
        &format!("/v1/admin/audit?cursor={users_cursor}"),
        Some(&admin),
        None,
        Vec::new(),
    )
    .await;
    assert_problem(r, 400, "invalid_cursor").await;
}

#[tokio::test]
async fn bad_authorization_headers_are_401() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;
    let mut headers: Vec<HeaderValue> = vec![
        HeaderValue::from_static(""),
        HeaderValue::from_static("Bearer"),
        HeaderValue::from_static("Bearer    "),
        HeaderValue::from_static("Token abc"),
        HeaderValue::from_static("Bearer a.b"),
        HeaderValue::from_static("Bearer ...."),
        HeaderValue::from_static("Bearer eyJhbGciOiJIUzI1NiJ9.%%%.@@@"),
        HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").unwrap(),
        HeaderValue::from_str(&format!("Bearer {}", "a".repeat(16 * 1024))).unwrap(),
        HeaderValue::from_str(&format!("Bearer {}x", user.access_token)).unwrap(),
    ];
    headers.push(HeaderValue::from_str(&user.refresh_token).unwrap());
    let routes = [
        (Method::GET, "/v1/me"),
        (Method::PATCH, "/v1/me"),
        (Method::POST, "/v1/auth/logout"),
        (Method::GET, "/v1/admin/users"),
        (Method::GET, "/v1/admin/audit"),
    ];
    for (method, path) in routes {
        for value in &headers {
            let mut req = app
                .client
                .request(method.clone(), app.url(path))
                .header("authorization", value.clone());
            if method == Method::PATCH {
                req = req.json(&json!({"display_name": "Never Applied"}));
            }
            let r = req.send().await.unwrap();
            assert_problem(r, 401, "unauthorized").await;
        }
    }
    // The real token still works, and the name was never changed.
    let me: serde_json::Value = app
        .client
        .get(app.url("/v1/me"))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["display_name"], "Test User");
}

#[tokio::test]
async fn wrong_methods_on_identity_routes_are_problems() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::GET, "/v1/auth/login"),
        (Method::GET, "/v1/auth/register"),
        (Method::DELETE, "/v1/me"),
        (Method::POST, "/v1/admin/users"),
        (
            Method::GET,
            "/v1/admin/users/00000000-0000-0000-0000-000000000000/disable",
        ),
    ] {
        let r = app
            .client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
        assert_problem(r, 405, "method_not_allowed").await;
    }
}
