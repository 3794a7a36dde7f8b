//! Holds for many runs on one ticket type in one statement: the group commit
//! of holds.
//!
//! A hot ticket type is one row, and every hold takes its row lock. One
//! statement per hold pays a lock, an update of the row, a hold row and a
//! commit for every run; here one statement takes the units of a whole batch
//! of runs, in their order of arrival: each run in turn gets its units while
//! they last (first come, first served, as if each had come alone), and the
//! row is updated once. The
//! guarantee stays the database's: the row's lock is taken before the units
//! are counted, and `ticket_types_capacity_check` (`taken ≤ capacity`, `taken` being `sold + held`)
//! refuses any statement that would break it.
//!
//! A run that has a hold row on the type already (an earlier attempt's) is
//! answered [`Answer::Existing`] and takes nothing: its caller adopts that
//! hold through [`crate::holds::hold`], which knows every case.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::holds::{HoldOutcome, Line, PricedHold};
use crate::prepared::KeepPrepared;

/// One run's wish: `quantity` units until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub run_id: Uuid,
    pub quantity: i32,
    pub expires_at: DateTime<Utc>,
}

impl Request {
    /// The request as a line of a hold of `ticket_type_id`.
    pub fn line(&self, ticket_type_id: Uuid) -> Line {
        Line {
            ticket_type_id,
            quantity: self.quantity,
        }
    }
}

/// What one run got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Held(PricedHold),
    /// Not enough was left when its turn came; `available` units were left
    /// after the batch.
    Refused {
        available: i32,
    },
    /// The run has a hold row on this type already; nothing was taken.
    Existing,
}

impl Answer {
    /// The answer as a hold of `requested` units of `ticket_type_id` decides
    /// it; `None` for [`Answer::Existing`], which decides nothing.
    pub fn outcome(self, ticket_type_id: Uuid, requested: i32) -> Option<HoldOutcome> {
        match self {
            Answer::Held(priced) => Some(HoldOutcome::Held(vec![priced])),
            Answer::Refused { available } => Some(HoldOutcome::Refused {
                ticket_type_id,
                requested,
                available,
            }),
            Answer::Existing => None,
        }
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::BigInt>)]
    price_minor: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    currency: Option<String>,
    #[diesel(sql_type = Integer)]
    available: i32,
}

/// Inside the caller's transaction, defers the check that each hold's run
/// exists to the commit: the caller holds seats for runs it inserts after,
/// in the same transaction (a batch of starts inserts each run as its hold
/// leaves it). A hold whose run is still missing at the commit fails it.
pub async fn check_runs_at_commit(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute("SET CONSTRAINTS holds_run_id_fkey DEFERRED")
        .await
}

/// One answer per request, in the requests' order. Run ids must be distinct.
/// Called outside a transaction, the statement commits on its own, and the
/// type's row lock lasts only for it.
pub async fn hold_many(
    conn: &mut AsyncPgConnection,
    ticket_type_id: Uuid,
    requests: &[Request],
) -> QueryResult<Vec<Answer>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let run_ids: Vec<Uuid> = requests.iter().map(|r| r.run_id).collect();
    let quantities: Vec<i32> = requests.iter().map(|r| r.quantity).collect();
    let expiries: Vec<DateTime<Utc>> = requests.iter().map(|r| r.expires_at).collect();
    let hold_ids: Vec<Uuid> = requests.iter().map(|_| Uuid::now_v7()).collect();
    // `kind` locks the row before anything is counted: the units are counted
    // from its latest version. `FOR NO KEY UPDATE` is the lock the counters'
    // `UPDATE` takes: it orders holds as `FOR UPDATE` would, but leaves alone
    // the key-share lock that inserting a ticket or a hold of the type takes
    // for its foreign key. (`FOR UPDATE` made each confirmation's tickets
    // wait for the batch's commit, and the next batch for the confirmation's.)
    // `fresh` are the runs without a hold row on the type, numbered in order
    // of arrival; `walk` gives each in turn its units while they last (one
    // that does not fit takes nothing, and a later, smaller one may still
    // fit, as if each had come alone).
    let rows: Vec<Row> = diesel::sql_query(
        "WITH RECURSIVE req AS (
              SELECT * FROM unnest($2::uuid[], $3::int4[], $4::timestamptz[], $5::uuid[])
                  WITH ORDINALITY AS r(run_id, quantity, expires_at, hold_id, ord)
          ), kind AS (
              SELECT capacity - taken - waiting_units AS free, price_minor, currency
                FROM ticket_type_rows WHERE id = $1 FOR NO KEY UPDATE
          ), fresh AS (
              SELECT req.*, row_number() OVER (ORDER BY req.ord) AS n
                FROM req
               WHERE NOT EXISTS (SELECT 1 FROM holds h
                                  WHERE h.run_id = req.run_id AND h.ticket_type_id = $1)
          ), walk (n, left_over, fits) AS (
              SELECT 0::bigint, (SELECT free FROM kind)::bigint, false
              UNION ALL
              SELECT f.n,
                     CASE WHEN f.quantity <= w.left_over THEN w.left_over - f.quantity
                          ELSE w.left_over END,
                     f.quantity <= w.left_over
                FROM walk w JOIN fresh f ON f.n = w.n + 1
          ), granted AS (
              SELECT fresh.* FROM fresh JOIN walk ON walk.n = fresh.n WHERE walk.fits
          ), taken AS (
              UPDATE ticket_type_rows SET taken = taken + (SELECT sum(quantity) FROM granted)
               WHERE id = $1 AND EXISTS (SELECT 1 FROM granted)
              RETURNING id
          ), inserted AS (
              INSERT INTO holds (id, run_id, ticket_type_id, quantity, expires_at)
              SELECT hold_id, run_id, $1, quantity, expires_at FROM granted
              RETURNING run_id
          )
          SELECT CASE WHEN i.run_id IS NOT NULL THEN 'held'
                      WHEN f.ord IS NULL THEN 'existing'
                      ELSE 'refused' END AS outcome,
                 kind.price_minor, kind.currency,
                 GREATEST(kind.free - COALESCE((SELECT sum(quantity) FROM granted), 0), 0)::int4
                     AS available
            FROM req CROSS JOIN kind
            LEFT JOIN fresh f ON f.ord = req.ord
            LEFT JOIN inserted i ON i.run_id = req.run_id
           ORDER BY req.ord",
    )
    .bind::<SqlUuid, _>(ticket_type_id)
    .bind::<Array<SqlUuid>, _>(&run_ids)
    .bind::<Array<Integer>, _>(&quantities)
    .bind::<Array<Timestamptz>, _>(&expiries)
    .bind::<Array<SqlUuid>, _>(&hold_ids)
    .keep_prepared()
    .load(conn)
    .await?;
    // No such ticket type: nothing to take.
    if rows.is_empty() {
        return Ok(requests
            .iter()
            .map(|_| Answer::Refused { available: 0 })
            .collect());
    }
    Ok(rows
        .into_iter()
        .zip(requests)
        .map(|(row, request)| match row.outcome.as_str() {
            "held" => Answer::Held(PricedHold {
                ticket_type_id,
                quantity: request.quantity,
                unit_price_minor: row.price_minor.unwrap_or_default(),
                currency: row.currency.unwrap_or_default(),
            }),
            "existing" => Answer::Existing,
            _ => Answer::Refused {
                available: row.available,
            },
        })
        .collect())
}
