//! Data for checkout tests, written with SQL (fast; the catalog has its own API tests).

#![allow(dead_code)] // Each checkout test uses a different part.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use boxoffice_models::workflow_runs::NewRun;
use boxoffice_workflows::checkout::{Checkout, CheckoutState, Item};
use boxoffice_workflows::engine::Workflow;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::TestApp;
use crate::harness::users::TestUser;

pub struct SaleEvent {
    pub event_id: Uuid,
    pub ticket_types: Vec<Uuid>,
}

/// A published event on sale, one ticket type per `(price_minor, capacity)`,
/// with `hold_minutes` to pay.
pub async fn event_on_sale(
    db_url: &str,
    organizer: Uuid,
    types: &[(i64, i32)],
    hold_minutes: i32,
) -> SaleEvent {
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    let venue = Uuid::now_v7();
    let event_id = Uuid::now_v7();
    let mut sql = format!(
        "INSERT INTO venues (id, created_by, name, address, city, country, timezone)
           VALUES ('{venue}', '{organizer}', 'Hall', '1 Street', 'Berlin', 'DE', 'Europe/Berlin');
         INSERT INTO events (id, organizer_id, venue_id, title, category, currency, starts_at, ends_at,
                             status, published_at, hold_minutes, max_tickets_per_order)
           VALUES ('{event_id}', '{organizer}', '{venue}', 'Flash Sale', 'music', 'EUR',
                   now() + interval '30 days', now() + interval '30 days 3 hours',
                   'published', now(), {hold_minutes}, 10);"
    );
    let mut ticket_types = Vec::new();
    for (i, (price, capacity)) in types.iter().enumerate() {
        let id = Uuid::now_v7();
        ticket_types.push(id);
        sql.push_str(&format!(
            "INSERT INTO ticket_types (id, event_id, name, price_minor, currency, capacity, sort_order)
               VALUES ('{id}', '{event_id}', 'Type {i}', {price}, 'EUR', {capacity}, {i});"
        ));
    }
    conn.batch_execute(&sql).await.unwrap();
    SaleEvent {
        event_id,
        ticket_types,
    }
}

/// A percent coupon on the event.
pub async fn coupon(db_url: &str, event_id: Uuid, code: &str, percent: i64, max_uses: i32) {
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO coupons (id, event_id, code, kind, value, max_uses)
           VALUES ('{}', '{event_id}', '{code}', 'percent', {percent}, {max_uses});",
        Uuid::now_v7()
    ))
    .await
    .unwrap();
}

/// `POST /v1/checkouts`; returns the response. `key: None` is a new attempt
/// to buy, with a fresh `Idempotency-Key`.
pub async fn start(
    app_url: &str,
    client: &reqwest::Client,
    user: &TestUser,
    body: Value,
    key: Option<&str>,
) -> reqwest::Response {
    let key = key.map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
    client
        .post(format!("{app_url}/v1/checkouts"))
        .header("authorization", user.bearer())
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `user` starts a checkout of `body` whose seats are held (its answer
/// carries their deadline): the answer.
pub async fn start_held(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let held: Value = start(&app.base_url, &app.client, user, body, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(held["expires_at"].is_string(), "{held}");
    held
}

/// Every buyer at once starts a checkout of one seat of the event's first
/// ticket type; the 202 answers, in the buyers' order.
pub async fn start_all(app: &TestApp, buyers: &[TestUser], event: &SaleEvent) -> Vec<Value> {
    futures::future::join_all(buyers.iter().map(|buyer| async move {
        let r = start(&app.base_url, &app.client, buyer, order(event, 0, 1), None).await;
        assert_eq!(r.status(), 202);
        r.json::<Value>().await.unwrap()
    }))
    .await
}

pub fn order(event: &SaleEvent, type_index: usize, quantity: i32) -> Value {
    json!({ "event_id": event.event_id, "items": [{ "ticket_type_id": event.ticket_types[type_index], "quantity": quantity }] })
}

/// Polls the run (long polls, really) until `done(view)` or `within` passes.
pub async fn wait_for(
    app: &TestApp,
    user: &TestUser,
    run_id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    let mut etag: Option<String> = None;
    loop {
        let mut req = app
            .client
            .get(app.url(&format!("/v1/workflows/{run_id}?wait=2")))
            .header("authorization", user.bearer());
        if let Some(tag) = &etag {
            req = req.header("if-none-match", tag);
        }
        let r = req.send().await.unwrap();
        if r.status() == 200 {
            etag = r
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_owned());
            let view: Value = r.json().await.unwrap();
            if done(&view) {
                return view;
            }
        } else {
            assert_eq!(r.status(), 304);
        }
        assert!(
            started.elapsed() < within,
            "run {run_id} did not get there within {within:?}"
        );
    }
}

pub fn is_finished(view: &Value) -> bool {
    matches!(
        view["status"].as_str(),
        Some("completed" | "compensated" | "failed" | "cancelled")
    )
}

/// `(capacity, sold, held)` of a ticket type.
pub async fn counters(db_url: &str, ticket_type: Uuid) -> (i32, i32, i32) {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        capacity: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        sold: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        held: i32,
    }
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    let row: Row = diesel::sql_query("SELECT capacity, sold, held FROM ticket_types WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(ticket_type)
        .get_result(&mut conn)
        .await
        .unwrap();
    (row.capacity, row.sold, row.held)
}

/// `SELECT count(*)` of a query.
pub async fn count(db_url: &str, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    let row: N = diesel::sql_query(format!("SELECT count(*) AS n FROM ({sql}) q"))
        .get_result(&mut conn)
        .await
        .unwrap();
    row.n
}

/// Moves the payment deadline of the waiting runs matching `run_filter` (SQL on
/// `workflow_runs`) one second into the past, as if the event's hold minutes had
/// gone by: the run's deadline, its state's `expires_at` and its holds. The run
/// then expires through the real path (its timer message, or the sweep).
pub async fn pull_deadlines(db_url: &str, run_filter: &str) {
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    conn.batch_execute(&format!(
        "UPDATE holds SET expires_at = now() - interval '1 second'
          WHERE status = 'active' AND run_id IN (SELECT id FROM workflow_runs WHERE status = 'waiting' AND {run_filter});
         UPDATE workflow_runs SET wake_at = now() - interval '1 second',
                state = jsonb_set(state, '{{expires_at}}',
                        to_jsonb(to_char((now() - interval '1 second') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')))
          WHERE status = 'waiting' AND {run_filter};"
    ))
    .await
    .unwrap();
}

/// The run id of a 202 answer to `POST /v1/checkouts`.
pub async fn started_run(r: reqwest::Response) -> String {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    body["run_id"].as_str().unwrap().to_owned()
}

/// The run waits for the buyer to pay.
pub fn awaiting_payment(view: &Value) -> bool {
    view["status"] == "waiting" && view["payment"]["client_secret"].is_string()
}

/// `POST /v1/checkouts/{run_id}/cancel` as `user`.
pub async fn cancel(app: &TestApp, user: &TestUser, run_id: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/checkouts/{run_id}/cancel")))
        .header("authorization", user.bearer())
        .send()
        .await
        .unwrap()
}

/// A checkout of `quantity` of the event's first type, waiting for payment;
/// returns its run id and intent id.
pub async fn waiting_checkout(
    app: &TestApp,
    user: &TestUser,
    body: Value,
    key: &str,
) -> (String, String) {
    let run_id = started_run(start(&app.base_url, &app.client, user, body, Some(key)).await).await;
    let view = wait_for(
        app,
        user,
        &run_id,
        Duration::from_secs(20),
        awaiting_payment,
    )
    .await;
    let intent = view["payment"]["intent_id"].as_str().unwrap().to_owned();
    (run_id, intent)
}

/// A new checkout run of `state`, as the API inserts it, started under the
/// `Idempotency-Key` `key` when there is one (with a request hash, as the
/// API stores both or neither).
pub fn checkout_run(state: &CheckoutState, key: Option<&str>) -> NewRun {
    NewRun {
        id: Uuid::now_v7(),
        kind: Checkout::KIND.into(),
        status: "running".into(),
        step: Checkout::initial_step().into(),
        state: serde_json::to_value(state).unwrap(),
        correlation_id: None,
        owner_id: Some(state.user_id),
        idempotency_key: key.map(str::to_owned),
        request_hash: key.map(|_| vec![0; 32]),
        view: serde_json::to_value(Checkout::view(state)).unwrap(),
        parent_id: None,
        child_key: None,
    }
}

/// One new checkout run of one ticket of `event`'s first type per key in
/// `keys`, each by a participant of its own, under that idempotency key.
pub async fn buyers_checkout_runs(
    app: &TestApp,
    event: &SaleEvent,
    keys: &[Option<&str>],
) -> Vec<NewRun> {
    let mut news = Vec::new();
    for key in keys {
        let buyer = app.create_user(&[Role::Participant]).await;
        let items = vec![Item {
            ticket_type_id: event.ticket_types[0],
            quantity: 1,
        }];
        let state = CheckoutState::new(buyer.id, event.event_id, items, None, 15);
        news.push(checkout_run(&state, *key));
    }
    news
}

/// The value of the series `series` (its name and labels, then a space) in
/// the Prometheus text `metrics`; 0 when absent.
pub fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The checkout starts that batches wrote as `written` (`sold_out`,
/// `stepped`, `started`, or `alone`: left to start alone), from `metrics`.
pub fn gathered_starts(metrics: &str, written: &str) -> f64 {
    metric(
        metrics,
        &format!("checkout_starts_gathered_total{{written=\"{written}\"}} "),
    )
}

/// A connection to the app's database, where `pg_stat_statements` counts
/// the statements run (see [`statement_calls`]). The app must have been
/// built with [`crate::harness::TestAppBuilder::counting_statements`].
pub async fn counting_statements(app: &TestApp) -> AsyncPgConnection {
    #[derive(diesel::QueryableByName)]
    struct Track {
        #[diesel(sql_type = diesel::sql_types::Text)]
        track: String,
    }
    let mut conn = app.raw_conn().await;
    conn.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .unwrap();
    let track = diesel::sql_query("SELECT current_setting('pg_stat_statements.track') AS track")
        .get_result::<Track>(&mut conn)
        .await
        .unwrap()
        .track;
    assert_ne!(
        track, "none",
        "this app's database counts no statements: build it with counting_statements()"
    );
    conn
}

/// How often this database has run the statements whose text matches the
/// `LIKE` pattern `pattern`, as `pg_stat_statements` counts them.
pub async fn statement_calls(conn: &mut AsyncPgConnection, pattern: &str) -> i64 {
    statement_calls_in(conn, None, pattern).await
}

/// [`statement_calls`] of the database named `database` (this one when
/// `None`).
pub async fn statement_calls_in(
    conn: &mut AsyncPgConnection,
    database: Option<&str>,
    pattern: &str,
) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Calls {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        calls: i64,
    }
    diesel::sql_query(
        "SELECT coalesce(sum(s.calls), 0)::bigint AS calls
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = coalesce($1, current_database()) AND s.query LIKE $2",
    )
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(database)
    .bind::<diesel::sql_types::Text, _>(pattern)
    .get_result::<Calls>(conn)
    .await
    .unwrap()
    .calls
}
