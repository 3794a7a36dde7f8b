//! `holds` and the capacity counters of `ticket_types` (DESIGN.md §5).
//!
//! A hold is one guarded statement under the ticket type's row lock:
//! `UPDATE ticket_types SET held = held + q WHERE id = $id AND capacity - sold - held >= q`.
//! Several types are locked in id order, so two checkouts never deadlock. Every
//! unit of `held` has an active hold row, so `held = sum(active holds)` holds at
//! every commit (see [`inconsistencies`]).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{holds, ticket_types};

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

fn sorted(lines: &[Line]) -> Vec<Line> {
    let mut lines = lines.to_vec();
    lines.sort_by_key(|l| l.ticket_type_id);
    lines
}

/// Takes capacity for every line or none (a savepoint undoes a partial hold).
/// `sell` takes it as sold directly (a late payment) instead of held.
async fn take(
    conn: &mut AsyncPgConnection,
    lines: &[Line],
    sell: bool,
) -> QueryResult<HoldOutcome> {
    let lines = sorted(lines);
    let result = conn
        .transaction::<_, Refusal, _>(async |conn| {
            let mut priced = Vec::with_capacity(lines.len());
            for line in &lines {
                let guard = ticket_types::capacity - ticket_types::sold - ticket_types::held;
                let target = ticket_types::table
                    .filter(ticket_types::id.eq(line.ticket_type_id))
                    .filter(guard.ge(line.quantity));
                let updated: Option<(i64, String)> = if sell {
                    diesel::update(target)
                        .set(ticket_types::sold.eq(ticket_types::sold + line.quantity))
                        .returning((ticket_types::price_minor, ticket_types::currency))
                        .get_result(conn)
                        .await
                        .optional()?
                } else {
                    diesel::update(target)
                        .set(ticket_types::held.eq(ticket_types::held + line.quantity))
                        .returning((ticket_types::price_minor, ticket_types::currency))
                        .get_result(conn)
                        .await
                        .optional()?
                };
                match updated {
                    Some((unit_price_minor, currency)) => priced.push(PricedHold {
                        ticket_type_id: line.ticket_type_id,
                        quantity: line.quantity,
                        unit_price_minor,
                        currency,
                    }),
                    None => {
                        let available: i32 = ticket_types::table
                            .find(line.ticket_type_id)
                            .select(guard)
                            .first(conn)
                            .await
                            .optional()?
                            .unwrap_or(0);
                        return Err(Refusal::Short {
                            ticket_type_id: line.ticket_type_id,
                            requested: line.quantity,
                            available,
                        });
                    }
                }
            }
            Ok(priced)
        })
        .await;
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

/// Holds capacity for a run until `expires_at` (inside the run's transaction).
pub async fn hold(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    lines: &[Line],
    expires_at: DateTime<Utc>,
) -> QueryResult<HoldOutcome> {
    let outcome = take(conn, lines, false).await?;
    if let HoldOutcome::Held(priced) = &outcome {
        let rows: Vec<_> = priced
            .iter()
            .map(|p| {
                (
                    holds::id.eq(Uuid::now_v7()),
                    holds::run_id.eq(run_id),
                    holds::ticket_type_id.eq(p.ticket_type_id),
                    holds::quantity.eq(p.quantity),
                    holds::expires_at.eq(expires_at),
                )
            })
            .collect();
        diesel::insert_into(holds::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok(outcome)
}

/// Sells directly, with no hold (a payment that arrived after the run's holds
/// were released). Nothing is sold unless every line fits.
pub async fn sell_directly(
    conn: &mut AsyncPgConnection,
    lines: &[Line],
) -> QueryResult<HoldOutcome> {
    take(conn, lines, true).await
}

/// The run's active holds, locked, in ticket type order.
async fn active_for_run(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
) -> QueryResult<Vec<(Uuid, Uuid, i32)>> {
    holds::table
        .filter(holds::run_id.eq(run_id))
        .filter(holds::status.eq("active"))
        .order(holds::ticket_type_id.asc())
        .for_update()
        .select((holds::id, holds::ticket_type_id, holds::quantity))
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

async fn close_for_run(conn: &mut AsyncPgConnection, run_id: Uuid, sell: bool) -> QueryResult<i32> {
    let active = active_for_run(conn, run_id).await?;
    let mut total = 0;
    for (hold_id, ticket_type_id, quantity) in active {
        let target = ticket_types::table.find(ticket_type_id);
        if sell {
            diesel::update(target)
                .set((
                    ticket_types::held.eq(ticket_types::held - quantity),
                    ticket_types::sold.eq(ticket_types::sold + quantity),
                ))
                .execute(conn)
                .await?;
        } else {
            diesel::update(target)
                .set(ticket_types::held.eq(ticket_types::held - quantity))
                .execute(conn)
                .await?;
        }
        diesel::update(holds::table.find(hold_id))
            .set((
                holds::status.eq(if sell { "converted" } else { "released" }),
                holds::closed_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        total += quantity;
    }
    Ok(total)
}

/// Active holds past their deadline, by run: the expiry sweep's backstop.
pub async fn expired_runs(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    holds::table
        .filter(holds::status.eq("active"))
        .filter(holds::expires_at.le(now))
        .select(holds::run_id)
        .distinct()
        .limit(limit)
        .load(conn)
        .await
}

/// A ticket type whose `held` differs from the sum of its active holds.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Inconsistency {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub ticket_type_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub held: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub active_holds: i64,
}

/// Every ticket type where `held != sum(active holds)`: empty in a healthy system.
pub async fn inconsistencies(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Inconsistency>> {
    diesel::sql_query(
        "SELECT t.id AS ticket_type_id, t.held, COALESCE(SUM(h.quantity), 0)::bigint AS active_holds
           FROM ticket_types t
           LEFT JOIN holds h ON h.ticket_type_id = t.id AND h.status = 'active'
          GROUP BY t.id, t.held
         HAVING t.held <> COALESCE(SUM(h.quantity), 0)",
    )
    .load(conn)
    .await
}
