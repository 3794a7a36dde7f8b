//! Reads of holds for the sweep's backstops and for the audit: holds past
//! their deadline, holds of runs that ended without them, and ticket types
//! whose `held` differs from their active holds.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::is_active;
use crate::prepared::KeepPrepared;
use crate::schema::holds;

/// Active holds past their deadline, by run: the expiry sweep's backstop.
pub async fn expired_runs(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    holds::table
        .filter(is_active())
        .filter(holds::expires_at.le(now))
        .select(holds::run_id)
        .distinct()
        .limit(limit)
        .keep_prepared()
        .load(conn)
        .await
}

#[derive(QueryableByName)]
struct RunId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    run_id: Uuid,
}

/// Runs that ended (completed, compensated, cancelled) yet still have active
/// holds. Only a hold taken ahead of a run's transaction that the run never
/// recorded can be left so (the run ended in between, e.g. cancelled by an
/// operator); the sweep gives it back.
pub async fn orphaned_runs(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<Uuid>> {
    let rows: Vec<RunId> = diesel::sql_query(
        "SELECT DISTINCT h.run_id
           FROM holds h JOIN workflow_runs r ON r.id = h.run_id
          WHERE h.status = 'active' AND r.status IN ('completed', 'compensated', 'cancelled')
          LIMIT $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.run_id).collect())
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
