//! Identity: registration, login, access-token attacks, refresh rotation and
//! reuse detection, logout, password changes, login lockout and rate limits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use boxoffice_models::sessions;
use boxoffice_models::users::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::harness::users::TestUser;
use crate::harness::{TestApp, assert_problem};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn get_me(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url("/v1/me"));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.send().await.unwrap()
}

async fn refresh_with_body(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

async fn login_attempt(
    app: &TestApp,
    email: &str,
    password: &str,
    from: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(ip) = from {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

// ------------------------------------------------------------------ register, login, me

#[tokio::test]
async fn register_login_and_read_me() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/v1/auth/register"))
        .json(&json!({"email": "  Ada.Lovelace@Example.COM ", "password": "analytical engine", "display_name": " Ada "}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let user: Value = r.json().await.unwrap();
    assert_eq!(
        user["email"], "ada.lovelace@example.com",
        "normalised: {user}"
    );
    assert_eq!(user["display_name"], "Ada");
    assert_eq!(user["roles"], json!(["participant"]));
    assert!(user["created_at"].is_string());
    assert!(user.get("password_hash").is_none(), "{user}");

    // Unique regardless of case.
    let r = app
        .client
        .post(app.url("/v1/auth/register"))
        .json(&json!({"email": "ADA.LOVELACE@example.com", "password": "another password", "display_name": "Imposter"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 409, "email_taken").await;

    let r = login_attempt(&app, "ada.LOVELACE@example.com", "analytical engine", None).await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert!(
        cookie.starts_with(&format!("boxoffice_refresh={refresh};")),
        "{cookie}"
    );
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/v1/auth"] {
        assert!(cookie.contains(attr), "cookie {cookie} lacks {attr}");
    }

    // The access token carries the documented claims.
    let access = tokens["access_token"].as_str().unwrap();
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    for claim in ["sub", "sid", "jti", "roles", "iat", "exp", "iss", "aud"] {
        assert!(
            payload.get(claim).is_some(),
            "claim {claim} missing: {payload}"
        );
    }
    assert_eq!(payload["sub"], user["id"]);
    assert_eq!(
        payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap(),
        900
    );

    let r = get_me(&app, Some(&format!("Bearer {access}"))).await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["email"], "ada.lovelace@example.com");

    // The stored hash is argon2id, never the password.
    let mut conn = app.pool().get().await.unwrap();
    let stored = boxoffice_models::users::find_by_email(&mut conn, "ada.lovelace@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$"),
        "{}",
        stored.password_hash
    );
}

#[tokio::test]
async fn registration_enforces_the_password_policy_and_email_format() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"email": "a@example.com", "password": "short", "display_name": "A"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": "A@Example.com", "display_name": "A"}),
            "password",
        ),
        (
            json!({"email": "longer-address@example.com", "password": "Longer-Address@example.COM", "display_name": "A"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": "p".repeat(129), "display_name": "A"}),
            "password",
        ),
        (
            json!({"email": "not an email", "password": "long enough password", "display_name": "A"}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "password": "long enough password", "display_name": "   "}),
            "display_name",
        ),
        (
            json!({"email": "a@example.com", "password": "long enough password", "display_name": "x".repeat(101)}),
            "display_name",
        ),
    ];
    for (body, field) in cases {
        let r = app
            .client
            .post(app.url("/v1/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(problem["field"], field, "{body}");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;
    let wrong = assert_problem(
        login_attempt(&app, &user.email, "not the password", None).await,
        401,
        "invalid_credentials",
    )
    .await;
    let unknown = assert_problem(
        login_attempt(&app, "nobody@example.com", "not the password", None).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(wrong["title"], unknown["title"]);
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in() {
    let app = TestApp::spawn().await;
    let admin = app.create_user(&[Role::Admin]).await;
    let user = app.create_user(&[]).await;
    let r = app
        .client
        .post(app.url(&format!("/v1/admin/users/{}/disable", user.id)))
        .header("authorization", admin.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert_problem(
        login_attempt(&app, &user.email, &user.password, None).await,
        403,
        "account_disabled",
    )
    .await;
    // Without the password nothing about the account is revealed.
    assert_problem(
        login_attempt(&app, &user.email, "wrong password", None).await,
        401,
        "invalid_credentials",
    )
    .await;
}

// ------------------------------------------------------------------ access-token attacks

fn sign(key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

/// Claims naming `user`'s real, live session: only the deliberate defect makes a
/// crafted token fail.
fn claims_for(app: &TestApp, user: &TestUser) -> Value {
    let payload = user.access_token.split('.').nth(1).unwrap();
    let issued: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let t = now();
    json!({
        "sub": user.id.to_string(),
        "sid": issued["sid"],
        "jti": "crafted",
        "roles": ["participant"],
        "iat": t,
        "exp": t + 600,
        "iss": app.state.config.jwt.issuer,
        "aud": app.state.config.jwt.audience,
    })
}

#[tokio::test]
async fn token_attacks_are_all_401() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;
    let other = app.create_user(&[]).await;
    let key = app.state.config.jwt.secret.clone();
    let good = claims_for(&app, &user);

    // Control: a token crafted the same way with nothing wrong is accepted, so
    // every rejection below is due to its one defect.
    let r = get_me(&app, Some(&format!("Bearer {}", sign(&key, &good)))).await;
    assert_eq!(r.status(), 200, "the control token must work");

    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = good.clone();
        f(c.as_object_mut().unwrap());
        c
    };

    let mut attacks: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("empty bearer", Some("Bearer ".into())),
        ("not a jwt", Some("Bearer not.a.jwt".into())),
        (
            "basic scheme",
            Some(format!("Basic {}", URL_SAFE_NO_PAD.encode("a:b"))),
        ),
    ];
    // alg none, unsigned.
    let none_header = json!({"alg": "none", "typ": "JWT"});
    attacks.push((
        "alg none",
        Some(format!("Bearer {}.{}.", b64(&none_header), b64(&good))),
    ));
    attacks.push((
        "alg none with a signature",
        Some(format!(
            "Bearer {}.{}.{}",
            b64(&none_header),
            b64(&good),
            "c2ln"
        )),
    ));
    // Signed with another key.
    attacks.push((
        "another key",
        Some(format!(
            "Bearer {}",
            sign(b"an attacker's key, also long enough!!", &good)
        )),
    ));
    // A real token with its payload changed (roles raised, then a different user).
    let real = &user.access_token;
    let parts: Vec<&str> = real.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["roles"] = json!(["admin"]);
    attacks.push((
        "tampered roles",
        Some(format!(
            "Bearer {}.{}.{}",
            parts[0],
            b64(&payload),
            parts[2]
        )),
    ));
    payload["sub"] = json!(other.id.to_string());
    attacks.push((
        "tampered subject",
        Some(format!(
            "Bearer {}.{}.{}",
            parts[0],
            b64(&payload),
            parts[2]
        )),
    ));
    // Validly signed, but with a defect in the claims.
    let t = now();
    let defects: Vec<(&str, Value)> = vec![
        (
            "expired",
            with(&|c| {
                c.insert("iat".into(), json!(t - 1000));
                c.insert("exp".into(), json!(t - 60));
            }),
        ),
        (
            "wrong aud",
            with(&|c| {
                c.insert("aud".into(), json!("some-other-api"));
            }),
        ),
        (
            "wrong iss",
            with(&|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            }),
        ),
        (
            "missing exp",
            with(&|c| {
                c.remove("exp");
            }),
        ),
        (
            "missing aud",
            with(&|c| {
                c.remove("aud");
            }),
        ),
        (
            "missing iss",
            with(&|c| {
                c.remove("iss");
            }),
        ),
        (
            "missing sub",
            with(&|c| {
                c.remove("sub");
            }),
        ),
        // A session belongs to one user: another user's id with it is refused.
        (
            "sub does not own sid",
            with(&|c| {
                c.insert("sub".into(), json!(other.id.to_string()));
            }),
        ),
        (
            "unknown session",
            with(&|c| {
                c.insert("sid".into(), json!(uuid::Uuid::new_v4().to_string()));
            }),
        ),
    ];
    for (name, claims) in &defects {
        attacks.push((name, Some(format!("Bearer {}", sign(&key, claims)))));
    }
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &good,
        &EncodingKey::from_secret(&key),
    )
    .unwrap();
    attacks.push(("HS512 instead of HS256", Some(format!("Bearer {hs512}"))));

    for (name, authorization) in attacks {
        let r = get_me(&app, authorization.as_deref()).await;
        assert_eq!(r.status(), 401, "attack {name:?} was not refused");
        assert_problem(r, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn tokens_of_a_disabled_user_and_after_logout_are_401() {
    let app = TestApp::spawn().await;
    let admin = app.create_user(&[Role::Admin]).await;
    let victim = app.create_user(&[]).await;
    let leaver = app.create_user(&[]).await;

    for u in [&victim, &leaver] {
        assert_eq!(get_me(&app, Some(&u.bearer())).await.status(), 200);
    }

    let r = app
        .client
        .post(app.url(&format!("/v1/admin/users/{}/disable", victim.id)))
        .header("authorization", admin.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_problem(
        get_me(&app, Some(&victim.bearer())).await,
        401,
        "unauthorized",
    )
    .await;

    let r = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header("authorization", leaver.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("boxoffice_refresh=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_problem(
        get_me(&app, Some(&leaver.bearer())).await,
        401,
        "unauthorized",
    )
    .await;
    // Logging out twice with the dead token is just another 401.
    let r = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header("authorization", leaver.bearer())
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
    // The session's refresh token is dead too.
    assert_problem(
        refresh_with_body(&app, &leaver.refresh_token).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    // The admin, untouched, still works.
    assert_eq!(get_me(&app, Some(&admin.bearer())).await.status(), 200);
}

// ------------------------------------------------------------------ refresh rotation

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;

    let r = refresh_with_body(&app, &user.refresh_token).await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let second: Value = r.json().await.unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    let second_access = second["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, user.refresh_token);
    assert!(
        cookie.starts_with(&format!("boxoffice_refresh={second_refresh};")),
        "{cookie}"
    );
    assert_eq!(
        get_me(&app, Some(&format!("Bearer {second_access}")))
            .await
            .status(),
        200
    );

    // Rotation again works with the newest token...
    let r = refresh_with_body(&app, &second_refresh).await;
    assert_eq!(r.status(), 200);
    let third: Value = r.json().await.unwrap();
    let third_refresh = third["refresh_token"].as_str().unwrap().to_owned();
    let third_access = third["access_token"].as_str().unwrap().to_owned();

    // ...but presenting an old one is reuse: 401, and the whole family dies.
    assert_problem(
        refresh_with_body(&app, &user.refresh_token).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_problem(
        refresh_with_body(&app, &third_refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    for access in [&user.access_token, &second_access, &third_access] {
        assert_problem(
            get_me(&app, Some(&format!("Bearer {access}"))).await,
            401,
            "unauthorized",
        )
        .await;
    }

    let sid = {
        let payload = user.access_token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["sid"].as_str().unwrap().parse().unwrap()
    };
    let mut conn = app.pool().get().await.unwrap();
    let session = sessions::find(&mut conn, sid).await.unwrap().unwrap();
    assert!(session.revoked_at.is_some());
    assert_eq!(
        session.revoked_reason.as_deref(),
        Some("refresh_token_reuse")
    );

    // Signing in again starts a new, working family.
    let fresh = app.login(&user.email, &user.password).await;
    assert_eq!(
        refresh_with_body(&app, &fresh.refresh_token).await.status(),
        200
    );
}

#[tokio::test]
async fn refresh_reads_the_cookie_when_the_body_is_empty() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;

    let r = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header(
            "cookie",
            format!("theme=dark; boxoffice_refresh={}", user.refresh_token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let next = body["refresh_token"].as_str().unwrap();
    assert_ne!(next, user.refresh_token);

    // No body and no cookie: nothing to refresh; the cookie is cleared.
    let r = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_problem(r, 401, "invalid_refresh_token").await;

    // Unknown and expired tokens are 401 too.
    assert_problem(
        refresh_with_body(&app, "never-issued").await,
        401,
        "invalid_refresh_token",
    )
    .await;
    let mut conn = app.raw_conn().await;
    use diesel_async::RunQueryDsl;
    diesel::sql_query(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE used_at IS NULL",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_problem(
        refresh_with_body(&app, next).await,
        401,
        "invalid_refresh_token",
    )
    .await;
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_let_at_most_one_through() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;
    let attempts = (0..6).map(|_| refresh_with_body(&app, &user.refresh_token));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    // Marking the token used is one conditional UPDATE: exactly one wins.
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
    // Every loser was a reuse, so the session is gone for everyone.
    assert_problem(
        get_me(&app, Some(&user.bearer())).await,
        401,
        "unauthorized",
    )
    .await;
}

// ------------------------------------------------------------------ roles, me

#[tokio::test]
async fn role_changes_apply_to_existing_tokens_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.create_user(&[Role::Admin]).await;
    let user = app.create_user(&[]).await;
    let list = |token: String| {
        app.client
            .get(app.url("/v1/admin/users"))
            .header("authorization", token)
            .send()
    };

    assert_problem(list(user.bearer()).await.unwrap(), 403, "forbidden").await;
    let set = |roles: Value| {
        app.client
            .put(app.url(&format!("/v1/admin/users/{}/roles", user.id)))
            .header("authorization", admin.bearer())
            .json(&json!({"roles": roles}))
            .send()
    };
    assert_eq!(
        set(json!(["participant", "admin"])).await.unwrap().status(),
        200
    );
    // The same token, minted when the user was a participant, now passes.
    assert_eq!(list(user.bearer()).await.unwrap().status(), 200);
    assert_eq!(set(json!(["participant"])).await.unwrap().status(), 200);
    assert_problem(list(user.bearer()).await.unwrap(), 403, "forbidden").await;
}

#[tokio::test]
async fn me_changes_only_the_callers_account() {
    let app = TestApp::spawn().await;
    let alice = app.create_user(&[]).await;
    let bob = app.create_user(&[]).await;

    let r = app
        .client
        .patch(app.url("/v1/me"))
        .header("authorization", alice.bearer())
        .json(&json!({"display_name": "  Alice A.  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["display_name"], "Alice A.");
    assert_eq!(me["id"], alice.id.to_string());

    // Each token sees its own account only.
    let alice_me: Value = get_me(&app, Some(&alice.bearer()))
        .await
        .json()
        .await
        .unwrap();
    let bob_me: Value = get_me(&app, Some(&bob.bearer()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alice_me["email"], alice.email);
    assert_eq!(bob_me["email"], bob.email);
    assert_eq!(bob_me["display_name"], "Test User");
    // An id smuggled into the body is refused, not applied to someone else.
    let r = app
        .client
        .patch(app.url("/v1/me"))
        .header("authorization", alice.bearer())
        .json(&json!({"id": bob.id, "display_name": "Hijacked"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, "invalid_body").await;
    let bob_me: Value = get_me(&app, Some(&bob.bearer()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bob_me["display_name"], "Test User");
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;
    let other_session = app.login(&user.email, &user.password).await;
    let patch = |body: Value| {
        app.client
            .patch(app.url("/v1/me"))
            .header("authorization", user.bearer())
            .json(&body)
            .send()
    };

    let p = assert_problem(
        patch(json!({"new_password": "brand new password"}))
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "current_password");
    let r = patch(json!({"current_password": "wrong one!", "new_password": "brand new password"}))
        .await
        .unwrap();
    assert_problem(r, 403, "invalid_current_password").await;
    let p = assert_problem(
        patch(json!({"current_password": user.password, "new_password": "short"}))
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "new_password");
    // Nothing changed so far: the other session still works.
    assert_eq!(
        get_me(
            &app,
            Some(&format!("Bearer {}", other_session.access_token))
        )
        .await
        .status(),
        200
    );

    let r = patch(json!({"current_password": user.password, "new_password": "brand new password"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The caller's session stays; the other one is over, refresh included.
    assert_eq!(get_me(&app, Some(&user.bearer())).await.status(), 200);
    assert_problem(
        get_me(
            &app,
            Some(&format!("Bearer {}", other_session.access_token)),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        refresh_with_body(&app, &other_session.refresh_token).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_eq!(
        refresh_with_body(&app, &user.refresh_token).await.status(),
        200
    );

    assert_problem(
        login_attempt(&app, &user.email, &user.password, None).await,
        401,
        "invalid_credentials",
    )
    .await;
    app.login(&user.email, "brand new password").await;
}

// ------------------------------------------------------------------ lockout and rate limits

/// Fixed one-minute windows: start a rate-limit test early in a window, so the
/// window does not roll over half-way and reset the count.
async fn wait_for_fresh_window() {
    let into = now() % 60;
    if into > 45 {
        tokio::time::sleep(Duration::from_secs(61 - into)).await;
    }
}

#[tokio::test]
async fn the_lockout_ends_after_its_duration() {
    let app = TestApp::builder()
        .config(|c| {
            c.rate_limits.login_failures = 3;
            c.rate_limits.lockout = Duration::from_secs(2);
        })
        .spawn()
        .await;
    let user = app.create_user(&[]).await;
    for _ in 0..3 {
        assert_eq!(
            login_attempt(&app, &user.email, "wrong password", None)
                .await
                .status(),
            401
        );
    }
    assert_problem(
        login_attempt(&app, &user.email, &user.password, None).await,
        429,
        "too_many_login_attempts",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        login_attempt(&app, &user.email, &user.password, None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn wrong_current_passwords_count_towards_the_lockout() {
    let app = TestApp::builder()
        .config(|c| c.rate_limits.login_failures = 3)
        .spawn()
        .await;
    let user = app.create_user(&[]).await;
    let change = |current: &str| {
        app.client
            .patch(app.url("/v1/me"))
            .header("authorization", user.bearer())
            .json(&json!({"current_password": current, "new_password": "a whole new password"}))
            .send()
    };
    for _ in 0..3 {
        assert_problem(
            change("guess guess").await.unwrap(),
            403,
            "invalid_current_password",
        )
        .await;
    }
    assert_problem(
        change(&user.password).await.unwrap(),
        429,
        "too_many_login_attempts",
    )
    .await;
    assert_problem(
        login_attempt(&app, &user.email, &user.password, None).await,
        429,
        "too_many_login_attempts",
    )
    .await;
}

#[tokio::test]
async fn per_ip_rate_limit_answers_429_with_retry_after() {
    wait_for_fresh_window().await;
    let app = TestApp::builder()
        .config(|c| c.rate_limits.per_ip_per_minute = 5)
        .spawn()
        .await;
    for _ in 0..5 {
        let r = get_me(&app, None).await;
        assert_eq!(
            r.status(),
            401,
            "under the limit the route answers as usual"
        );
    }
    let r = get_me(&app, None).await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(r, 429, "rate_limited").await;
    // Probes are never limited.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn per_user_rate_limit_follows_the_user_across_addresses() {
    let app = TestApp::builder()
        .config(|c| {
            c.trusted_proxies = 1;
            c.rate_limits.per_user_per_minute = 4;
        })
        .spawn()
        .await;
    let user = app.create_user(&[]).await;
    let other = app.create_user(&[]).await;
    wait_for_fresh_window().await;
    let me_from = |u: &TestUser, ip: String| {
        app.client
            .get(app.url("/v1/me"))
            .header("authorization", u.bearer())
            .header("x-forwarded-for", ip)
            .send()
    };
    for i in 0..4 {
        assert_eq!(
            me_from(&user, format!("192.0.2.{i}"))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_problem(
        me_from(&user, "192.0.2.50".into()).await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(
        me_from(&other, "192.0.2.51".into()).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn rate_limits_fail_open_when_redis_is_down() {
    // Nothing listens on port 1 of loopback.
    let app = TestApp::builder()
        .redis_url("redis://127.0.0.1:1/")
        .spawn()
        .await;
    let started = std::time::Instant::now();
    app.register("down@example.com", "redis is down today", "Down")
        .await;
    for _ in 0..3 {
        assert_eq!(
            login_attempt(&app, "down@example.com", "wrong password", None)
                .await
                .status(),
            401
        );
    }
    let tokens = app.login("down@example.com", "redis is down today").await;
    assert_eq!(
        get_me(&app, Some(&format!("Bearer {}", tokens.access_token)))
            .await
            .status(),
        200
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------------ session lifetime

#[tokio::test]
async fn an_expired_session_ends_its_access_tokens() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;
    let bystander = app.create_user(&[]).await;
    assert_eq!(get_me(&app, Some(&user.bearer())).await.status(), 200);
    let mut conn = app.raw_conn().await;
    use diesel_async::RunQueryDsl;
    diesel::sql_query(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(user.id)
    .execute(&mut conn)
    .await
    .unwrap();
    // Changed behind the API's back: it hears of it from Postgres's
    // notification (about a millisecond; see `change_feed`).
    let changed = std::time::Instant::now();
    let mut answer = get_me(&app, Some(&user.bearer())).await;
    while answer.status() == 200 && changed.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        answer = get_me(&app, Some(&user.bearer())).await;
    }
    assert_problem(answer, 401, "unauthorized").await;
    assert_problem(
        refresh_with_body(&app, &user.refresh_token).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_eq!(get_me(&app, Some(&bystander.bearer())).await.status(), 200);
}

#[tokio::test]
async fn purge_deletes_only_sessions_dead_for_longer_than_an_access_token() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&[]).await;
    for _ in 0..4 {
        app.login(&user.email, &user.password).await;
    }
    // Five sessions: live, revoked just now, revoked long ago, expired just now,
    // expired long ago.
    let mut conn = app.raw_conn().await;
    use diesel_async::RunQueryDsl;
    let rows = diesel::sql_query(
        "WITH s AS (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM sessions)
         UPDATE sessions SET
           revoked_at = CASE s.n WHEN 2 THEN now() - interval '1 minute'
                                 WHEN 3 THEN now() - interval '16 minutes' END,
           expires_at = CASE s.n WHEN 4 THEN now() - interval '1 minute'
                                 WHEN 5 THEN now() - interval '16 minutes'
                                 ELSE sessions.expires_at END
         FROM s WHERE s.id = sessions.id",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows, 5);

    let mut pooled = app.pool().get().await.unwrap();
    let purged = sessions::purge_expired(&mut pooled, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(purged, 2);
    // Running it again finds nothing more: safe to run from several workers.
    assert_eq!(
        sessions::purge_expired(&mut pooled, chrono::Utc::now())
            .await
            .unwrap(),
        0
    );

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let left: Count = diesel::sql_query("SELECT count(*) AS n FROM sessions")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(left.n, 3);
    // Refresh tokens went with their sessions.
    let orphans: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM refresh_tokens t WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = t.session_id)",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(orphans.n, 0);
    let tokens: Count = diesel::sql_query("SELECT count(*) AS n FROM refresh_tokens")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(tokens.n, 3);
    // The live session is among the survivors.
    assert_eq!(get_me(&app, Some(&user.bearer())).await.status(), 200);
}
