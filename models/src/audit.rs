//! `audit_log`: one row per admin action, written in the same transaction as
//! the change it records, so the log never claims a change that rolled back
//! and never misses one that committed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::audit_log;

/// Action names, `<target>.<what>`; stable, clients may filter on them.
pub mod actions {
    pub const USER_ROLES_SET: &str = "user.roles.set";
    pub const USER_DISABLED: &str = "user.disable";
    /// Operator tools (`boxoffice dlq`, `boxoffice runs`, `/v1/ops`).
    pub const DLQ_RETRY: &str = "dlq.retry";
    pub const DLQ_DISCARD: &str = "dlq.discard";
    pub const RUN_RETRY: &str = "run.retry";
    pub const RUN_CANCEL: &str = "run.cancel";
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
pub struct AuditEntry {
    pub id: i64,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_log)]
pub struct NewAuditEntry<'a> {
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: String,
    pub details: serde_json::Value,
    pub request_id: Option<&'a str>,
}

pub async fn record(
    conn: &mut AsyncPgConnection,
    entry: &NewAuditEntry<'_>,
) -> QueryResult<AuditEntry> {
    diesel::insert_into(audit_log::table)
        .values(entry)
        .returning(AuditEntry::as_returning())
        .get_result(conn)
        .await
}

/// One page of the log, newest first. `before` is the `(created_at, id)` of the
/// last row of the previous page.
pub async fn list(
    conn: &mut AsyncPgConnection,
    before: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut q = audit_log::table
        .select(AuditEntry::as_select())
        .into_boxed();
    if let Some((created_at, id)) = before {
        q = q.filter(
            audit_log::created_at
                .lt(created_at)
                .or(audit_log::created_at
                    .eq(created_at)
                    .and(audit_log::id.lt(id))),
        );
    }
    q.order((audit_log::created_at.desc(), audit_log::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}
