//! What the fault tests share: run counts, a buyer who pays every intent as it
//! appears, waiting for the runs to finish, and the end-of-test invariants.

#![allow(dead_code)] // Each fault test uses a different part.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use boxoffice_models::holds;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::users::TestUser;

#[derive(diesel::QueryableByName, Debug)]
struct StatusCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

pub async fn connect(db: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(db)
        .await
        .expect("connecting to the test database")
}

/// `(status, count)` of every run.
pub async fn statuses(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<(String, i64)>> {
    let rows: Vec<StatusCount> = diesel::sql_query(
        "SELECT status, count(*) AS n FROM workflow_runs GROUP BY status ORDER BY status",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
}

pub fn count_of(rows: &[(String, i64)], status: &str) -> i64 {
    rows.iter()
        .find(|(s, _)| s == status)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

pub async fn scalar(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    let row: N = diesel::sql_query(format!("SELECT ({sql})::bigint AS n"))
        .get_result(conn)
        .await
        .unwrap();
    row.n
}

/// Waits until every run is finished (completed, compensated, failed or
/// cancelled), reconnecting while the database is away. Returns the counts.
pub async fn wait_all_finished(db: &str, within: Duration) -> Vec<(String, i64)> {
    let started = Instant::now();
    let mut last = Vec::new();
    loop {
        if let Ok(mut conn) = AsyncPgConnection::establish(db).await
            && let Ok(rows) = statuses(&mut conn).await
        {
            let busy: i64 = ["running", "compensating", "waiting"]
                .iter()
                .map(|s| count_of(&rows, s))
                .sum();
            if busy == 0 {
                return rows;
            }
            last = rows;
        }
        assert!(
            started.elapsed() < within,
            "runs did not finish within {within:?}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A buyer at the sandbox paying every intent of a run waiting for payment, once,
/// until stopped. Survives database and sandbox hiccups (it just tries again).
pub struct Payer {
    running: Arc<AtomicBool>,
    paid: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Payer {
    /// Pays the runs matching `filter` (SQL on `workflow_runs`; `true` for all).
    pub fn start(db: &str, sandbox_url: &str, filter: &str) -> Payer {
        let running = Arc::new(AtomicBool::new(true));
        let paid = Arc::new(AtomicU64::new(0));
        let (db, base, filter) = (db.to_owned(), sandbox_url.to_owned(), filter.to_owned());
        let task = {
            let (running, paid) = (running.clone(), paid.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut done: HashSet<String> = HashSet::new();
                let mut conn: Option<AsyncPgConnection> = None;
                while AtomicBool::load(&running, Ordering::Relaxed) {
                    if conn.is_none() {
                        conn = AsyncPgConnection::establish(&db).await.ok();
                    }
                    let intents = match conn.as_mut() {
                        Some(c) => awaiting_intents(c, &filter).await,
                        None => Err(anyhow::anyhow!("no connection")),
                    };
                    match intents {
                        Ok(intents) => {
                            for intent in intents {
                                if done.contains(&intent) {
                                    continue;
                                }
                                let url =
                                    format!("{base}/sandbox/payment_intents/{intent}/succeed");
                                if let Ok(r) = client.post(url).send().await
                                    && r.status().is_success()
                                {
                                    paid.fetch_add(1, Ordering::Relaxed);
                                    done.insert(intent);
                                }
                            }
                        }
                        Err(_) => conn = None,
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        Payer {
            running,
            paid,
            task,
        }
    }

    pub fn paid(&self) -> u64 {
        AtomicU64::load(&self.paid, Ordering::Relaxed)
    }

    pub async fn stop(self) -> u64 {
        self.running.store(false, Ordering::Relaxed);
        let paid = self.paid.clone();
        let _ = self.task.await;
        AtomicU64::load(&paid, Ordering::Relaxed)
    }
}

/// Intent ids of the runs (matching `filter`) waiting for payment.
pub async fn awaiting_intents(
    conn: &mut AsyncPgConnection,
    filter: &str,
) -> anyhow::Result<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        intent: String,
    }
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT state->'payment'->>'intent_id' AS intent FROM workflow_runs
          WHERE status = 'waiting' AND step = 'awaiting_payment'
            AND state->'payment'->>'intent_id' IS NOT NULL AND ({filter})"
    ))
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.intent).collect())
}

/// `POST /v1/checkouts` for `quantity` of `ticket_type` with `key`; the status and body.
pub async fn checkout(
    client: &reqwest::Client,
    api: &str,
    buyer: &TestUser,
    event_id: Uuid,
    ticket_type: Uuid,
    quantity: i32,
    key: &str,
) -> reqwest::Result<(u16, Value)> {
    let r = client
        .post(format!("{api}/v1/checkouts"))
        .header("authorization", buyer.bearer())
        .header("idempotency-key", key)
        .json(&json!({ "event_id": event_id, "items": [{ "ticket_type_id": ticket_type, "quantity": quantity }] }))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// The invariants every fault test ends with: every run finished; at most one
/// charge per run at the provider; each booking has exactly its paid quantity
/// of tickets; at most one confirmation email per booking; the capacity
/// counters agree with the holds and tickets. Prints a summary and returns it.
pub async fn check_invariants(db: &str, sandbox_stats: Option<&Value>) -> Vec<(String, i64)> {
    let mut conn = connect(db).await;
    let rows = statuses(&mut conn).await.unwrap();
    for busy in ["running", "compensating", "waiting"] {
        assert_eq!(count_of(&rows, busy), 0, "unfinished runs: {rows:?}");
    }
    if let Some(stats) = sandbox_stats {
        for (run, charges) in stats["charges_by_run_id"].as_object().unwrap() {
            assert!(
                charges.as_u64().unwrap() <= 1,
                "run {run} charged {charges} times"
            );
        }
    }
    let completed_without_booking = scalar(
        &mut conn,
        "SELECT count(*) FROM workflow_runs r WHERE r.status = 'completed'
            AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.run_id = r.id)",
    )
    .await;
    assert_eq!(
        completed_without_booking, 0,
        "completed runs without a booking"
    );
    let wrong_ticket_count = scalar(
        &mut conn,
        "SELECT count(*) FROM bookings b JOIN workflow_runs r ON r.id = b.run_id
          WHERE (SELECT count(*) FROM tickets t WHERE t.booking_id = b.id)
             <> (SELECT COALESCE(sum((i->>'quantity')::int), 0) FROM jsonb_array_elements(r.state->'items') i)",
    )
    .await;
    assert_eq!(
        wrong_ticket_count, 0,
        "bookings whose tickets differ from the paid quantity"
    );
    let bookings_of_unfinished = scalar(
        &mut conn,
        "SELECT count(*) FROM bookings b JOIN workflow_runs r ON r.id = b.run_id WHERE r.status <> 'completed'",
    )
    .await;
    assert_eq!(
        bookings_of_unfinished, 0,
        "bookings of runs that did not complete"
    );
    let double_emails = scalar(
        &mut conn,
        "SELECT count(*) FROM (SELECT dedupe_key FROM notifications WHERE kind = 'booking_confirmation'
            GROUP BY dedupe_key HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(double_emails, 0, "more than one confirmation for a booking");
    let emails = scalar(
        &mut conn,
        "SELECT count(*) FROM notifications WHERE kind = 'booking_confirmation'",
    )
    .await;
    let bookings = scalar(&mut conn, "SELECT count(*) FROM bookings").await;
    assert!(
        emails <= bookings,
        "{emails} confirmations for {bookings} bookings"
    );
    let bad = holds::inconsistencies(&mut conn).await.unwrap();
    assert!(bad.is_empty(), "held differs from active holds: {bad:?}");
    let sold_mismatch = scalar(
        &mut conn,
        "SELECT count(*) FROM ticket_types tt
          WHERE tt.sold <> (SELECT count(*) FROM tickets t WHERE t.ticket_type_id = tt.id)
             OR tt.sold + tt.held > tt.capacity",
    )
    .await;
    assert_eq!(
        sold_mismatch, 0,
        "sold differs from the tickets issued (or oversold)"
    );
    let tickets = scalar(&mut conn, "SELECT count(*) FROM tickets").await;
    let charges = sandbox_stats
        .map(|s| s["charges_by_run_id"].as_object().unwrap().len())
        .unwrap_or(0);
    println!(
        "invariants hold: runs {rows:?}; {bookings} bookings, {tickets} tickets, {emails} confirmations, {charges} runs charged (each once)"
    );
    rows
}

/// A user registered and logged in through the API of `api` (for deployments
/// on a database of their own, where there is no `TestApp`).
pub async fn register(client: &reqwest::Client, api: &str) -> TestUser {
    let tag = Uuid::new_v4().simple().to_string();
    let email = format!("buyer-{}@example.com", &tag[..12]);
    let password = format!("pw-{tag}");
    let r = client
        .post(format!("{api}/v1/auth/register"))
        .json(&json!({ "email": email, "password": password, "display_name": "Buyer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let body: Value = r.json().await.unwrap();
    let tokens: Value = client
        .post(format!("{api}/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    TestUser {
        id: body["id"]
            .as_str()
            .or(body["user"]["id"].as_str())
            .unwrap()
            .parse()
            .unwrap(),
        email,
        password,
        access_token: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh_token: tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Whether the process with `pid` is still alive.
pub fn alive(pid: Option<u32>) -> bool {
    pid.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), None).is_ok())
}

/// A folder under the system's temp dir (reachable by the database's service
/// user), removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
