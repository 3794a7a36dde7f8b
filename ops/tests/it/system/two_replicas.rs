//! Two API processes share one Redis: a login lockout earned on one holds on
//! the other, and rate limits count requests to both.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use boxoffice_models::testing::TestDatabase;
use serde_json::json;

use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;

fn minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

/// Waits until at least `margin` seconds remain in the current minute, so a
/// burst of requests falls into one rate-limit window.
async fn start_of_window(margin: u64) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if secs > 60 - margin {
        tokio::time::sleep(Duration::from_secs(61 - secs)).await;
    }
}

async fn pair(deployment: &Deployment) -> (BoxofficeProcess, BoxofficeProcess) {
    (
        BoxofficeProcess::start(deployment, "serve").await,
        BoxofficeProcess::start(deployment, "serve").await,
    )
}

#[tokio::test]
async fn lockout_holds_across_api_processes() {
    let db = TestDatabase::create().await.unwrap();
    let deployment = Deployment::new(
        &db.url,
        &redis_url(),
        &format!("t{}", uuid::Uuid::new_v4().simple()),
    )
    .env("BOXOFFICE_LOGIN_MAX_FAILURES", "10")
    .env("BOXOFFICE_RATE_LIMIT_PER_IP", "100000");
    let (a, b) = pair(&deployment).await;
    let client = reqwest::Client::new();
    let r = client
        .post(a.url("/v1/auth/register"))
        .json(&json!({ "email": "victim@example.com", "password": "correct-horse-battery", "display_name": "V" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Ten wrong passwords, alternating between the replicas.
    for i in 0..10 {
        let api = if i % 2 == 0 { &a } else { &b };
        let r = client
            .post(api.url("/v1/auth/login"))
            .json(&json!({ "email": "victim@example.com", "password": format!("wrong-guess-{i}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    // Locked on both, even with the right password.
    for api in [&a, &b] {
        let r = client
            .post(api.url("/v1/auth/login"))
            .json(&json!({ "email": "victim@example.com", "password": "correct-horse-battery" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "too_many_login_attempts");
    }
}

#[tokio::test]
async fn per_ip_and_per_user_limits_count_both_processes() {
    const LIMIT: usize = 30;
    let db = TestDatabase::create().await.unwrap();
    let deployment = Deployment::new(
        &db.url,
        &redis_url(),
        &format!("t{}", uuid::Uuid::new_v4().simple()),
    )
    .env("BOXOFFICE_RATE_LIMIT_PER_IP", &LIMIT.to_string())
    .env("BOXOFFICE_RATE_LIMIT_PER_USER", "100000");
    let (a, b) = pair(&deployment).await;
    let client = reqwest::Client::new();

    // Per IP: 2 × LIMIT requests over both processes within one window; each
    // process alone would let LIMIT through, together they let LIMIT through.
    loop {
        start_of_window(20).await;
        let window = minute();
        let mut allowed = 0;
        let mut limited_by = [0, 0];
        for i in 0..2 * LIMIT {
            let (idx, api) = if i % 2 == 0 { (0, &a) } else { (1, &b) };
            let r = client.get(api.url("/v1/events")).send().await.unwrap();
            match r.status().as_u16() {
                429 => {
                    assert!(r.headers().contains_key("retry-after"));
                    limited_by[idx] += 1;
                }
                s => {
                    assert!(s < 500, "status {s}");
                    allowed += 1;
                }
            }
        }
        if minute() != window {
            continue; // The window turned mid-burst: counts are not comparable.
        }
        assert_eq!(allowed, LIMIT, "one shared budget for both processes");
        assert!(
            limited_by[0] > 0 && limited_by[1] > 0,
            "both processes refuse: {limited_by:?}"
        );
        break;
    }
}

#[tokio::test]
async fn per_user_limit_counts_both_processes() {
    const LIMIT: usize = 20;
    let db = TestDatabase::create().await.unwrap();
    let deployment = Deployment::new(
        &db.url,
        &redis_url(),
        &format!("t{}", uuid::Uuid::new_v4().simple()),
    )
    .env("BOXOFFICE_RATE_LIMIT_PER_IP", "100000")
    .env("BOXOFFICE_RATE_LIMIT_PER_USER", &LIMIT.to_string());
    let (a, b) = pair(&deployment).await;
    let client = reqwest::Client::new();
    client
        .post(a.url("/v1/auth/register"))
        .json(&json!({ "email": "busy@example.com", "password": "a-long-enough-password", "display_name": "B" }))
        .send()
        .await
        .unwrap();
    let tokens: serde_json::Value = client
        .post(b.url("/v1/auth/login"))
        .json(&json!({ "email": "busy@example.com", "password": "a-long-enough-password" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    loop {
        start_of_window(20).await;
        let window = minute();
        let mut allowed = 0;
        for i in 0..2 * LIMIT {
            let api = if i % 2 == 0 { &a } else { &b };
            let r = client
                .get(api.url("/v1/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            if r.status() != 429 {
                assert_eq!(r.status(), 200);
                allowed += 1;
            } else {
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["code"], "rate_limited");
            }
        }
        if minute() != window {
            continue;
        }
        assert_eq!(
            allowed, LIMIT,
            "one shared budget for the user on both processes"
        );
        break;
    }
}
