//! `bookings`: what a completed checkout sold.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::prepared::KeepPrepared;
use crate::schema::{bookings, events};

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = bookings, check_for_backend(diesel::pg::Pg))]
pub struct Booking {
    pub id: Uuid,
    pub run_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub status: String,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
    pub coupon_id: Option<Uuid>,
    pub payment_intent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// `None` is bound as NULL (the columns' default), so that the insert has one
// text: it is kept prepared (`crate::prepared`).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = bookings, treat_none_as_default_value = false)]
pub struct NewBooking {
    pub id: Uuid,
    pub run_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
    pub coupon_id: Option<Uuid>,
    pub payment_intent_id: Option<String>,
}

/// Creates the run's booking; a second call for the same run returns the first.
pub async fn create_for_run(
    conn: &mut AsyncPgConnection,
    new: &NewBooking,
) -> QueryResult<(Booking, bool)> {
    let created = diesel::insert_into(bookings::table)
        .values(new)
        .on_conflict(bookings::run_id)
        .do_nothing()
        .returning(Booking::as_returning())
        .keep_prepared()
        .get_result(conn)
        .await
        .optional()?;
    match created {
        Some(b) => Ok((b, true)),
        None => {
            let existing = bookings::table
                .filter(bookings::run_id.eq(new.run_id))
                .select(Booking::as_select())
                .first(conn)
                .await?;
            Ok((existing, false))
        }
    }
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Booking>> {
    bookings::table
        .find(id)
        .select(Booking::as_select())
        .first(conn)
        .await
        .optional()
}

/// The booking and the organizer of its event (for access checks).
pub async fn find_with_organizer(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<(Booking, Uuid)>> {
    bookings::table
        .inner_join(events::table)
        .filter(bookings::id.eq(id))
        .select((Booking::as_select(), events::organizer_id))
        .first(conn)
        .await
        .optional()
}

/// A user's bookings, newest first, keyset-paginated on (created_at, id).
pub async fn list_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<Booking>> {
    let mut q = bookings::table
        .filter(bookings::user_id.eq(user_id))
        .order((bookings::created_at.desc(), bookings::id.desc()))
        .limit(limit)
        .select(Booking::as_select())
        .into_boxed();
    if let Some((at, id)) = before {
        q = q.filter(
            bookings::created_at
                .lt(at)
                .or(bookings::created_at.eq(at).and(bookings::id.lt(id))),
        );
    }
    q.load(conn).await
}
