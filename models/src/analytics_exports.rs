//! The organizer's exports: an event's tickets (attendees) and orders, one
//! page at a time in id order (keyset paging on `(event_id, id)`), so an export
//! of any size holds one page in memory.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// One ticket and who holds it.
#[derive(Debug, Clone, QueryableByName)]
pub struct AttendeeRow {
    #[diesel(sql_type = SqlUuid)]
    pub ticket_id: Uuid,
    #[diesel(sql_type = Text)]
    pub number: String,
    #[diesel(sql_type = Text)]
    pub ticket_type: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub holder_name: String,
    #[diesel(sql_type = Text)]
    pub holder_email: String,
    #[diesel(sql_type = SqlUuid)]
    pub booking_id: Uuid,
    #[diesel(sql_type = BigInt)]
    pub paid_minor: i64,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub checked_in_at: Option<DateTime<Utc>>,
}

/// The event's tickets after `after` (start with [`Uuid::nil`]), `limit` of them.
pub async fn attendees_page(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    after: Uuid,
    limit: i64,
) -> diesel::QueryResult<Vec<AttendeeRow>> {
    diesel::sql_query(
        "SELECT t.id AS ticket_id, t.number, tt.name AS ticket_type, t.status,
                u.display_name AS holder_name, u.email AS holder_email, t.booking_id,
                t.paid_minor, b.currency, t.checked_in_at
           FROM tickets t
           JOIN ticket_types tt ON tt.id = t.ticket_type_id
           JOIN bookings b ON b.id = t.booking_id
           JOIN users u ON u.id = b.user_id
          WHERE t.event_id = $1 AND t.id > $2
          ORDER BY t.id
          LIMIT $3",
    )
    .bind::<SqlUuid, _>(event_id)
    .bind::<SqlUuid, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// One order (booking) and its money.
#[derive(Debug, Clone, QueryableByName)]
pub struct OrderRow {
    #[diesel(sql_type = SqlUuid)]
    pub booking_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub buyer_name: String,
    #[diesel(sql_type = Text)]
    pub buyer_email: String,
    #[diesel(sql_type = BigInt)]
    pub tickets: i64,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub subtotal_minor: i64,
    #[diesel(sql_type = BigInt)]
    pub discount_minor: i64,
    #[diesel(sql_type = BigInt)]
    pub total_minor: i64,
    /// Given back or being given back.
    #[diesel(sql_type = BigInt)]
    pub refunded_minor: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub coupon_code: Option<String>,
}

/// The event's orders after `after` (start with [`Uuid::nil`]), `limit` of them.
pub async fn orders_page(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    after: Uuid,
    limit: i64,
) -> diesel::QueryResult<Vec<OrderRow>> {
    diesel::sql_query(
        "SELECT b.id AS booking_id, b.created_at, b.status, u.display_name AS buyer_name,
                u.email AS buyer_email,
                (SELECT count(*) FROM tickets t WHERE t.booking_id = b.id) AS tickets,
                b.currency, b.subtotal_minor, b.discount_minor, b.total_minor, b.refunded_minor,
                c.code AS coupon_code
           FROM bookings b
           JOIN users u ON u.id = b.user_id
           LEFT JOIN coupons c ON c.id = b.coupon_id
          WHERE b.event_id = $1 AND b.id > $2
          ORDER BY b.id
          LIMIT $3",
    )
    .bind::<SqlUuid, _>(event_id)
    .bind::<SqlUuid, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}
