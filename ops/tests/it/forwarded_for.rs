//! Behind trusted proxies, the client is the address the outermost trusted
//! proxy saw: entries the client wrote into `X-Forwarded-For` itself change
//! nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::harness::{TestApp, assert_problem};

/// Fixed one-minute windows: start early in a window, so it does not roll
/// over half-way and reset the count.
pub(crate) async fn wait_for_fresh_window() {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if into > 45 {
        tokio::time::sleep(Duration::from_secs(61 - into)).await;
    }
}

/// A request as one trusted proxy forwards it: whatever `X-Forwarded-For` the
/// client sent, with the client's real address appended.
fn through_the_proxy(
    app: &TestApp,
    written_by_client: &str,
    real_client: &str,
) -> reqwest::RequestBuilder {
    app.client.get(app.url("/v1/events")).header(
        "x-forwarded-for",
        format!("{written_by_client}, {real_client}"),
    )
}

#[tokio::test]
async fn spoofed_forwarded_for_entries_do_not_dodge_the_rate_limit() {
    let app = TestApp::builder()
        .config(|c| {
            c.trusted_proxies = 1;
            c.rate_limits.per_ip_per_minute = 5;
        })
        .spawn()
        .await;
    wait_for_fresh_window().await;
    // A new invented address each time: all of them count for the real client.
    for i in 0..5 {
        let r = through_the_proxy(&app, &format!("198.51.100.{i}"), "203.0.113.5")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i} is under the limit");
    }
    let r = through_the_proxy(&app, "198.51.100.77", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_problem(r, 429, "rate_limited").await;
    // Another real client, claiming to be the limited one, is counted as itself.
    let r = through_the_proxy(&app, "203.0.113.5", "203.0.113.6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn two_trusted_proxies_take_the_address_the_outer_one_saw() {
    let app = TestApp::builder()
        .config(|c| {
            c.trusted_proxies = 2;
            c.rate_limits.login_failures = 2;
        })
        .spawn()
        .await;
    let user = app.create_user(&[]).await;
    // Outer proxy saw 203.0.113.30 and appended it; the inner proxy appended
    // the outer one's address (10.0.0.5); the client wrote the first entry.
    let login = |client_wrote: &str, real: &str, password: &str| {
        app.client
            .post(app.url("/v1/auth/login"))
            .header(
                "x-forwarded-for",
                format!("{client_wrote}, {real}, 10.0.0.5"),
            )
            .json(&json!({"email": user.email, "password": password}))
            .send()
    };
    for i in 0..2 {
        let r = login(&format!("198.51.100.{i}"), "203.0.113.30", "wrong password")
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // The real client is locked out of the account whatever it writes.
    let r = login("198.51.100.50", "203.0.113.30", &user.password)
        .await
        .unwrap();
    assert_problem(r, 429, "too_many_login_attempts").await;
    // Another client behind the same inner proxy is not.
    let r = login("203.0.113.30", "203.0.113.31", &user.password)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
