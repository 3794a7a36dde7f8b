//! `notifications`: outgoing email, decided in the caller's transaction and
//! sent later by the `send_email` job.
//!
//! [`enqueue`] writes the notification and its `send_email` outbox message in
//! one transaction, keyed by a dedupe key (e.g. `booking:<id>:confirmation`):
//! a step that runs again finds the key taken and queues nothing, so one
//! decision is one email.
//!
//! Sending is at least once. The job locks the row ([`claim_for_sending`]),
//! sends, and marks it sent ([`mark_sent`]) in the same transaction; a crash
//! after the SMTP server accepted the message but before that commit sends it
//! again on retry. The message's `Message-ID` is derived from the
//! notification id, so such a resend is recognisable downstream.
//!
//! A job lost on the way (Redis restarted empty after the outbox relayed it)
//! is made good by the sweep: [`requeue_stalled`] queues a pending
//! notification again once it has not been touched for the stalled threshold.
//! Extra jobs for one notification are harmless: the row lock and its status
//! let only one of them send.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::outbox;
use crate::prepared::KeepPrepared;
use crate::schema::notifications;

/// The job queue that sends notifications (the `send_email` job's name).
pub const SEND_EMAIL_QUEUE: &str = "send_email";

/// The `send_email` job's arguments, as the outbox carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    pub notification_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = notifications, check_for_backend(diesel::pg::Pg))]
pub struct Notification {
    pub id: Uuid,
    pub dedupe_key: String,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    /// `pending`, `sent` or `failed` (gave up; `last_error` says why).
    pub status: String,
    /// Failed send attempts so far.
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was last queued (at creation, or again by the sweep) or tried.
    pub updated_at: DateTime<Utc>,
    /// The participant it is for; `None` for an address with no account.
    pub user_id: Option<Uuid>,
    /// What the renderer builds the email from (ids), by kind.
    pub context: serde_json::Value,
    /// When its participant marked it read in their notifications.
    pub read_at: Option<DateTime<Utc>>,
}

/// A notification to send once per `dedupe_key`.
#[derive(Debug, Clone, Copy)]
pub struct NewNotification<'a> {
    /// One email per key, ever: e.g. `booking:<id>:confirmation`.
    pub dedupe_key: &'a str,
    /// What it is about (`booking_confirmation`, `reminder_24h`…), for operators.
    pub kind: &'a str,
    pub recipient: Recipient<'a>,
    pub subject: &'a str,
    pub body_text: &'a str,
    /// The participant it is for (their notifications list, their
    /// preferences); `None` for an address with no account.
    pub user_id: Option<Uuid>,
    /// What the renderer needs at sending time, by kind: e.g.
    /// `{"event_id": …, "booking_id": …}`. `{}` when the text is the email.
    pub context: &'a serde_json::Value,
}

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient<'a> {
    /// This address.
    Address(&'a str),
    /// The account's email address as it is when the notification is
    /// recorded, read by the insert itself (one statement, not a read and
    /// then an insert). The account is the notification's `user_id`.
    Account,
}

// `user_id: None` is bound as NULL (the column's default), so that the insert
// has one text: it is kept prepared (`crate::prepared`).
#[derive(Insertable)]
#[diesel(table_name = notifications, treat_none_as_default_value = false)]
struct NewRow<'a> {
    id: Uuid,
    dedupe_key: &'a str,
    kind: &'a str,
    recipient: &'a str,
    subject: &'a str,
    body_text: &'a str,
    user_id: Option<Uuid>,
    context: &'a serde_json::Value,
}

/// Records a notification and queues its `send_email` job, unless one with the
/// same dedupe key exists. Returns the new id, or `None` for a duplicate.
///
/// Runs in the caller's transaction (a savepoint) when there is one, in its
/// own otherwise: the row and its outbox message commit together or not at all.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    new: NewNotification<'_>,
) -> QueryResult<Option<Uuid>> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| enqueue_within(conn, new).await)
        .await
}

/// [`enqueue`] inside a transaction the caller has open (a workflow's step):
/// that transaction makes the row and its message commit together, so no
/// savepoint is taken, which would cost the step two more statements.
///
/// For [`Recipient::Account`], `new.user_id` must name an existing account:
/// `NotFound` otherwise (a notification with no address is never recorded).
pub async fn enqueue_within(
    conn: &mut AsyncPgConnection,
    new: NewNotification<'_>,
) -> QueryResult<Option<Uuid>> {
    let inserted = match (new.recipient, new.user_id) {
        (Recipient::Address(address), _) => insert_to_address(conn, new, address).await?,
        (Recipient::Account, Some(user_id)) => {
            let inserted = insert_to_account(conn, new, user_id).await?;
            // Nothing inserted: the key was taken (a step that ran before),
            // or there is no such account. Only a replay pays this look.
            if inserted.is_none() && !dedupe_key_taken(conn, new.dedupe_key).await? {
                return Err(diesel::result::Error::NotFound);
            }
            inserted
        }
        (Recipient::Account, None) => return Err(diesel::result::Error::NotFound),
    };
    if let Some(notification_id) = inserted {
        outbox::push(conn, SEND_EMAIL_QUEUE, &SendEmail { notification_id }, None).await?;
    }
    Ok(inserted)
}

async fn insert_to_address(
    conn: &mut AsyncPgConnection,
    new: NewNotification<'_>,
    address: &str,
) -> QueryResult<Option<Uuid>> {
    diesel::insert_into(notifications::table)
        .values(NewRow {
            id: Uuid::now_v7(),
            dedupe_key: new.dedupe_key,
            kind: new.kind,
            recipient: address,
            subject: new.subject,
            body_text: new.body_text,
            user_id: new.user_id,
            context: new.context,
        })
        .on_conflict(notifications::dedupe_key)
        .do_nothing()
        .returning(notifications::id)
        .keep_prepared()
        .get_result::<Uuid>(conn)
        .await
        .optional()
}

/// `INSERT ... SELECT` from the account's row: no row when there is no such
/// account or the dedupe key is taken.
async fn insert_to_account(
    conn: &mut AsyncPgConnection,
    new: NewNotification<'_>,
    user_id: Uuid,
) -> QueryResult<Option<Uuid>> {
    use diesel::sql_types::{Jsonb, Text, Uuid as SqlUuid};

    use crate::schema::users;
    let row = users::table.filter(users::id.eq(user_id)).select((
        Uuid::now_v7().into_sql::<SqlUuid>(),
        new.dedupe_key.into_sql::<Text>(),
        new.kind.into_sql::<Text>(),
        users::email,
        new.subject.into_sql::<Text>(),
        new.body_text.into_sql::<Text>(),
        users::id.nullable(),
        new.context.into_sql::<Jsonb>(),
    ));
    diesel::insert_into(notifications::table)
        .values(row)
        .into_columns((
            notifications::id,
            notifications::dedupe_key,
            notifications::kind,
            notifications::recipient,
            notifications::subject,
            notifications::body_text,
            notifications::user_id,
            notifications::context,
        ))
        .on_conflict(notifications::dedupe_key)
        .do_nothing()
        .returning(notifications::id)
        .keep_prepared()
        .get_result::<Uuid>(conn)
        .await
        .optional()
}

async fn dedupe_key_taken(conn: &mut AsyncPgConnection, key: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        notifications::table.filter(notifications::dedupe_key.eq(key)),
    ))
    .get_result(conn)
    .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Notification>> {
    notifications::table
        .find(id)
        .select(Notification::as_select())
        .first(conn)
        .await
        .optional()
}

/// What the sender found when it went for a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Pending and now locked by this transaction: send it.
    Ready(Notification),
    /// Sent or given up on already: a duplicate job, nothing to do.
    Done(Notification),
    /// Another sender holds it right now; that one will finish or retry.
    Busy,
    /// No such notification.
    Missing,
}

/// Locks a notification for sending. Call inside a transaction and keep it open
/// until [`mark_sent`] or [`mark_attempt_failed`]: the row lock is what keeps two
/// deliveries of the same job from both sending.
pub async fn claim_for_sending(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Claim> {
    let locked = notifications::table
        .find(id)
        .for_update()
        .skip_locked()
        .select(Notification::as_select())
        .first(conn)
        .await
        .optional()?;
    match locked {
        Some(n) if n.status == "pending" => Ok(Claim::Ready(n)),
        Some(n) => Ok(Claim::Done(n)),
        // Skipped (locked) or absent: one cheap look tells which.
        None => Ok(match find(conn, id).await? {
            Some(_) => Claim::Busy,
            None => Claim::Missing,
        }),
    }
}

pub async fn mark_sent(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(notifications::table.find(id))
        .set((
            notifications::status.eq("sent"),
            notifications::sent_at.eq(diesel::dsl::now),
            notifications::last_error.eq(None::<String>),
            notifications::updated_at.eq(diesel::dsl::now),
        ))
        .keep_prepared()
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a failed attempt; with `give_up` the notification becomes `failed`
/// and is never tried again. Returns the attempts so far.
pub async fn mark_attempt_failed(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    error: &str,
    give_up: bool,
) -> QueryResult<i32> {
    let status = if give_up { "failed" } else { "pending" };
    diesel::update(
        notifications::table
            .find(id)
            .filter(notifications::status.eq("pending")),
    )
    .set((
        notifications::attempts.eq(notifications::attempts + 1),
        notifications::last_error.eq(error),
        notifications::status.eq(status),
        notifications::updated_at.eq(diesel::dsl::now),
    ))
    .returning(notifications::attempts)
    .get_result(conn)
    .await
}

/// Queues a `send_email` message again for up to `limit` pending notifications
/// not touched since `before` and with no message waiting in the outbox: their
/// job was lost after the relay (or died in Redis). Each one's `updated_at` is
/// moved to now, so it is queued again at most once per threshold even when
/// its job is only slow (a long queue), and a notification being sent right now
/// (its row locked by the sender) is skipped. Returns how many were queued.
pub async fn requeue_stalled(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    use diesel::sql_types::{BigInt, Text, Timestamptz};
    diesel::sql_query(
        "WITH stalled AS (
             SELECT n.id FROM notifications n
              WHERE n.status = 'pending' AND n.updated_at < $1
                AND NOT EXISTS (SELECT 1 FROM outbox o
                                 WHERE o.queue = $3 AND o.payload->>'notification_id' = n.id::text)
              ORDER BY n.updated_at
              LIMIT $2
                FOR UPDATE SKIP LOCKED
         ), touched AS (
             UPDATE notifications SET updated_at = now()
              WHERE id IN (SELECT id FROM stalled)
             RETURNING id
         )
         INSERT INTO outbox (queue, payload, available_at)
         SELECT $3, jsonb_build_object('notification_id', id), now() FROM touched",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .bind::<Text, _>(SEND_EMAIL_QUEUE)
    .execute(conn)
    .await
}

/// Up to `limit` of `user_id`'s notifications, newest first, older than the
/// notification `before` when given. Ids are UUIDv7, so id order is time order
/// (and the `(user_id, id DESC)` index serves the page).
pub async fn list_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Notification>> {
    let mut query = notifications::table
        .filter(notifications::user_id.eq(user_id))
        .order(notifications::id.desc())
        .limit(limit)
        .select(Notification::as_select())
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(notifications::id.lt(before));
    }
    query.load(conn).await
}

/// Marks `user_id`'s notification `id` read (the first reading counts) and
/// returns it; `None` when it is not theirs or does not exist.
pub async fn mark_read(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Notification>> {
    diesel::update(
        notifications::table
            .find(id)
            .filter(notifications::user_id.eq(user_id)),
    )
    .set(notifications::read_at.eq(diesel::dsl::sql::<
        diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    >("coalesce(read_at, now())")))
    .returning(Notification::as_returning())
    .get_result(conn)
    .await
    .optional()
}
