//! What the analytics tests share: reading the endpoints, raw SQL as JSON, and
//! a seeded random generator (the mix of a test is the same on every run).

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use crate::checkout_support::count;
use crate::harness::TestApp;
use crate::harness::users::TestUser;

/// `GET path` as `user`: the status and the body (JSON, or null).
pub async fn get(app: &TestApp, user: &TestUser, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(app.url(path))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The event's analytics, expecting 200.
pub async fn analytics(app: &TestApp, user: &TestUser, event_id: Uuid, query: &str) -> Value {
    let (status, body) = get(
        app,
        user,
        &format!("/v1/organizer/events/{event_id}/analytics{query}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The one JSON value a query returns (`SELECT <json> AS v`).
pub async fn json_of(app: &TestApp, sql: &str) -> Value {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        v: Option<String>,
    }
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let row: Row = diesel::sql_query(format!("SELECT ({sql})::text AS v"))
        .get_result(&mut conn)
        .await
        .unwrap();
    row.v
        .map(|v| serde_json::from_str(&v).unwrap())
        .unwrap_or(Value::Null)
}

/// Runs SQL statements.
pub async fn execute(app: &TestApp, sql: &str) {
    use diesel_async::SimpleAsyncConnection;
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    conn.batch_execute(sql).await.unwrap();
}

/// Waits until no run of any kind is under way (checkouts, refunds): the
/// ledger and the counters are then still.
pub async fn wait_quiet(app: &TestApp, within: Duration) {
    let started = Instant::now();
    loop {
        let busy = count(
            &app.db.url,
            "SELECT 1 FROM workflow_runs WHERE status IN ('running', 'waiting', 'compensating')",
        )
        .await;
        if busy == 0 {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{busy} runs still under way after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// xorshift64*: small, seeded, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
