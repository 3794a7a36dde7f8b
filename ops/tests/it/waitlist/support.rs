//! What the waitlist tests share: a sold-out ticket type whose units are held
//! by checkouts that can be made to expire, joining, reading entries and
//! checking the capacity invariants.

#![allow(dead_code)] // Each waitlist test uses a different part.

use std::time::{Duration, Instant};

use boxoffice_models::holds;
use boxoffice_models::users::Role;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::checkout_support::{
    SaleEvent, awaiting_payment, event_on_sale, order, pull_deadlines, start, started_run, wait_for,
};
use crate::harness::TestApp;
use crate::harness::users::TestUser;
use crate::harness::wait;

pub const PRICE: i64 = 4500;

/// A published event with one paid ticket type of `capacity`, and checkouts
/// of other buyers holding every unit (`holders` of them, the units spread
/// over them) and waiting for payment: sold out until they expire.
pub struct SoldOut {
    pub event: SaleEvent,
    pub organizer: TestUser,
    /// The checkouts holding the units.
    pub holding_runs: Vec<String>,
}

impl SoldOut {
    pub fn ticket_type(&self) -> Uuid {
        self.event.ticket_types[0]
    }
}

/// Requires the app's workers (and a sandbox) to be running.
pub async fn sold_out(app: &TestApp, capacity: i32, holders: usize) -> SoldOut {
    let per = capacity / holders as i32;
    let mut quantities = vec![per; holders];
    quantities[holders - 1] = capacity - per * (holders as i32 - 1);
    sold_out_in(app, &quantities).await
}

/// [`sold_out`] with one holding checkout per quantity (their sum is the capacity).
pub async fn sold_out_in(app: &TestApp, quantities: &[i32]) -> SoldOut {
    let capacity = quantities.iter().sum();
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(PRICE, capacity)], 15).await;
    let buyers = join_all(
        quantities
            .iter()
            .map(|_| app.create_user(&[Role::Participant])),
    )
    .await;
    let mut holding_runs = Vec::new();
    for (buyer, quantity) in buyers.iter().zip(quantities) {
        let quantity = *quantity;
        let run = started_run(
            start(
                &app.base_url,
                &app.client,
                buyer,
                order(&event, 0, quantity),
                None,
            )
            .await,
        )
        .await;
        wait_for(app, buyer, &run, Duration::from_secs(30), awaiting_payment).await;
        holding_runs.push(run);
    }
    SoldOut {
        event,
        organizer,
        holding_runs,
    }
}

/// Sets how long the event's offers last.
pub async fn set_offer_minutes(app: &TestApp, event_id: Uuid, minutes: i32) {
    sql(
        app,
        &format!("UPDATE events SET waitlist_offer_minutes = {minutes} WHERE id = '{event_id}'"),
    )
    .await;
}

/// Lets checkouts expire through the real path (their timer, or the sweep).
pub async fn expire_checkouts(app: &TestApp, runs: &[String]) {
    let list = runs
        .iter()
        .map(|r| format!("'{r}'"))
        .collect::<Vec<_>>()
        .join(",");
    pull_deadlines(&app.db.url, &format!("id IN ({list})")).await;
}

/// Moves an entry's offer deadline one second into the past (its run, its
/// hold and the entry), as if its minutes had gone by.
pub async fn expire_offer(app: &TestApp, entry_id: &str) {
    // Once its run waits for an answer (its email step done).
    wait::until(Duration::from_secs(30), "the offer run waits", || async {
        crate::checkout_support::count(
            &app.db.url,
            &format!(
                "SELECT 1 FROM workflow_runs r JOIN waitlist_entries e ON e.offer_run_id = r.id
                  WHERE e.id = '{entry_id}' AND r.status = 'waiting'"
            ),
        )
        .await
            == 1
    })
    .await;
    sql(
        app,
        &format!(
            "UPDATE waitlist_entries SET offer_expires_at = now() - interval '1 second' WHERE id = '{entry_id}'"
        ),
    )
    .await;
    pull_deadlines(
        &app.db.url,
        &format!("id = (SELECT offer_run_id FROM waitlist_entries WHERE id = '{entry_id}')"),
    )
    .await;
}

pub async fn sql(app: &TestApp, statements: &str) {
    let mut conn = app.raw_conn().await;
    conn.batch_execute(statements).await.unwrap();
}

/// `POST /v1/events/{id}/waitlist`.
pub async fn join(
    app: &TestApp,
    user: &TestUser,
    event_id: Uuid,
    body: Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/events/{event_id}/waitlist")))
        .header("authorization", user.bearer())
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Joins for `quantity` and returns the entry's id.
pub async fn joined(app: &TestApp, user: &TestUser, sold_out: &SoldOut, quantity: i32) -> String {
    let r = join(
        app,
        user,
        sold_out.event.event_id,
        json!({ "ticket_type_id": sold_out.ticket_type(), "quantity": quantity }),
    )
    .await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// `POST /v1/waitlist/{id}/{action}` (accept with an `Idempotency-Key`).
pub async fn answer(
    app: &TestApp,
    user: &TestUser,
    entry_id: &str,
    action: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/waitlist/{entry_id}/{action}")))
        .header("authorization", user.bearer())
        .header("idempotency-key", Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
pub struct EntryRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub blocked_since: Option<chrono::DateTime<chrono::Utc>>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub quantity: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub priority: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub offer_run_id: Option<String>,
}

/// Every entry of the ticket type, in join order.
pub async fn entries(app: &TestApp, ticket_type: Uuid) -> Vec<EntryRow> {
    let mut conn = app.raw_conn().await;
    diesel::sql_query(
        "SELECT id::text, status, quantity, priority, offer_run_id::text, blocked_since
           FROM waitlist_entries WHERE ticket_type_id = $1 ORDER BY joined_at, id",
    )
    .bind::<diesel::sql_types::Uuid, _>(ticket_type)
    .load(&mut conn)
    .await
    .unwrap()
}

pub async fn status_of(app: &TestApp, entry_id: &str) -> String {
    let mut conn = app.raw_conn().await;
    #[derive(diesel::QueryableByName)]
    struct S {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let s: S = diesel::sql_query(format!(
        "SELECT status FROM waitlist_entries WHERE id = '{entry_id}'"
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    s.status
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::QueryableByName)]
pub struct Counters {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub capacity: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub sold: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub held: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub waiting_units: i32,
    /// What the waiting entries want, counted from the entries.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub waiting_wanted: i32,
}

/// The type's counters and what its waiting entries want, in one snapshot.
pub async fn counters(conn: &mut AsyncPgConnection, ticket_type: Uuid) -> Counters {
    diesel::sql_query(
        "SELECT t.capacity, t.sold, t.held, t.waiting_units,
                COALESCE((SELECT sum(quantity) FROM waitlist_entries w
                           WHERE w.ticket_type_id = t.id AND w.status = 'waiting'), 0)::int AS waiting_wanted
           FROM ticket_types t WHERE t.id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(ticket_type)
    .get_result(conn)
    .await
    .unwrap()
}

/// `sold + held <= capacity`, `held = Σ active holds` (checkouts' and
/// offers' alike) and `waiting_units = Σ waiting entries`, read in one
/// repeatable-read snapshot. Panics with what broke.
pub async fn assert_invariants(conn: &mut AsyncPgConnection, ticket_type: Uuid) -> Counters {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await?;
        let c = counters(conn, ticket_type).await;
        assert!(c.sold + c.held <= c.capacity, "over capacity: {c:?}");
        assert_eq!(c.waiting_units, c.waiting_wanted, "waiting_units: {c:?}");
        let broken = holds::inconsistencies(conn).await?;
        assert!(
            broken.is_empty(),
            "held is not the sum of active holds: {broken:?}"
        );
        Ok(c)
    })
    .await
    .unwrap()
}

/// A sampler of [`assert_invariants`] every 20 ms until stopped; returns how
/// many samples it took.
pub fn sample_invariants(
    db_url: String,
    ticket_type: Uuid,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut conn = AsyncPgConnection::establish(&db_url).await.unwrap();
        let mut samples = 0;
        while !stop.is_cancelled() {
            assert_invariants(&mut conn, ticket_type).await;
            samples += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples
    })
}

/// Emails of `kind` queued for `user`.
pub async fn emails_to(app: &TestApp, user: Uuid, kind: &str) -> i64 {
    crate::checkout_support::count(
        &app.db.url,
        &format!("SELECT 1 FROM notifications WHERE user_id = '{user}' AND kind = '{kind}'"),
    )
    .await
}

#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct RunRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub step: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub error_code: Option<String>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub active_holds: i64,
}

/// Waits (reading the database) until the run is finished; panics with where
/// it stands when it is not within `within`.
pub async fn run_finished(conn: &mut AsyncPgConnection, run_id: &str, within: Duration) -> RunRow {
    let started = Instant::now();
    loop {
        let row: RunRow = diesel::sql_query(format!(
            "SELECT status, step, view->'error'->>'code' AS error_code,
                    (SELECT count(*) FROM holds h WHERE h.run_id = r.id AND h.status = 'active') AS active_holds
               FROM workflow_runs r WHERE id = '{run_id}'"
        ))
        .get_result(conn)
        .await
        .unwrap();
        if matches!(
            row.status.as_str(),
            "completed" | "compensated" | "failed" | "cancelled"
        ) {
            return row;
        }
        if started.elapsed() >= within {
            let how = where_the_run_stands(conn, run_id).await;
            panic!("run {run_id} not finished within {within:?}: {row:?}\n{how}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long the load tests wait for a run to finish (a public buyer's
/// checkout, an expired checkout giving its units back) under load:
/// past the engine's own backstop (a run that has not moved for
/// `STALLED_AFTER` is re-driven by the next sweep), so a message lost or
/// delayed on a starved machine is recovered the way production recovers it.
pub const RUN_FINISH_LIMIT: Duration = Duration::from_secs(150);

/// What a run that did not finish was doing: its row, its steps and what the
/// outbox holds, for the failure message.
async fn where_the_run_stands(conn: &mut AsyncPgConnection, run_id: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let lines: Vec<Line> = diesel::sql_query(format!(
        "SELECT format('run: attempts %s, last_error %s, created %s, updated %s, now %s',
                       attempts, last_error, created_at, updated_at, now()) AS line
           FROM workflow_runs WHERE id = '{run_id}'
         UNION ALL
         SELECT format('step %s %s %s %s', step, input, outcome, error)
           FROM workflow_steps WHERE run_id = '{run_id}'
         UNION ALL
         SELECT format('outbox %s (%s waiting, oldest due %s)', queue, count(*), min(available_at))
           FROM outbox GROUP BY queue
         UNION ALL
         SELECT format('outbox message for the run: %s due %s', queue, available_at)
           FROM outbox WHERE payload->>'run_id' = '{run_id}'"
    ))
    .load(conn)
    .await
    .unwrap_or_default();
    lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}
