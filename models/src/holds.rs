//! `holds` and the capacity counters of ticket types (DESIGN.md §5).
//!
//! A hold is one guarded statement under the ticket type's row lock:
//! `UPDATE ticket_type_rows SET taken = taken + q WHERE id = $id AND capacity - taken - waiting_units >= q`,
//! where `taken` is `sold + held`.
//! `waiting_units` are the units the type's waitlist waits for: while anyone
//! waits, a unit freed by any path is the waitlist's in the very transaction
//! that freed it, and the public can take only what is left beyond them. A
//! waitlist offer takes its units from the waitlist's share ([`hold_for_offer`]).
//! Several types are locked in id order, so two checkouts never deadlock.
//! Closing a hold moves its units at the commit of its transaction (the
//! `holds_closed` trigger): a release gives them back to the type's row, which
//! is then locked only for the commit; a sale counts them sold on the type's
//! sales rows and leaves the type's row alone, since `taken` does not change.
//! Every unit of `held` (`taken` less what was sold) has an active hold row, so
//! `held = sum(active holds)` holds at every commit (see [`inconsistencies`]).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::prepared::KeepPrepared;
use crate::schema::{holds, ticket_type_rows, ticket_types};
use crate::seats_left;

mod backstops;
mod offers;

pub use backstops::{Inconsistency, expired_runs, inconsistencies, orphaned_runs};
pub use offers::{adopt_offer_hold, hold_for_offer, move_to_run};

/// `status = 'active'`, written into the statement rather than bound. The
/// planner then knows the status in every plan of a prepared statement: its
/// generic plan can use the partial indexes on active holds and costs what a
/// plan for the values does, so Postgres keeps it after its five trial plans.
/// With the status bound, while the table has no statistics (a new system, a
/// sale's first minutes) the plan for `'active'` looked cheaper than the
/// generic one, and the statement was planned again at every run. Diesel
/// sends a statement with written SQL unnamed (planned at every run too), so
/// the statements using this are kept prepared: their text is the code's.
fn is_active()
-> diesel::dsl::Eq<holds::status, diesel::expression::SqlLiteral<diesel::sql_types::Text>> {
    holds::status.eq(diesel::dsl::sql("'active'"))
}

/// One line: a ticket type and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub ticket_type_id: Uuid,
    pub quantity: i32,
}

/// A line with the unit price it was held at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedHold {
    pub ticket_type_id: Uuid,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    Held(Vec<PricedHold>),
    /// Not enough left of one type; nothing was held.
    Refused {
        ticket_type_id: Uuid,
        requested: i32,
        available: i32,
    },
}

#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("not enough capacity")]
    Short {
        ticket_type_id: Uuid,
        requested: i32,
        available: i32,
    },
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

pub(crate) fn sorted(lines: &[Line]) -> Vec<Line> {
    let mut lines = lines.to_vec();
    lines.sort_by_key(|l| l.ticket_type_id);
    lines
}

/// Sells every line or none, with no hold (a savepoint undoes a partial sale).
async fn sell(conn: &mut AsyncPgConnection, lines: &[Line]) -> QueryResult<HoldOutcome> {
    let lines = sorted(lines);
    let result = conn
        .transaction::<_, Refusal, _>(async |conn| {
            let mut priced = Vec::with_capacity(lines.len());
            for line in &lines {
                let guard = ticket_type_rows::capacity
                    - ticket_type_rows::taken
                    - ticket_type_rows::waiting_units;
                let sold: Option<(i64, String)> = diesel::update(
                    ticket_type_rows::table
                        .filter(ticket_type_rows::id.eq(line.ticket_type_id))
                        .filter(guard.ge(line.quantity)),
                )
                .set(ticket_type_rows::taken.eq(ticket_type_rows::taken + line.quantity))
                .returning((ticket_type_rows::price_minor, ticket_type_rows::currency))
                .get_result(conn)
                .await
                .optional()?;
                match sold {
                    Some((unit_price_minor, currency)) => {
                        count_sold(conn, line.ticket_type_id, line.quantity).await?;
                        priced.push(PricedHold {
                            ticket_type_id: line.ticket_type_id,
                            quantity: line.quantity,
                            unit_price_minor,
                            currency,
                        })
                    }
                    None => return Err(short(conn, *line).await?),
                }
            }
            Ok(priced)
        })
        .await;
    decided(result)
}

/// Counts `units` sold of a ticket type (negative for a refund) on this
/// connection's row of the type's sales (`ticket_type_counted`). The caller
/// moves `taken` itself when the free units change.
pub(crate) async fn count_sold(
    conn: &mut AsyncPgConnection,
    ticket_type_id: Uuid,
    units: i32,
) -> QueryResult<()> {
    use diesel::sql_types::{Integer, Uuid as SqlUuid};
    diesel::sql_query("SELECT ticket_type_counted($1, $2, 0, 0, 0, 0)")
        .bind::<SqlUuid, _>(ticket_type_id)
        .bind::<Integer, _>(units)
        .execute(conn)
        .await
        .map(drop)
}

/// A refusal for lack of capacity is an outcome; a database error is an error.
fn decided(result: Result<Vec<PricedHold>, Refusal>) -> QueryResult<HoldOutcome> {
    match result {
        Ok(priced) => Ok(HoldOutcome::Held(priced)),
        Err(Refusal::Short {
            ticket_type_id,
            requested,
            available,
        }) => Ok(HoldOutcome::Refused {
            ticket_type_id,
            requested,
            available,
        }),
        Err(Refusal::Db(e)) => Err(e),
    }
}

/// The run's active holds, priced, when they are exactly `lines`.
async fn adopt(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    lines: &[Line],
) -> QueryResult<Option<Vec<PricedHold>>> {
    let held: Vec<(Uuid, i32, i64, String)> = holds::table
        .inner_join(ticket_types::table)
        .filter(holds::run_id.eq(run_id))
        .filter(is_active())
        .order(holds::ticket_type_id.asc())
        .select((
            holds::ticket_type_id,
            holds::quantity,
            ticket_types::price_minor,
            ticket_types::currency,
        ))
        .keep_prepared()
        .load(conn)
        .await?;
    let wanted = sorted(lines);
    let same = held.len() == wanted.len()
        && held
            .iter()
            .zip(&wanted)
            .all(|(h, w)| h.0 == w.ticket_type_id && h.1 == w.quantity);
    Ok(same.then(|| {
        held.into_iter()
            .map(
                |(ticket_type_id, quantity, unit_price_minor, currency)| PricedHold {
                    ticket_type_id,
                    quantity,
                    unit_price_minor,
                    currency,
                },
            )
            .collect()
    }))
}

#[derive(QueryableByName)]
struct TakenLine {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    price_minor: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    currency: String,
}

/// Takes one line and writes its hold row in a single statement, so the ticket
/// type's row lock lasts only for this statement (and its commit, when it runs
/// on its own). `None` when the line does not fit.
async fn take_line_with_hold(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    line: Line,
    expires_at: DateTime<Utc>,
) -> QueryResult<Option<PricedHold>> {
    use diesel::sql_types::{Integer, Timestamptz, Uuid as SqlUuid};
    let taken: Option<TakenLine> = diesel::sql_query(
        "WITH taken AS (
              UPDATE ticket_type_rows SET taken = taken + $3
               WHERE id = $2 AND capacity - taken - waiting_units >= $3
              RETURNING id, price_minor, currency
          ), inserted AS (
              INSERT INTO holds (id, run_id, ticket_type_id, quantity, expires_at)
              SELECT $4, $1, id, $3, $5 FROM taken
              RETURNING ticket_type_id
          )
          SELECT taken.price_minor, taken.currency
            FROM taken JOIN inserted ON inserted.ticket_type_id = taken.id",
    )
    .bind::<SqlUuid, _>(run_id)
    .bind::<SqlUuid, _>(line.ticket_type_id)
    .bind::<Integer, _>(line.quantity)
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<Timestamptz, _>(expires_at)
    .keep_prepared()
    .get_result(conn)
    .await
    .optional()?;
    Ok(taken.map(|t| PricedHold {
        ticket_type_id: line.ticket_type_id,
        quantity: line.quantity,
        unit_price_minor: t.price_minor,
        currency: t.currency,
    }))
}

/// Holds capacity for a run until `expires_at`: every line or none.
///
/// Called outside any transaction (the engine takes a run's hold just before
/// the run's step, see `workers::engine::ahead`), a one-line hold is a single
/// auto-committed statement, so a hot ticket type's row lock lasts only for it
/// and its commit (DESIGN.md §5: capacity is decided by the row lock). Inside a
/// transaction it joins it (several lines under a savepoint).
///
/// Idempotent per run: a run that already holds these lines gets them back, and
/// two concurrent attempts for one run take capacity once (the second one's
/// insert hits `UNIQUE (run_id, ticket_type_id)`, which undoes its statement;
/// inside a transaction that error ends the transaction, and the retried step
/// finds the hold). A hold belongs to its run from its commit, whether or not
/// the run recorded it: the run's next attempt adopts it, its compensation
/// releases it, and the sweep releases it if the run ended without it
/// ([`orphaned_runs`]).
pub async fn hold(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    lines: &[Line],
    expires_at: DateTime<Utc>,
) -> QueryResult<HoldOutcome> {
    if let Some(held) = adopt(conn, run_id, lines).await? {
        return Ok(HoldOutcome::Held(held));
    }
    let lines = sorted(lines);
    let result = match lines.as_slice() {
        // The common case: one statement (committed on its own outside a
        // transaction).
        [line] => match take_line_with_hold(conn, run_id, *line, expires_at).await {
            Ok(Some(priced)) => Ok(vec![priced]),
            Ok(None) => Err(short(conn, *line).await?),
            Err(e) => Err(Refusal::Db(e)),
        },
        _ => {
            conn.transaction::<_, Refusal, _>(async |conn| {
                let mut priced = Vec::with_capacity(lines.len());
                for line in &lines {
                    match take_line_with_hold(conn, run_id, *line, expires_at).await? {
                        Some(p) => priced.push(p),
                        None => return Err(short(conn, *line).await?),
                    }
                }
                Ok(priced)
            })
            .await
        }
    };
    match result {
        // Another attempt for this run took it first: that hold is the run's.
        Err(Refusal::Db(e)) if is_unique_violation(&e) => {
            match adopt(conn, run_id, &lines).await? {
                Some(held) => Ok(HoldOutcome::Held(held)),
                None => Err(e),
            }
        }
        result => decided(result),
    }
}

fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Why a line does not fit: what is left of its ticket type for the public
/// (never the units its waitlist waits for).
async fn short(conn: &mut AsyncPgConnection, line: Line) -> QueryResult<Refusal> {
    let left = seats_left::left_for_public(conn, &[line.ticket_type_id]).await?;
    let available = left.as_slice().first().map_or(0, |&(_, left)| left.max(0));
    Ok(Refusal::Short {
        ticket_type_id: line.ticket_type_id,
        requested: line.quantity,
        available,
    })
}

/// Sells directly, with no hold (a payment that arrived after the run's holds
/// were released). Nothing is sold unless every line fits.
pub async fn sell_directly(
    conn: &mut AsyncPgConnection,
    lines: &[Line],
) -> QueryResult<HoldOutcome> {
    sell(conn, lines).await
}

/// The run's active holds, locked, in ticket type order.
async fn active_for_run(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
) -> QueryResult<Vec<(Uuid, Uuid, i32)>> {
    holds::table
        .filter(holds::run_id.eq(run_id))
        .filter(is_active())
        .order(holds::ticket_type_id.asc())
        .for_update()
        .select((holds::id, holds::ticket_type_id, holds::quantity))
        .keep_prepared()
        .load(conn)
        .await
}

/// Gives the run's held capacity back. Idempotent: released holds stay released.
pub async fn release_for_run(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<i32> {
    close_for_run(conn, run_id, false).await
}

/// Turns the run's holds into sales. Idempotent.
pub async fn convert_for_run(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<i32> {
    close_for_run(conn, run_id, true).await
}

/// Closes the run's active holds, in ticket type order. Their units move at
/// commit (the `holds_closed` trigger, in the order of these updates, so two
/// runs never lock two types in opposite orders): a release locks a ticket
/// type's row only for the commit, and a sale not at all (its units are
/// counted on the type's sales rows).
async fn close_for_run(conn: &mut AsyncPgConnection, run_id: Uuid, sell: bool) -> QueryResult<i32> {
    let active = active_for_run(conn, run_id).await?;
    let mut total = 0;
    for (hold_id, _, quantity) in active {
        diesel::update(holds::table.find(hold_id))
            .set((
                holds::status.eq(if sell { "converted" } else { "released" }),
                holds::closed_at.eq(diesel::dsl::now),
            ))
            .keep_prepared()
            .execute(conn)
            .await?;
        total += quantity;
    }
    Ok(total)
}
