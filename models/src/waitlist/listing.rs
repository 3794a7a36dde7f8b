//! Reads of the waiting entries for their participants and organizers: a
//! participant's entries, an event's in serving order, and what is ahead of
//! an entry.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Entry, WAITING};
use crate::schema::waitlist_entries;

/// Units ahead of a waiting entry: what the waiting entries before it in
/// serving order want. 0 for an entry that is not waiting.
pub async fn units_ahead(conn: &mut AsyncPgConnection, entry: &Entry) -> QueryResult<i64> {
    if entry.status != WAITING {
        return Ok(0);
    }
    let vip = entry.is_vip();
    let mut query = waitlist_entries::table
        .filter(waitlist_entries::ticket_type_id.eq(entry.ticket_type_id))
        .filter(waitlist_entries::status.eq(WAITING))
        .filter(waitlist_entries::id.ne(entry.id))
        .into_boxed();
    let earlier_in_tier =
        waitlist_entries::joined_at
            .lt(entry.joined_at)
            .or(waitlist_entries::joined_at
                .eq(entry.joined_at)
                .and(waitlist_entries::id.lt(entry.id)));
    query = if vip {
        query.filter(waitlist_entries::priority.eq("vip").and(earlier_in_tier))
    } else {
        query.filter(waitlist_entries::priority.eq("vip").or(earlier_in_tier))
    };
    let total: Option<i64> = query
        .select(diesel::dsl::sum(waitlist_entries::quantity))
        .first(conn)
        .await?;
    Ok(total.unwrap_or(0))
}

/// A participant's entries, newest first.
pub async fn for_participant(
    conn: &mut AsyncPgConnection,
    participant_id: Uuid,
    limit: i64,
) -> QueryResult<Vec<Entry>> {
    waitlist_entries::table
        .filter(waitlist_entries::participant_id.eq(participant_id))
        .order((
            waitlist_entries::joined_at.desc(),
            waitlist_entries::id.desc(),
        ))
        .limit(limit)
        .select(Entry::as_select())
        .load(conn)
        .await
}

/// Where a page of an event's waitlist starts: after this entry, in serving
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub vip: bool,
    pub joined_at: DateTime<Utc>,
    pub id: Uuid,
}

/// An event's entries in serving order (vip first, by join time, then id),
/// every status, one page after `after`.
pub async fn for_event(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    status: Option<&str>,
    after: Option<After>,
    limit: i64,
) -> QueryResult<Vec<Entry>> {
    let mut query = waitlist_entries::table
        .filter(waitlist_entries::event_id.eq(event_id))
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(waitlist_entries::status.eq(status.to_owned()));
    }
    if let Some(after) = after {
        // (standard?, joined_at, id) > (after's): keyset over serving order.
        let standard = waitlist_entries::priority.ne("vip");
        let same_tier_later =
            waitlist_entries::joined_at
                .gt(after.joined_at)
                .or(waitlist_entries::joined_at
                    .eq(after.joined_at)
                    .and(waitlist_entries::id.gt(after.id)));
        query = if after.vip {
            query.filter(standard.or(waitlist_entries::priority.eq("vip").and(same_tier_later)))
        } else {
            query.filter(waitlist_entries::priority.ne("vip").and(same_tier_later))
        };
    }
    query
        .order((
            waitlist_entries::priority.ne("vip"),
            waitlist_entries::joined_at.asc(),
            waitlist_entries::id.asc(),
        ))
        .limit(limit)
        .select(Entry::as_select())
        .load(conn)
        .await
}
