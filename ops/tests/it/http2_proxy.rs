//! A proxy in front of `serve` may speak cleartext HTTP/2 to it and carry
//! many buyers as streams of one connection. Each stream is its own request:
//! a long poll does not hold the others back, each buyer gets its own
//! answer, each client behind the proxy is rate-limited on its own, and the
//! body limit holds.

use std::time::Duration;

use futures::future::join_all;
use reqwest::Version;
use serde_json::Value;

use crate::checkout::fixtures::{event_on_sale, order, start, started_run};
use crate::forwarded_for::wait_for_fresh_window;
use crate::harness::users::TestUser;
use crate::harness::{TestApp, assert_problem};

const BUYERS: usize = 8;
/// Long enough that the other buyers' requests are all answered first, even
/// on a loaded machine.
const LONG_POLL_SECS: u64 = 5;

/// A client that speaks HTTP/2 from the first byte (prior knowledge), as a
/// proxy does upstream; it keeps one connection to the API.
fn http2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("http client")
}

#[tokio::test]
async fn buyers_on_one_http2_connection_each_get_their_own_answer_beside_a_long_poll() {
    let app = TestApp::spawn().await;
    let proxy = http2_client();
    let organizer = app.create_user(&[]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2500, 10)], 15).await;
    let mut buyers: Vec<TestUser> = Vec::with_capacity(BUYERS);
    for _ in 0..BUYERS {
        buyers.push(app.create_user(&[]).await);
    }

    // Every buyer starts a checkout at once, all on the one connection.
    let started = join_all(buyers.iter().map(|buyer| async {
        let r = start(&app.base_url, &proxy, buyer, order(&event, 0, 1), None).await;
        assert_eq!(r.version(), Version::HTTP_2);
        started_run(r).await
    }))
    .await;

    // The first buyer waits for its run to change (it will not: no worker
    // runs here), on the same connection.
    let first = &buyers[0];
    let url = app.url(&format!("/v1/workflows/{}", started[0]));
    let r = proxy
        .get(&url)
        .header("authorization", first.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let long_poll = tokio::spawn({
        let (proxy, bearer) = (proxy.clone(), first.bearer());
        let url = format!("{url}?wait={LONG_POLL_SECS}");
        async move {
            proxy
                .get(url)
                .header("authorization", bearer)
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap()
        }
    });

    // Meanwhile every buyer reads its own account and its own run.
    for (buyer, run_id) in buyers.iter().zip(&started) {
        let (me, run) = tokio::join!(
            proxy
                .get(app.url("/v1/me"))
                .header("authorization", buyer.bearer())
                .send(),
            proxy
                .get(app.url(&format!("/v1/workflows/{run_id}")))
                .header("authorization", buyer.bearer())
                .send(),
        );
        let (me, run) = (me.unwrap(), run.unwrap());
        assert_eq!(me.version(), Version::HTTP_2);
        assert_eq!(me.status(), 200);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["id"], buyer.id.to_string());
        assert_eq!(run.status(), 200);
        let run: Value = run.json().await.unwrap();
        assert_eq!(run["id"], run_id.as_str());
    }
    assert!(
        !long_poll.is_finished(),
        "every other request was answered while the long poll still waited"
    );

    // The long poll ends as a long poll does: nothing changed.
    let r = tokio::time::timeout(Duration::from_secs(LONG_POLL_SECS + 10), long_poll)
        .await
        .expect("the long poll ends after its wait")
        .unwrap();
    assert_eq!(r.status(), 304);
}

#[tokio::test]
async fn each_client_behind_an_http2_proxy_is_limited_on_its_own() {
    let app = TestApp::builder()
        .config(|c| {
            c.trusted_proxies = 1;
            c.rate_limits.per_ip_per_minute = 5;
        })
        .spawn()
        .await;
    let proxy = http2_client();
    // The proxy appends the address each client came from.
    let from = |client: &str| {
        proxy
            .get(app.url("/v1/events"))
            .header("x-forwarded-for", client)
            .send()
    };
    wait_for_fresh_window().await;
    // Ten requests at once on the one connection, five from each of two
    // clients.
    let answers = join_all((0..10).map(|i| {
        from(if i % 2 == 0 {
            "203.0.113.20"
        } else {
            "203.0.113.21"
        })
    }))
    .await;
    for r in answers {
        let r = r.unwrap();
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(r.status(), 200, "each client is within its own limit");
    }
    // A client's sixth request is refused; a third client on the same
    // connection is not.
    assert_problem(from("203.0.113.20").await.unwrap(), 429, "rate_limited").await;
    let r = from("203.0.113.22").await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_oversized_body_on_an_http2_stream_is_413() {
    let app = TestApp::builder()
        .config(|c| c.body_limit_bytes = 4096)
        .spawn()
        .await;
    let proxy = http2_client();
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(10_000));
    let r = proxy
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_problem(r, 413, "payload_too_large").await;
}
