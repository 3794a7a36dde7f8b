//! Failed logins lock the account for the address they come from, the address
//! itself after many failures, and, slowly, the account for devices it does
//! not know: nobody can lock a user out from elsewhere, and guessing spread
//! over many addresses is still stopped.

use std::sync::atomic::{AtomicU32, Ordering};

use futures::StreamExt;
use serde_json::json;

use crate::harness::{TestApp, assert_problem};

/// An app behind one trusted proxy, so each test can speak from any address
/// (the proxy's `X-Forwarded-For` entry).
async fn behind_a_proxy(
    edit: impl FnOnce(&mut boxoffice_api::config::ApiConfig) + 'static,
) -> TestApp {
    TestApp::builder()
        .config(|c| c.trusted_proxies = 1)
        .config(edit)
        .spawn()
        .await
}

async fn login_from(app: &TestApp, email: &str, password: &str, ip: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ten_failures_from_one_address_do_not_lock_the_account_for_another() {
    let app = behind_a_proxy(|_| {}).await;
    let user = app.create_user(&[]).await;
    for _ in 0..10 {
        let r = login_from(&app, &user.email, "wrong password", "198.51.100.1").await;
        assert_problem(r, 401, "invalid_credentials").await;
    }
    // The guessing address is locked out of this account, even with the
    // right password, for the lockout's length.
    let r = login_from(&app, &user.email, &user.password, "198.51.100.1").await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=900).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let p = assert_problem(r, 429, "too_many_login_attempts").await;
    assert_eq!(p["retry_after"], retry_after);
    // Case and spaces in the email do not dodge it.
    let shouted = format!("  {}  ", user.email.to_uppercase());
    assert_problem(
        login_from(&app, &shouted, &user.password, "198.51.100.1").await,
        429,
        "too_many_login_attempts",
    )
    .await;
    // The user, from anywhere else, signs in.
    assert_eq!(
        login_from(&app, &user.email, &user.password, "203.0.113.20")
            .await
            .status(),
        200
    );
    // And the guessing address may still sign in to another account.
    let other = app.create_user(&[]).await;
    assert_eq!(
        login_from(&app, &other.email, &other.password, "198.51.100.1")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_per_account_limit_stops_a_thousand_guesses_spread_over_a_hundred_addresses() {
    let app = behind_a_proxy(|c| {
        c.rate_limits.account_failures = 100;
        c.rate_limits.login_failures = 10;
    })
    .await;
    let user = app.create_user(&[]).await;
    // The user's own device signed in before the attack.
    let home = "192.0.2.10";
    assert_eq!(
        login_from(&app, &user.email, &user.password, home)
            .await
            .status(),
        200
    );

    // 1,000 wrong guesses: 10 from each of 100 addresses, 4 at a time.
    let checked = AtomicU32::new(0);
    let refused = AtomicU32::new(0);
    let guesses = (0..100u32).flat_map(|a| (0..10u32).map(move |g| (a, g)));
    futures::stream::iter(guesses)
        .for_each_concurrent(4, |(a, g)| {
            let (app, user, checked, refused) = (&app, &user, &checked, &refused);
            async move {
                let ip = format!("10.{}.{}.1", a / 250, a % 250);
                let r = login_from(app, &user.email, &format!("guess {a}-{g}"), &ip).await;
                match r.status().as_u16() {
                    401 => checked.fetch_add(1, Ordering::Relaxed),
                    429 => refused.fetch_add(1, Ordering::Relaxed),
                    other => panic!("guess answered {other}"),
                };
            }
        })
        .await;
    let (checked, refused) = (checked.into_inner(), refused.into_inner());
    println!("guesses: {checked} checked against the password, {refused} refused unchecked");
    assert_eq!(checked + refused, 1000);
    // At most the limit, plus the (at most 3) others in flight that were
    // already past the check while the 100th failure was being counted.
    assert!(
        (100..=103).contains(&checked),
        "{checked} guesses were checked against the password"
    );

    // The right password from a device the account does not know is refused
    // too: the guesser cannot tell a right guess from a wrong one.
    assert_problem(
        login_from(&app, &user.email, &user.password, "203.0.113.99").await,
        429,
        "too_many_login_attempts",
    )
    .await;
    // The user's known device keeps working.
    assert_eq!(
        login_from(&app, &user.email, &user.password, home)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_successful_login_forgives_the_failures_of_its_address() {
    let app = behind_a_proxy(|_| {}).await;
    let user = app.create_user(&[]).await;
    // 18 failures from one address, a success after every 9: without the
    // success, the 10th failure would lock the address out of the account.
    for round in 0..2 {
        for _ in 0..9 {
            assert_eq!(
                login_from(&app, &user.email, "wrong password", "192.0.2.1")
                    .await
                    .status(),
                401
            );
        }
        assert_eq!(
            login_from(&app, &user.email, &user.password, "192.0.2.1")
                .await
                .status(),
            200,
            "round {round}: 9 failures then success must not lock"
        );
    }
}

#[tokio::test]
async fn many_failures_from_one_address_lock_that_address() {
    let app = behind_a_proxy(|c| c.rate_limits.ip_failures = 10).await;
    let user = app.create_user(&[]).await;
    for i in 0..10 {
        let r = login_from(
            &app,
            &format!("guess{i}@example.com"),
            "wrong password",
            "203.0.113.7",
        )
        .await;
        assert_problem(r, 401, "invalid_credentials").await;
    }
    let r = login_from(&app, &user.email, &user.password, "203.0.113.7").await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 429, "too_many_login_attempts").await;
    assert_eq!(
        login_from(&app, &user.email, &user.password, "203.0.113.8")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn lockout_is_shared_by_replicas() {
    let first = behind_a_proxy(|_| {}).await;
    let second = TestApp::builder()
        .config(|c| c.trusted_proxies = 1)
        .replica_of(&first)
        .spawn()
        .await;
    let user = first.create_user(&[]).await;
    for i in 0..10 {
        let app = if i % 2 == 0 { &first } else { &second };
        let r = login_from(app, &user.email, "wrong password", "198.51.100.9").await;
        assert_eq!(r.status(), 401);
    }
    for app in [&first, &second] {
        assert_problem(
            login_from(app, &user.email, &user.password, "198.51.100.9").await,
            429,
            "too_many_login_attempts",
        )
        .await;
    }
}
