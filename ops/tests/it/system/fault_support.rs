//! What the fault tests share: run counts, a buyer who pays every intent as it
//! appears, waiting for the runs to finish, and the end-of-test invariants.

#![allow(dead_code)] // Each fault test uses a different part.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use boxoffice_models::holds;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::processes::BoxofficeProcess;
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
/// of tickets; exactly one confirmation reached the mail transport for each
/// booking (see [`check_mail`]); the capacity counters agree with the holds
/// and tickets. Prints a summary and returns the run counts.
pub async fn check_invariants(
    db: &str,
    sandbox_stats: Option<&Value>,
    mail_dir: &Path,
) -> Vec<(String, i64)> {
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
    let mails = check_mail(&mut conn, mail_dir).await;
    // `sold + held <= capacity` is a CHECK of `ticket_types` (the database
    // refuses any write that breaks it), so this test cannot see it fail; what
    // only the code can get wrong is checked here: `held` is the sum of the
    // active holds, `sold` the tickets issued, and no finished run keeps a hold.
    let bad = holds::inconsistencies(&mut conn).await.unwrap();
    assert!(bad.is_empty(), "held differs from active holds: {bad:?}");
    let sold_mismatch = scalar(
        &mut conn,
        "SELECT count(*) FROM ticket_types tt
          WHERE tt.sold <> (SELECT count(*) FROM tickets t WHERE t.ticket_type_id = tt.id)",
    )
    .await;
    assert_eq!(sold_mismatch, 0, "sold differs from the tickets issued");
    let holds_of_finished = scalar(
        &mut conn,
        "SELECT count(*) FROM holds h JOIN workflow_runs r ON r.id = h.run_id
          WHERE h.status = 'active' AND r.status IN ('completed', 'compensated', 'cancelled')",
    )
    .await;
    assert_eq!(holds_of_finished, 0, "finished runs still holding seats");
    let bookings = scalar(&mut conn, "SELECT count(*) FROM bookings").await;
    let tickets = scalar(&mut conn, "SELECT count(*) FROM tickets").await;
    let charges = sandbox_stats
        .map(|s| s["charges_by_run_id"].as_object().unwrap().len())
        .unwrap_or(0);
    println!(
        "invariants hold: runs {rows:?}; {bookings} bookings, {tickets} tickets, {mails} confirmations delivered (one per booking), {charges} runs charged (each once)"
    );
    rows
}

/// Waits until the confirmations are written to `mail_dir` (the file mailer's
/// `.eml` files, one per message handed to the transport), then asserts that
/// each booking got exactly one and that no message names another booking.
/// Returns the number of messages.
pub async fn check_mail(conn: &mut AsyncPgConnection, mail_dir: &Path) -> usize {
    let bookings: HashSet<String> = ids(conn, "SELECT id::text AS id FROM bookings")
        .await
        .into_iter()
        .collect();
    let started = Instant::now();
    // Sending follows the booking's commit: wait until there are as many
    // messages as bookings and no notification is left to send (a second one
    // for a booking would be sent too), then read them.
    loop {
        let pending = scalar(
            conn,
            "SELECT count(*) FROM notifications WHERE status = 'pending'",
        )
        .await;
        if (messages_in(mail_dir) >= bookings.len() && pending == 0)
            || started.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let per_booking = confirmations_by_booking(mail_dir);
    let unsent: Vec<&String> = bookings
        .iter()
        .filter(|b| !per_booking.contains_key(*b))
        .collect();
    assert!(
        unsent.is_empty(),
        "{} of {} bookings got no confirmation in {}: {:?}",
        unsent.len(),
        bookings.len(),
        mail_dir.display(),
        &unsent[..unsent.len().min(5)]
    );
    let repeated: Vec<(&String, &usize)> = per_booking.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "bookings confirmed more than once (booking, messages): {:?}",
        &repeated[..repeated.len().min(5)]
    );
    let strangers: Vec<&String> = per_booking
        .keys()
        .filter(|b| !bookings.contains(*b))
        .collect();
    assert!(
        strangers.is_empty(),
        "confirmations for bookings that do not exist: {strangers:?}"
    );
    per_booking.values().sum()
}

/// How many messages are in `mail_dir`.
fn messages_in(mail_dir: &Path) -> usize {
    std::fs::read_dir(mail_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

/// Messages in `mail_dir` per booking they confirm (the `Booking:` line of the
/// body). Panics on a message that names no booking.
fn confirmations_by_booking(mail_dir: &Path) -> HashMap<String, usize> {
    let mut per_booking = HashMap::new();
    let Ok(entries) = std::fs::read_dir(mail_dir) else {
        return per_booking;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_none_or(|x| x != "eml") {
            continue;
        }
        let message = std::fs::read_to_string(&path).expect("reading a message");
        let booking = message
            .lines()
            .find_map(|line| line.strip_prefix("Booking: "))
            .unwrap_or_else(|| panic!("{} names no booking:\n{message}", path.display()));
        *per_booking.entry(booking.trim().to_owned()).or_insert(0) += 1;
    }
    per_booking
}

async fn ids(conn: &mut AsyncPgConnection, sql: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let rows: Vec<Id> = diesel::sql_query(sql).load(conn).await.unwrap();
    rows.into_iter().map(|r| r.id).collect()
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

/// Asserts that `process` has not exited (`when` says at which point of the
/// test), with its exit status and log if it has.
pub fn assert_alive(process: &mut BoxofficeProcess, when: &str) {
    if let Some(status) = process.exit_status() {
        panic!(
            "{} exited by itself ({status}) {when}:\n{}",
            process.role,
            process.logs()
        );
    }
}

/// The JSON log lines of `process` whose message is `message`.
pub fn log_events(process: &BoxofficeProcess, message: &str) -> Vec<Value> {
    process
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == message)
        .collect()
}

/// Runs not finished (running, waiting or compensating).
pub async fn unfinished(conn: &mut AsyncPgConnection) -> i64 {
    scalar(
        conn,
        "SELECT count(*) FROM workflow_runs WHERE status IN ('running', 'waiting', 'compensating')",
    )
    .await
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
