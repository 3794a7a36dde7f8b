//! `event_reminders` and `organizer_messages`: the mailings of an event, and
//! who receives them.
//!
//! A reminder goes to each booking of the event that is `confirmed` or
//! `partially_refunded` and still has a valid ticket; an organizer message to
//! each participant holding a valid ticket. Both are taken in id order,
//! `limit` at a time after a cursor, so a fan-out can stop and resume anywhere.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{event_reminders, organizer_messages};

/// Bookings that count for a reminder or a message.
const LIVE_BOOKING: &str = "b.status IN ('confirmed', 'partially_refunded') \
     AND EXISTS (SELECT 1 FROM tickets t WHERE t.booking_id = b.id AND t.status = 'valid')";

/// One recipient of a batch: the booking (reminders) or the participant
/// (messages) it is keyed by, and whether they want this kind of email.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Recipient {
    /// The booking id for a reminder, the participant's id for a message.
    #[diesel(sql_type = SqlUuid)]
    pub key: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Bool)]
    pub wants: bool,
}

/// The next bookings to remind, after `after` in id order.
pub async fn reminder_batch(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Recipient>> {
    diesel::sql_query(format!(
        "SELECT b.id AS key, b.user_id, u.email, u.notify_reminders AS wants \
           FROM bookings b JOIN users u ON u.id = b.user_id \
          WHERE b.event_id = $1 AND ($2::uuid IS NULL OR b.id > $2) AND {LIVE_BOOKING} \
          ORDER BY b.id LIMIT $3"
    ))
    .bind::<SqlUuid, _>(event_id)
    .bind::<Nullable<SqlUuid>, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// The next ticket holders to message, after `after` in id order.
pub async fn holder_batch(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Recipient>> {
    diesel::sql_query(format!(
        "SELECT u.id AS key, u.id AS user_id, u.email, u.notify_messages AS wants \
           FROM users u \
          WHERE u.id IN (SELECT DISTINCT b.user_id FROM bookings b \
                          WHERE b.event_id = $1 AND ($2::uuid IS NULL OR b.user_id > $2) \
                            AND {LIVE_BOOKING} \
                          ORDER BY b.user_id LIMIT $3) \
          ORDER BY u.id"
    ))
    .bind::<SqlUuid, _>(event_id)
    .bind::<Nullable<SqlUuid>, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// A reminder to plan: a published event starting in the future, one of
/// whose offsets has no run yet.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct MissingReminder {
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Int4)]
    pub offset_minutes: i32,
    #[diesel(sql_type = Timestamptz)]
    pub starts_at: DateTime<Utc>,
    #[diesel(sql_type = SqlUuid)]
    pub organizer_id: Uuid,
}

/// Up to `limit` (event, offset) pairs of published events without their
/// reminder run, due by `until`, whose event has not started and was
/// published before the reminder's time. A reminder whose time passed
/// while Boxoffice was down is so still planned (and sent late); one whose
/// time had passed when the event was published was never owed.
pub async fn missing(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<MissingReminder>> {
    diesel::sql_query(
        "SELECT e.id AS event_id, o.offset_minutes, e.starts_at, e.organizer_id \
           FROM events e CROSS JOIN LATERAL unnest(e.reminder_offsets_minutes) AS o(offset_minutes) \
          WHERE e.status = 'published' \
            AND e.starts_at > $1 \
            AND e.starts_at - make_interval(mins => o.offset_minutes) \
                > coalesce(e.published_at, e.created_at) \
            AND e.starts_at - make_interval(mins => o.offset_minutes) <= $3 \
            AND NOT EXISTS (SELECT 1 FROM event_reminders r \
                             WHERE r.event_id = e.id AND r.offset_minutes = o.offset_minutes) \
          ORDER BY e.starts_at LIMIT $2",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(limit)
    .bind::<Timestamptz, _>(until)
    .load(conn)
    .await
}

/// Sets the offsets of an event just created (in its creating transaction:
/// not a change, so its version stays).
pub async fn set_offsets(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    offsets: &[i32],
) -> QueryResult<crate::events::Event> {
    use crate::schema::events;
    diesel::update(events::table.find(event_id))
        .set(events::reminder_offsets_minutes.eq(offsets.to_vec()))
        .returning(crate::events::Event::as_returning())
        .get_result(conn)
        .await
}

/// An event as the planner sees it, read under a share lock so that planning
/// is ordered with a change of its time or offsets (which signals the runs it
/// finds, so it must find the one planned here).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PlannedEvent {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Timestamptz)]
    pub starts_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Array<Int4>)]
    pub offsets: Vec<i32>,
}

pub async fn lock_for_planning(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> QueryResult<Option<PlannedEvent>> {
    diesel::sql_query(
        "SELECT status, starts_at, reminder_offsets_minutes AS offsets \
           FROM events WHERE id = $1 FOR SHARE",
    )
    .bind::<SqlUuid, _>(event_id)
    .get_result(conn)
    .await
    .optional()
}

/// Claims (event, offset) for `run_id`, to be created in the same
/// transaction (the reference is checked at commit); false when another
/// planner has it.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    offset_minutes: i32,
    run_id: Uuid,
) -> QueryResult<bool> {
    let n = diesel::insert_into(event_reminders::table)
        .values((
            event_reminders::event_id.eq(event_id),
            event_reminders::offset_minutes.eq(offset_minutes),
            event_reminders::run_id.eq(run_id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// The reminder runs of an event not finished yet, with their offsets.
pub async fn open_runs(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> QueryResult<Vec<(i32, Uuid)>> {
    use crate::schema::workflow_runs;
    event_reminders::table
        .inner_join(workflow_runs::table.on(workflow_runs::id.eq(event_reminders::run_id)))
        .filter(event_reminders::event_id.eq(event_id))
        .filter(workflow_runs::status.eq_any(["running", "waiting", "compensating"]))
        .select((event_reminders::offset_minutes, event_reminders::run_id))
        .load(conn)
        .await
}

/// Forgets the reminders of offsets taken off the event (so that putting an
/// offset back plans it again).
pub async fn forget_all_but(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    keep: &[i32],
) -> QueryResult<usize> {
    diesel::delete(
        event_reminders::table
            .filter(event_reminders::event_id.eq(event_id))
            .filter(diesel::dsl::not(
                event_reminders::offset_minutes.eq_any(keep.to_vec()),
            )),
    )
    .execute(conn)
    .await
}

/// The runs of an event's organizer messages not finished yet.
pub async fn open_message_runs(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> QueryResult<Vec<Uuid>> {
    use crate::schema::workflow_runs;
    organizer_messages::table
        .inner_join(workflow_runs::table.on(workflow_runs::id.eq(organizer_messages::run_id)))
        .filter(organizer_messages::event_id.eq(event_id))
        .filter(workflow_runs::status.eq_any(["running", "waiting", "compensating"]))
        .select(organizer_messages::run_id)
        .load(conn)
        .await
}

/// The message started by `run_id` (a retried request finds its message).
pub async fn message_of_run(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
) -> QueryResult<Option<Message>> {
    organizer_messages::table
        .filter(organizer_messages::run_id.eq(run_id))
        .select(Message::as_select())
        .first(conn)
        .await
        .optional()
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = organizer_messages, check_for_backend(diesel::pg::Pg))]
pub struct Message {
    pub id: Uuid,
    pub event_id: Uuid,
    pub author_id: Uuid,
    pub subject: String,
    pub body: String,
    pub send_at: DateTime<Utc>,
    pub run_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = organizer_messages)]
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub event_id: Uuid,
    pub author_id: Uuid,
    pub subject: &'a str,
    pub body: &'a str,
    pub send_at: DateTime<Utc>,
    pub run_id: Uuid,
}

pub async fn insert_message(
    conn: &mut AsyncPgConnection,
    new: &NewMessage<'_>,
) -> QueryResult<Message> {
    diesel::insert_into(organizer_messages::table)
        .values(new)
        .returning(Message::as_returning())
        .get_result(conn)
        .await
}

pub async fn find_message(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Message>> {
    organizer_messages::table
        .find(id)
        .select(Message::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks a message of `event_id` (withdrawing one serialises with its run).
pub async fn lock_message(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Message>> {
    organizer_messages::table
        .find(id)
        .filter(organizer_messages::event_id.eq(event_id))
        .select(Message::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

pub async fn mark_withdrawn(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(organizer_messages::table.find(id))
        .set(organizer_messages::cancelled_at.eq(Some(now)))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A message with its progress: its run's state and its notifications.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct MessageProgress {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Text)]
    pub body: String,
    #[diesel(sql_type = Timestamptz)]
    pub send_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub cancelled_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = SqlUuid)]
    pub run_id: Uuid,
    #[diesel(sql_type = Text)]
    pub run_status: String,
    #[diesel(sql_type = Text)]
    pub run_step: String,
    /// Emails queued so far (recipients reached by the fan-out).
    #[diesel(sql_type = BigInt)]
    pub queued: i64,
    #[diesel(sql_type = BigInt)]
    pub opted_out: i64,
    #[diesel(sql_type = BigInt)]
    pub sent: i64,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
}

/// The messages of an event, newest first, with their progress.
pub async fn list_with_progress(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> QueryResult<Vec<MessageProgress>> {
    diesel::sql_query(
        "SELECT m.id, m.subject, m.body, m.send_at, m.created_at, m.cancelled_at, m.run_id, \
                r.status AS run_status, r.step AS run_step, \
                coalesce((r.state->>'queued')::bigint, 0) AS queued, \
                coalesce((r.state->>'opted_out')::bigint, 0) AS opted_out, \
                n.sent, n.failed \
           FROM organizer_messages m JOIN workflow_runs r ON r.id = m.run_id \
           CROSS JOIN LATERAL ( \
                SELECT count(*) FILTER (WHERE status = 'sent') AS sent, \
                       count(*) FILTER (WHERE status = 'failed') AS failed \
                  FROM notifications \
                 WHERE kind = 'organizer_message' AND context->>'message_id' = m.id::text) n \
          WHERE m.event_id = $1 \
          ORDER BY m.created_at DESC, m.id DESC",
    )
    .bind::<SqlUuid, _>(event_id)
    .load(conn)
    .await
}
