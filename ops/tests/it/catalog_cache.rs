//! Issue point 5: the Redis cache of event details and listing pages. After a
//! write the next read shows it; availability changed behind the API's back is
//! at most a couple of seconds old; with Redis unreachable, or stopped while the
//! app runs, reads still work from Postgres.

use std::process::Stdio;
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog_fixtures::*;
use crate::harness::users::TestUser;
use crate::harness::{TestApp, counts_moved_sql};

async fn detail(app: &TestApp, e: Uuid) -> Value {
    get_json(app, &format!("/v1/events/{e}")).await
}

async fn listing_titles(app: &TestApp) -> Vec<String> {
    get_json(app, "/v1/events").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_owned())
        .collect()
}

/// The cache entries of this app in Redis, with their remaining time to live.
async fn cache_entries(app: &TestApp, pattern: &str) -> Vec<(String, i64)> {
    let mut redis = app.state.redis.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:cache:v1:{pattern}", app.redis_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut entries = Vec::new();
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        entries.push((key, ttl));
    }
    entries
}

/// Every kind of write is visible to the very next read, though both reads are
/// well within the cache's lifetime.
async fn writes_show_at_once(app: &TestApp, alice: &TestUser) {
    let venue = id_of(&create_venue(app, alice, "Berlin").await);
    let (event, ticket_type) = published_event(
        app,
        alice,
        json!({"title": "Before", "venue_id": venue, "online": false}),
    )
    .await;
    let (e, tt) = (id_of(&event), id_of(&ticket_type));
    for _ in 0..2 {
        assert_eq!(detail(app, e).await["title"], "Before");
        assert_eq!(listing_titles(app).await, ["Before"]);
    }

    expect(
        patch_event(
            app,
            alice,
            e,
            event["version"].as_i64().unwrap(),
            json!({"title": "After"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(detail(app, e).await["title"], "After");
    assert_eq!(listing_titles(app).await, ["After"]);

    let path = format!("/v1/events/{e}/ticket-types/{tt}");
    expect(
        send(
            app,
            Method::PATCH,
            &path,
            Some(alice),
            Some(json!({"capacity": 7, "price_minor": 1234})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(detail(app, e).await["ticket_types"][0]["available"], 7);
    assert_eq!(
        get_json(app, "/v1/events").await["items"][0]["min_price_minor"],
        1234
    );

    let path = format!("/v1/venues/{venue}");
    expect(
        send(
            app,
            Method::PATCH,
            &path,
            Some(alice),
            Some(json!({"name": "Renamed hall"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(detail(app, e).await["venue"]["name"], "Renamed hall");

    let (second, _) = published_event(
        app,
        alice,
        json!({"title": "Second", "starts_at": in_days(40), "ends_at": in_days(41)}),
    )
    .await;
    assert_eq!(listing_titles(app).await, ["After", "Second"]);
    expect(
        send(
            app,
            Method::POST,
            &format!("/v1/events/{}/cancel", id_of(&second)),
            Some(alice),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(listing_titles(app).await, ["After"]);
    assert_eq!(detail(app, id_of(&second)).await["status"], "cancelled");
}

#[tokio::test]
async fn after_a_write_the_next_read_shows_it() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    writes_show_at_once(&app, &alice).await;
    // The reads above did go through the cache.
    assert!(!cache_entries(&app, "event:*").await.is_empty());
    assert!(!cache_entries(&app, "events:*").await.is_empty());
}

#[tokio::test]
async fn cached_views_live_two_seconds_at_most() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let (event, ticket_type) = published_event(&app, &alice, json!({"title": "Cached"})).await;
    let (e, tt) = (id_of(&event), id_of(&ticket_type));

    let filled_at = Instant::now();
    assert_eq!(detail(&app, e).await["ticket_types"][0]["available"], 100);
    let entries = cache_entries(&app, &format!("event:{e}:*")).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        (1..=2000).contains(&entries[0].1),
        "an entry lives 2 s: {entries:?}"
    );

    // A checkout holds tickets without going through the API: no invalidation.
    let mut conn = app.raw_conn().await;
    diesel::sql_query(counts_moved_sql(tt, 0, 40))
        .execute(&mut conn)
        .await
        .unwrap();
    let stale = detail(&app, e).await["ticket_types"][0]["available"].clone();
    if filled_at.elapsed() < Duration::from_millis(1500) {
        assert_eq!(stale, 100, "served from the cache while the entry lives");
    }
    // ...but never for longer than the entry's lifetime.
    let changed = loop {
        let available = detail(&app, e).await["ticket_types"][0]["available"].clone();
        if available == 60 {
            break filled_at.elapsed();
        }
        assert!(
            filled_at.elapsed() < Duration::from_secs(10),
            "availability stayed stale"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(changed < Duration::from_secs(5), "stale for {changed:?}");
}

#[tokio::test]
async fn with_redis_unreachable_reads_and_writes_still_work() {
    // Nothing listens on port 1: every Redis call fails.
    let app = TestApp::builder()
        .redis_url("redis://127.0.0.1:1/")
        .spawn()
        .await;
    let alice = organizer(&app).await;
    writes_show_at_once(&app, &alice).await;
}

/// A private `redis-server`, killed when dropped.
struct Redis {
    child: tokio::process::Child,
    url: String,
}

impl Redis {
    async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (installed by ops/scripts/install-services)");
        let url = format!("redis://127.0.0.1:{port}/");
        let client = redis::Client::open(url.as_str()).unwrap();
        let started = Instant::now();
        while client.get_multiplexed_async_connection().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Redis { child, url }
    }

    async fn stop(&mut self) {
        self.child.kill().await.expect("stopping redis-server");
    }
}

#[tokio::test]
async fn when_redis_stops_reads_fall_back_to_postgres() {
    let mut redis = Redis::start().await;
    let app = TestApp::builder()
        .redis_url(redis.url.clone())
        .spawn()
        .await;
    let alice = organizer(&app).await;
    let (event, _) = published_event(&app, &alice, json!({"title": "Before the outage"})).await;
    let e = id_of(&event);
    assert_eq!(detail(&app, e).await["title"], "Before the outage");
    assert_eq!(listing_titles(&app).await, ["Before the outage"]);
    assert_eq!(
        cache_entries(&app, "event:*").await.len(),
        1,
        "the cache was in use"
    );

    redis.stop().await;
    for _ in 0..3 {
        assert_eq!(detail(&app, e).await["title"], "Before the outage");
        assert_eq!(listing_titles(&app).await, ["Before the outage"]);
    }
    expect(
        patch_event(
            &app,
            &alice,
            e,
            event["version"].as_i64().unwrap(),
            json!({"title": "During the outage"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(detail(&app, e).await["title"], "During the outage");
    assert_eq!(listing_titles(&app).await, ["During the outage"]);
    let organizer_view = expect(
        send(
            &app,
            Method::GET,
            "/v1/organizer/events",
            Some(&alice),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(organizer_view["items"][0]["title"], "During the outage");
}
