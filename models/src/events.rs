//! `events`: what organizers sell, and the public search over them.
//!
//! Life cycle: `draft` → `published` → `completed`, or `published` → `cancelled`.
//! Drafts are private to their organizer and may be deleted; a draft is
//! published only with at least one ticket type, a future start and a place
//! (a venue or the online flag). Every change to an event's own fields goes
//! through [`update_versioned`]: `UPDATE … WHERE version = $seen SET version =
//! version + 1`, so of two writers that read the same version exactly one wins.
//!
//! Writes to an event's ticket types and coupons first lock the event row
//! ([`lock`]), so they serialise with publishing and cancelling: e.g. the last
//! ticket type of an event can't be deleted while it is being published.

use std::io::Write;

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{BigInt, Bool, Float4, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{events, ticket_types};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub enum EventStatus {
    Draft,
    Published,
    Cancelled,
    Completed,
}

impl EventStatus {
    pub const ALL: [EventStatus; 4] = [
        EventStatus::Draft,
        EventStatus::Published,
        EventStatus::Cancelled,
        EventStatus::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Draft => "draft",
            EventStatus::Published => "published",
            EventStatus::Cancelled => "cancelled",
            EventStatus::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Cancelled and completed events are history: their fields, ticket types and
    /// coupons no longer change.
    pub fn is_editable(self) -> bool {
        matches!(self, EventStatus::Draft | EventStatus::Published)
    }
}

impl ToSql<Text, Pg> for EventStatus {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.as_str().as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Pg> for EventStatus {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let text = std::str::from_utf8(value.as_bytes())?;
        EventStatus::parse(text).ok_or_else(|| format!("unknown event status {text:?}").into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = events, check_for_backend(diesel::pg::Pg))]
pub struct Event {
    pub id: Uuid,
    pub organizer_id: Uuid,
    pub venue_id: Option<Uuid>,
    pub online: bool,
    pub title: String,
    pub description: String,
    pub category: String,
    /// `None` until the first ticket type fixes it.
    pub currency: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: EventStatus,
    pub sales_start_at: Option<DateTime<Utc>>,
    pub sales_end_at: Option<DateTime<Utc>>,
    pub hold_minutes: i32,
    pub max_tickets_per_order: i32,
    /// Tickets one participant may have, over confirmed bookings and open
    /// checkouts; `None`: no limit beyond each order's.
    pub max_tickets_per_participant: Option<i32>,
    /// `None`: not refundable.
    pub refundable_until_hours_before: Option<i32>,
    pub version: i32,
    /// Sold-out ticket types take a waitlist.
    pub waitlist_enabled: bool,
    /// How long a waitlist offer holds its units.
    pub waitlist_offer_minutes: i32,
    pub published_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Minutes before the start at which bookings are reminded (up to 3).
    pub reminder_offsets_minutes: Vec<i32>,
}

impl Event {
    pub fn is_managed_by(&self, user_id: Uuid) -> bool {
        self.organizer_id == user_id
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent {
    pub id: Uuid,
    pub organizer_id: Uuid,
    pub venue_id: Option<Uuid>,
    pub online: bool,
    pub title: String,
    pub description: String,
    pub category: String,
    pub currency: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub sales_start_at: Option<DateTime<Utc>>,
    pub sales_end_at: Option<DateTime<Utc>>,
    pub hold_minutes: i32,
    pub max_tickets_per_order: i32,
    pub max_tickets_per_participant: Option<i32>,
    pub refundable_until_hours_before: Option<i32>,
    /// `None`: the column's default (true).
    pub waitlist_enabled: Option<bool>,
    /// `None`: the column's default (720).
    pub waitlist_offer_minutes: Option<i32>,
}

/// A partial update: `None` leaves a column as it is; `Some(None)` clears a
/// nullable one. Status changes go through [`publish`] and [`cancel`] instead.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = events)]
pub struct EventChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub venue_id: Option<Option<Uuid>>,
    pub online: Option<bool>,
    pub currency: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub sales_start_at: Option<Option<DateTime<Utc>>>,
    pub sales_end_at: Option<Option<DateTime<Utc>>>,
    pub hold_minutes: Option<i32>,
    pub max_tickets_per_order: Option<i32>,
    pub max_tickets_per_participant: Option<Option<i32>>,
    pub refundable_until_hours_before: Option<Option<i32>>,
    pub waitlist_enabled: Option<bool>,
    pub waitlist_offer_minutes: Option<i32>,
    pub reminder_offsets_minutes: Option<Vec<i32>>,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewEvent) -> QueryResult<Event> {
    diesel::insert_into(events::table)
        .values(new)
        .returning(Event::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Event>> {
    events::table
        .find(id)
        .select(Event::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks the event row until the end of the transaction. `FOR NO KEY UPDATE`
/// still lets other transactions insert rows that reference the event.
pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Event>> {
    events::table
        .find(id)
        .select(Event::as_select())
        .for_no_key_update()
        .first(conn)
        .await
        .optional()
}

/// Fixes the currency of an event that has none yet (its first ticket type
/// does this). Returns the event's currency afterwards.
pub async fn fix_currency(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    currency: &str,
) -> QueryResult<Option<String>> {
    diesel::update(events::table.find(id).filter(events::currency.is_null()))
        .set(events::currency.eq(currency))
        .execute(conn)
        .await?;
    events::table
        .find(id)
        .select(events::currency)
        .first(conn)
        .await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionedUpdate {
    Updated(Box<Event>),
    NotFound,
    /// Someone else changed the event since `expected` was read.
    VersionMismatch {
        current: i32,
    },
    NotEditable(EventStatus),
}

/// Applies `changes` only if the event is editable and still at one of the
/// `expected` versions (`None`: at any), in one statement: two writers with
/// the same version can't both win.
pub async fn update_versioned(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    expected: Option<&[i32]>,
    changes: &EventChanges,
) -> QueryResult<VersionedUpdate> {
    let at_expected_version: Box<dyn BoxableExpression<events::table, Pg, SqlType = Bool>> =
        match expected {
            Some(versions) => Box::new(events::version.eq_any(versions.to_vec())),
            None => Box::new(diesel::dsl::sql::<Bool>("TRUE")),
        };
    let updated = diesel::update(
        events::table
            .find(id)
            .filter(at_expected_version)
            .filter(events::status.eq_any([EventStatus::Draft, EventStatus::Published])),
    )
    .set((
        changes,
        events::version.eq(events::version + 1),
        events::updated_at.eq(diesel::dsl::now),
    ))
    .returning(Event::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(event) = updated {
        return Ok(VersionedUpdate::Updated(Box::new(event)));
    }
    Ok(match find(conn, id).await? {
        None => VersionedUpdate::NotFound,
        Some(event) if !event.status.is_editable() => VersionedUpdate::NotEditable(event.status),
        Some(event) => VersionedUpdate::VersionMismatch {
            current: event.version,
        },
    })
}

/// Why an event can't be published (all that apply, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishBlocker {
    NotDraft(EventStatus),
    NoTicketTypes,
    StartsInPast,
    NoLocation,
}

impl PublishBlocker {
    pub fn code(self) -> &'static str {
        match self {
            PublishBlocker::NotDraft(_) => "not_draft",
            PublishBlocker::NoTicketTypes => "no_ticket_types",
            PublishBlocker::StartsInPast => "starts_in_past",
            PublishBlocker::NoLocation => "no_location",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published(Box<Event>),
    NotFound,
    Refused(Vec<PublishBlocker>),
}

/// The rules for publishing, as a pure function of the locked event.
pub fn publish_blockers(
    event: &Event,
    ticket_type_count: i64,
    now: DateTime<Utc>,
) -> Vec<PublishBlocker> {
    let mut blockers = Vec::new();
    if event.status != EventStatus::Draft {
        blockers.push(PublishBlocker::NotDraft(event.status));
    }
    if ticket_type_count == 0 {
        blockers.push(PublishBlocker::NoTicketTypes);
    }
    if event.starts_at <= now {
        blockers.push(PublishBlocker::StartsInPast);
    }
    if event.venue_id.is_none() && !event.online {
        blockers.push(PublishBlocker::NoLocation);
    }
    blockers
}

/// Publishes a draft, under the event's row lock so a concurrent ticket-type
/// delete can't leave a published event with nothing to sell.
pub async fn publish(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<PublishOutcome> {
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        let Some(event) = lock(c, id).await? else {
            return Ok(PublishOutcome::NotFound);
        };
        let ticket_type_count: i64 = ticket_types::table
            .filter(ticket_types::event_id.eq(id))
            .count()
            .get_result(c)
            .await?;
        let blockers = publish_blockers(&event, ticket_type_count, Utc::now());
        if !blockers.is_empty() {
            return Ok(PublishOutcome::Refused(blockers));
        }
        let event = diesel::update(events::table.find(id))
            .set((
                events::status.eq(EventStatus::Published),
                events::published_at.eq(diesel::dsl::now),
                events::version.eq(events::version + 1),
                events::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Event::as_returning())
            .get_result(c)
            .await?;
        Ok(PublishOutcome::Published(Box::new(event)))
    })
    .await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    Done(Box<Event>),
    NotFound,
    /// The event is in a status this change does not start from.
    WrongStatus(EventStatus),
}

/// Cancels a published event (status only; refunds come with the refund workflow).
pub async fn cancel(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<StatusChange> {
    let cancelled = diesel::update(
        events::table
            .find(id)
            .filter(events::status.eq(EventStatus::Published)),
    )
    .set((
        events::status.eq(EventStatus::Cancelled),
        events::cancelled_at.eq(diesel::dsl::now),
        events::version.eq(events::version + 1),
        events::updated_at.eq(diesel::dsl::now),
    ))
    .returning(Event::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(event) = cancelled {
        return Ok(StatusChange::Done(Box::new(event)));
    }
    Ok(match find(conn, id).await? {
        None => StatusChange::NotFound,
        Some(event) => StatusChange::WrongStatus(event.status),
    })
}

/// Deletes a draft together with its ticket types and coupons.
pub async fn delete_draft(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<StatusChange> {
    let deleted = diesel::delete(
        events::table
            .find(id)
            .filter(events::status.eq(EventStatus::Draft)),
    )
    .returning(Event::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(event) = deleted {
        return Ok(StatusChange::Done(Box::new(event)));
    }
    Ok(match find(conn, id).await? {
        None => StatusChange::NotFound,
        Some(event) => StatusChange::WrongStatus(event.status),
    })
}

/// A page of one organizer's events (every organizer's for `None`), by start time.
pub async fn list_for_organizer(
    conn: &mut AsyncPgConnection,
    organizer_id: Option<Uuid>,
    status: Option<EventStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let mut query = events::table.select(Event::as_select()).into_boxed();
    if let Some(organizer_id) = organizer_id {
        query = query.filter(events::organizer_id.eq(organizer_id));
    }
    if let Some(status) = status {
        query = query.filter(events::status.eq(status));
    }
    if let Some((starts_at, id)) = after {
        query = query.filter(
            events::starts_at
                .gt(starts_at)
                .or(events::starts_at.eq(starts_at).and(events::id.gt(id))),
        );
    }
    query
        .order((events::starts_at.asc(), events::id.asc()))
        .limit(limit)
        .load(conn)
        .await
}

// ---------------------------------------------------------------------------
// Public search
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchSort {
    /// Soonest first.
    StartsAt,
    /// Best `q` match first (title matches outrank description and venue matches).
    Relevance,
}

/// Where the previous page ended: the sort key of its last row and its id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchAfter {
    StartsAt { starts_at: DateTime<Utc>, id: Uuid },
    Relevance { rank: f32, id: Uuid },
}

/// Filters of the public listing; every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilters {
    /// Web-search syntax (`"exact phrase"`, `or`, `-not`), English stemming.
    pub q: Option<String>,
    pub category: Option<String>,
    /// The venue's city, case-insensitive.
    pub city: Option<String>,
    /// Starts at or after.
    pub from: Option<DateTime<Utc>>,
    /// Starts before.
    pub to: Option<DateTime<Utc>>,
    /// Some ticket type costs at most this much (and, with `available_only`,
    /// that same ticket type has tickets left).
    pub price_max: Option<i64>,
    pub available_only: bool,
}

/// One row of the public listing.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct ListedEvent {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Text)]
    pub category: String,
    #[diesel(sql_type = Timestamptz)]
    pub starts_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub ends_at: DateTime<Utc>,
    #[diesel(sql_type = Bool)]
    pub online: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub currency: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub venue_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub venue_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub venue_city: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub venue_country: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub min_price_minor: Option<i64>,
    /// Tickets left over all ticket types.
    #[diesel(sql_type = BigInt)]
    pub available: i64,
    /// `ts_rank` of the match (0 without `q`); part of the relevance cursor.
    #[diesel(sql_type = Float4)]
    pub rank: f32,
}

impl ListedEvent {
    /// The key the next page starts after, for this sort.
    pub fn search_after(&self, sort: SearchSort) -> SearchAfter {
        match sort {
            SearchSort::StartsAt => SearchAfter::StartsAt {
                starts_at: self.starts_at,
                id: self.id,
            },
            SearchSort::Relevance => SearchAfter::Relevance {
                rank: self.rank,
                id: self.id,
            },
        }
    }
}

// The filters are written once, each one disabled by a NULL bind, so the
// statement text is fixed and every value travels as a bind parameter.
const SEARCH_INNER: &str = "
    SELECT e.id, e.title, e.category, e.starts_at, e.ends_at, e.online, e.currency,
           v.id AS venue_id, v.name AS venue_name, v.city AS venue_city, v.country AS venue_country,
           tt.min_price_minor, COALESCE(tt.available, 0)::bigint AS available,
           CASE WHEN q.query IS NULL THEN 0::real
                ELSE ts_rank(e.search || COALESCE(v.search, ''::tsvector), q.query)
           END AS rank
    FROM events e
    CROSS JOIN (SELECT CASE WHEN $1::text IS NULL THEN NULL
                            ELSE websearch_to_tsquery('english', $1::text) END AS query) q
    LEFT JOIN venues v ON v.id = e.venue_id
    LEFT JOIN LATERAL (
        SELECT min(t.price_minor) AS min_price_minor,
               sum(GREATEST(t.capacity - t.taken - t.waiting_units, 0)) AS available
        FROM ticket_type_rows t WHERE t.event_id = e.id
    ) tt ON true
    WHERE e.status = 'published'
      AND e.ends_at > now()
      AND (q.query IS NULL OR e.search @@ q.query OR v.search @@ q.query)
      AND ($2::text IS NULL OR e.category = $2::text)
      AND ($3::text IS NULL OR lower(v.city) = lower($3::text))
      AND ($4::timestamptz IS NULL OR e.starts_at >= $4::timestamptz)
      AND ($5::timestamptz IS NULL OR e.starts_at < $5::timestamptz)
      AND (($6::bigint IS NULL AND NOT $7::boolean) OR EXISTS (
            SELECT 1 FROM ticket_type_rows t
            WHERE t.event_id = e.id
              AND ($6::bigint IS NULL OR t.price_minor <= $6::bigint)
              AND (NOT $7::boolean OR t.capacity - t.taken - t.waiting_units > 0)))";

const SEARCH_BY_START: &str = "
    SELECT * FROM ({inner}) listed
    WHERE ($8::timestamptz IS NULL OR (listed.starts_at, listed.id) > ($8::timestamptz, $9::uuid))
    ORDER BY listed.starts_at ASC, listed.id ASC
    LIMIT $10";

const SEARCH_BY_RELEVANCE: &str = "
    SELECT * FROM ({inner}) listed
    WHERE ($8::real IS NULL OR listed.rank < $8::real OR (listed.rank = $8::real AND listed.id > $9::uuid))
    ORDER BY listed.rank DESC, listed.id ASC
    LIMIT $10";

/// One page of published, not yet ended events matching `filters`, in `sort`
/// order, starting after `after`. Keyset pagination: rows inserted between two
/// page requests never shift or repeat rows already returned.
pub async fn search_published(
    conn: &mut AsyncPgConnection,
    filters: &SearchFilters,
    sort: SearchSort,
    after: Option<SearchAfter>,
    limit: i64,
) -> QueryResult<Vec<ListedEvent>> {
    let bind_filters = |sql: String| {
        diesel::sql_query(sql)
            .bind::<Nullable<Text>, _>(filters.q.clone())
            .bind::<Nullable<Text>, _>(filters.category.clone())
            .bind::<Nullable<Text>, _>(filters.city.clone())
            .bind::<Nullable<Timestamptz>, _>(filters.from)
            .bind::<Nullable<Timestamptz>, _>(filters.to)
            .bind::<Nullable<BigInt>, _>(filters.price_max)
            .bind::<Bool, _>(filters.available_only)
    };
    match sort {
        SearchSort::StartsAt => {
            let (starts_at, id) = match after {
                Some(SearchAfter::StartsAt { starts_at, id }) => (Some(starts_at), Some(id)),
                _ => (None, None),
            };
            bind_filters(SEARCH_BY_START.replace("{inner}", SEARCH_INNER))
                .bind::<Nullable<Timestamptz>, _>(starts_at)
                .bind::<Nullable<diesel::sql_types::Uuid>, _>(id)
                .bind::<BigInt, _>(limit)
                .load(conn)
                .await
        }
        SearchSort::Relevance => {
            let (rank, id) = match after {
                Some(SearchAfter::Relevance { rank, id }) => (Some(rank), Some(id)),
                _ => (None, None),
            };
            bind_filters(SEARCH_BY_RELEVANCE.replace("{inner}", SEARCH_INNER))
                .bind::<Nullable<Float4>, _>(rank)
                .bind::<Nullable<diesel::sql_types::Uuid>, _>(id)
                .bind::<BigInt, _>(limit)
                .load(conn)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(starts_in_hours: i64) -> Event {
        let now = Utc::now();
        Event {
            id: Uuid::now_v7(),
            organizer_id: Uuid::now_v7(),
            venue_id: None,
            online: false,
            title: "t".into(),
            description: String::new(),
            category: "music".into(),
            currency: Some("EUR".into()),
            starts_at: now + chrono::Duration::hours(starts_in_hours),
            ends_at: now + chrono::Duration::hours(starts_in_hours + 2),
            status: EventStatus::Draft,
            sales_start_at: None,
            sales_end_at: None,
            hold_minutes: 15,
            max_tickets_per_order: 10,
            max_tickets_per_participant: None,
            refundable_until_hours_before: None,
            version: 1,
            waitlist_enabled: true,
            waitlist_offer_minutes: 720,
            published_at: None,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
            reminder_offsets_minutes: vec![1440, 60],
        }
    }

    #[test]
    fn a_complete_future_draft_can_be_published() {
        let mut event = draft(24);
        event.online = true;
        assert!(publish_blockers(&event, 1, Utc::now()).is_empty());
    }

    #[test]
    fn publish_lists_every_unmet_rule() {
        let mut event = draft(-1);
        event.status = EventStatus::Cancelled;
        assert_eq!(
            publish_blockers(&event, 0, Utc::now()),
            vec![
                PublishBlocker::NotDraft(EventStatus::Cancelled),
                PublishBlocker::NoTicketTypes,
                PublishBlocker::StartsInPast,
                PublishBlocker::NoLocation,
            ]
        );
    }

    #[test]
    fn a_venue_is_as_good_as_online() {
        let mut event = draft(24);
        event.venue_id = Some(Uuid::now_v7());
        assert!(publish_blockers(&event, 2, Utc::now()).is_empty());
    }

    #[test]
    fn status_names_round_trip() {
        for status in EventStatus::ALL {
            assert_eq!(EventStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(EventStatus::parse("Draft"), None);
    }
}
