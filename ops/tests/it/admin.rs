//! The admin API: only admins get in; user search and pagination; roles and
//! disabling, each recorded in the audit log with actor and request id.

use std::collections::HashSet;

use boxoffice_models::users::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::users::TestUser;
use crate::harness::{TestApp, assert_problem};

/// Every admin route, with a request that an admin would get a 2xx for.
fn admin_routes(target: Uuid) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/v1/admin/users".into(), None),
        (Method::GET, "/v1/admin/users?q=user&limit=5".into(), None),
        (
            Method::PUT,
            format!("/v1/admin/users/{target}/roles"),
            Some(json!({"roles": ["participant", "admin"]})),
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/disable"),
            None,
        ),
        (Method::GET, "/v1/admin/audit".into(), None),
        (Method::GET, "/v1/admin/audit?limit=1".into(), None),
    ]
}

async fn call(
    app: &TestApp,
    user: Option<&TestUser>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path));
    if let Some(u) = user {
        req = req.header("authorization", u.bearer());
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn only_admins_reach_admin_routes() {
    let app = TestApp::spawn().await;
    let participant = app.create_user(&[]).await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let target = app.create_user(&[]).await;

    for (method, path, body) in admin_routes(target.id) {
        let r = call(&app, None, method.clone(), &path, body.as_ref()).await;
        assert_problem(r, 401, "unauthorized").await;
        for caller in [&participant, &organizer] {
            let r = call(&app, Some(caller), method.clone(), &path, body.as_ref()).await;
            assert_eq!(r.status(), 403, "{method} {path} let a non-admin through");
            assert_problem(r, 403, "forbidden").await;
        }
    }
    // A non-admin with a bad id or body still learns only "forbidden".
    let r = call(
        &app,
        Some(&participant),
        Method::PUT,
        "/v1/admin/users/not-a-uuid/roles",
        Some(&json!({"x": 1})),
    )
    .await;
    assert_problem(r, 403, "forbidden").await;

    // Nothing the non-admins tried had an effect.
    let mut conn = app.pool().get().await.unwrap();
    let t = boxoffice_models::users::find(&mut conn, target.id)
        .await
        .unwrap()
        .unwrap();
    assert!(t.disabled_at.is_none());
    assert_eq!(t.roles, vec!["participant"]);
    let audit = boxoffice_models::audit::list(&mut conn, None, 100)
        .await
        .unwrap();
    assert!(audit.is_empty(), "{audit:?}");

    // Control: the admin gets through on every route.
    for (method, path, body) in admin_routes(target.id) {
        let r = call(&app, Some(&admin), method.clone(), &path, body.as_ref()).await;
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    }
}

#[tokio::test]
async fn admins_search_and_page_through_users() {
    let app = TestApp::spawn().await;
    let admin = app.create_user(&[Role::Admin]).await;
    let mut ids = vec![admin.id];
    for _ in 0..6 {
        ids.push(app.create_user(&[]).await.id);
    }
    let percent = app
        .register("percent@example.com", "long enough password", "100% Fan")
        .await;
    let lookalike = app
        .register("lookalike@example.com", "long enough password", "100x Fan")
        .await;
    ids.extend([percent, lookalike]);

    // Walk every page of two.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/users?limit=2&cursor={c}"),
            None => "/v1/admin/users?limit=2".into(),
        };
        let r = call(&app, Some(&admin), Method::GET, &path, None).await;
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            assert!(item.get("password_hash").is_none(), "{item}");
            seen.push(item["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 20, "pagination does not end");
    }
    assert_eq!(seen.len(), ids.len(), "every user exactly once: {seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), ids.len());
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
    assert_eq!(pages, 5);
    assert_eq!(seen[0], admin.id, "oldest first");

    // `%` in the query is a literal, not a wildcard.
    let r = call(
        &app,
        Some(&admin),
        Method::GET,
        "/v1/admin/users?q=100%25",
        None,
    )
    .await;
    let page: Value = r.json().await.unwrap();
    let found: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(found, vec!["percent@example.com"]);
    // Case-insensitive, on the email too.
    let r = call(
        &app,
        Some(&admin),
        Method::GET,
        "/v1/admin/users?q=LOOKALIKE",
        None,
    )
    .await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], lookalike.to_string());
    // A query that matches nobody is an empty page.
    let r = call(
        &app,
        Some(&admin),
        Method::GET,
        "/v1/admin/users?q=_nobody_",
        None,
    )
    .await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn setting_roles_is_validated_and_audited() {
    let app = TestApp::spawn().await;
    let admin = app.create_user(&[Role::Admin]).await;
    let user = app.create_user(&[]).await;
    let path = format!("/v1/admin/users/{}/roles", user.id);

    let r = app
        .client
        .put(app.url(&path))
        .header("authorization", admin.bearer())
        .header("x-request-id", "roles-change-1")
        .json(&json!({"roles": ["organizer", "participant", "organizer"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["roles"], json!(["participant", "organizer"]));

    for (body, code, status) in [
        (json!({"roles": []}), "validation_failed", 422),
        (json!({"roles": ["root"]}), "validation_failed", 422),
        (json!({"roles": "admin"}), "invalid_body", 422),
    ] {
        let r = call(&app, Some(&admin), Method::PUT, &path, Some(&body)).await;
        assert_problem(r, status, code).await;
    }
    let r = call(
        &app,
        Some(&admin),
        Method::PUT,
        &format!("/v1/admin/users/{}/roles", Uuid::new_v4()),
        Some(&json!({"roles": ["admin"]})),
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    // An admin cannot demote themselves (and so lock everyone out).
    let own = format!("/v1/admin/users/{}/roles", admin.id);
    let r = call(
        &app,
        Some(&admin),
        Method::PUT,
        &own,
        Some(&json!({"roles": ["participant"]})),
    )
    .await;
    assert_problem(r, 409, "cannot_remove_own_admin").await;

    // Exactly one audit entry: the refused attempts left none.
    let r = call(&app, Some(&admin), Method::GET, "/v1/admin/audit", None).await;
    let page: Value = r.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let entry = &items[0];
    assert_eq!(entry["action"], "user.roles.set");
    assert_eq!(entry["actor_id"], admin.id.to_string());
    assert_eq!(entry["target_type"], "user");
    assert_eq!(entry["target_id"], user.id.to_string());
    assert_eq!(entry["request_id"], "roles-change-1");
    assert_eq!(entry["details"]["previous"], json!(["participant"]));
    assert_eq!(
        entry["details"]["roles"],
        json!(["participant", "organizer"])
    );
    assert!(entry["created_at"].is_string());
}

#[tokio::test]
async fn disabling_a_user_ends_every_session_and_is_audited() {
    let app = TestApp::spawn().await;
    let admin = app.create_user(&[Role::Admin]).await;
    let user = app.create_user(&[]).await;
    let second = app.login(&user.email, &user.password).await;
    let path = format!("/v1/admin/users/{}/disable", user.id);

    let r = app
        .client
        .post(app.url(&path))
        .header("authorization", admin.bearer())
        .header("x-request-id", "disable-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["disabled_at"].is_string(), "{body}");

    for access in [&user.access_token, &second.access_token] {
        let r = app
            .client
            .get(app.url("/v1/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "unauthorized").await;
    }
    for refresh in [&user.refresh_token, &second.refresh_token] {
        let r = app
            .client
            .post(app.url("/v1/auth/refresh"))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "invalid_refresh_token").await;
    }

    // Again: harmless, same answer, the first time is kept.
    let r = call(&app, Some(&admin), Method::POST, &path, None).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["disabled_at"], body["disabled_at"]);

    let r = call(
        &app,
        Some(&admin),
        Method::POST,
        &format!("/v1/admin/users/{}/disable", Uuid::new_v4()),
        None,
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    let r = call(
        &app,
        Some(&admin),
        Method::POST,
        &format!("/v1/admin/users/{}/disable", admin.id),
        None,
    )
    .await;
    assert_problem(r, 409, "cannot_disable_self").await;

    let r = call(&app, Some(&admin), Method::GET, "/v1/admin/audit", None).await;
    let page: Value = r.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    // Newest first.
    assert_eq!(items[0]["details"]["already_disabled"], true);
    assert_eq!(items[0]["details"]["sessions_revoked"], 0);
    assert_eq!(items[1]["action"], "user.disable");
    assert_eq!(items[1]["request_id"], "disable-1");
    assert_eq!(items[1]["details"]["already_disabled"], false);
    assert_eq!(items[1]["details"]["sessions_revoked"], 2);
}

#[tokio::test]
async fn the_audit_log_pages_newest_first() {
    let app = TestApp::spawn().await;
    let admin = app.create_user(&[Role::Admin]).await;
    let user = app.create_user(&[]).await;
    let path = format!("/v1/admin/users/{}/roles", user.id);
    let sets = [
        json!(["organizer"]),
        json!(["participant"]),
        json!(["admin"]),
        json!(["participant", "organizer"]),
    ];
    for roles in &sets {
        let r = call(
            &app,
            Some(&admin),
            Method::PUT,
            &path,
            Some(&json!({"roles": roles})),
        )
        .await;
        assert_eq!(r.status(), 200);
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/audit?limit=3&cursor={c}"),
            None => "/v1/admin/audit?limit=3".into(),
        };
        let page: Value = call(&app, Some(&admin), Method::GET, &path, None)
            .await
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["details"]["roles"].clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<Value> = vec![
        json!(["participant", "organizer"]),
        json!(["admin"]),
        json!(["participant"]),
        json!(["organizer"]),
    ];
    assert_eq!(seen, expected);
}
