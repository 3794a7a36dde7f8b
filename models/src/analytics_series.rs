//! The analytics time series: an event's sales and refunds in hour or day
//! buckets of the venue's clock, summed from the 15-minute UTC slots the
//! counters keep (live in `analytics_sales_slots`, past in
//! `analytics_sales_history`, refunds in `analytics_refund_slots`).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// `hour` or `day` buckets of the time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

/// One bucket of the time series: sales at their booking's creation, refunds
/// at their success.
#[derive(Debug, Clone, QueryableByName)]
pub struct SeriesBucket {
    /// The bucket's first instant.
    #[diesel(sql_type = Timestamptz)]
    pub start: DateTime<Utc>,
    /// The same instant on the venue's clock.
    #[diesel(sql_type = Timestamp)]
    pub local_start: NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    pub orders: i64,
    #[diesel(sql_type = BigInt)]
    pub tickets: i64,
    #[diesel(sql_type = BigInt)]
    pub paid_minor: i64,
    #[diesel(sql_type = BigInt)]
    pub refunds: i64,
    #[diesel(sql_type = BigInt)]
    pub refunded_minor: i64,
}

/// The event's buckets with activity whose start lies in `[from, to)`, in
/// `timezone`. Bucket starts are computed once per bucket, never per slot (a
/// named zone's conversion is the costly part): the days are the venue's
/// midnights, so a day of 23 or 25 hours is one bucket; the hours step by one
/// absolute hour from the venue's first hour boundary, so the two 02:00 hours
/// of a night that turns the clocks back stay two buckets (every zone in use
/// but Lord Howe Island moves its clocks by whole hours). Each slot then finds
/// its bucket by binary search (`width_bucket`).
pub async fn series(
    mut conn: &AsyncPgConnection,
    event_id: Uuid,
    timezone: &str,
    granularity: Granularity,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> diesel::QueryResult<Vec<SeriesBucket>> {
    let starts = match granularity {
        Granularity::Hour => {
            "SELECT array_agg(s ORDER BY s) AS a
               FROM span, generate_series(lo - ((lo AT TIME ZONE $2) - date_trunc('hour', lo AT TIME ZONE $2)),
                                          hi, interval '1 hour') s"
        }
        Granularity::Day => {
            "SELECT array_agg(d AT TIME ZONE $2 ORDER BY d) AS a
               FROM span, generate_series(date_trunc('day', lo AT TIME ZONE $2), hi AT TIME ZONE $2,
                                          interval '1 day') d"
        }
    };
    diesel::sql_query(format!(
        "WITH raw AS (
              SELECT slot_start, orders, tickets, paid_minor, 0 AS refunds, 0 AS refunded_minor
                FROM analytics_sales_slots
               WHERE event_id = $1
                 AND slot_start >= COALESCE($3, '-infinity'::timestamptz) - interval '2 days'
                 AND slot_start < COALESCE($4, 'infinity'::timestamptz) + interval '2 days'
              UNION ALL
              SELECT slot_start, orders, tickets, paid_minor, 0, 0
                FROM analytics_sales_history
               WHERE event_id = $1
                 AND slot_start >= COALESCE($3, '-infinity'::timestamptz) - interval '2 days'
                 AND slot_start < COALESCE($4, 'infinity'::timestamptz) + interval '2 days'
              UNION ALL
              SELECT slot_start, 0, 0, 0, refunds, refunded_minor
                FROM analytics_refund_slots
               WHERE event_id = $1
                 AND slot_start >= COALESCE($3, '-infinity'::timestamptz) - interval '2 days'
                 AND slot_start < COALESCE($4, 'infinity'::timestamptz) + interval '2 days'
          ), span AS (
              SELECT min(slot_start) AS lo, max(slot_start) AS hi FROM raw
          ), starts AS (
              {starts}
          ), grouped AS (
              SELECT width_bucket(slot_start, a) AS i,
                     sum(orders)::bigint AS orders, sum(tickets)::bigint AS tickets,
                     sum(paid_minor)::bigint AS paid_minor, sum(refunds)::bigint AS refunds,
                     sum(refunded_minor)::bigint AS refunded_minor
                FROM raw, starts GROUP BY 1
          )
          SELECT a[i] AS start, a[i] AT TIME ZONE $2 AS local_start,
                 orders, tickets, paid_minor, refunds, refunded_minor
            FROM grouped, starts
           WHERE a[i] >= COALESCE($3, '-infinity'::timestamptz)
             AND a[i] < COALESCE($4, 'infinity'::timestamptz)
           ORDER BY 1"
    ))
    .bind::<SqlUuid, _>(event_id)
    .bind::<Text, _>(timezone)
    .bind::<Nullable<Timestamptz>, _>(from)
    .bind::<Nullable<Timestamptz>, _>(to)
    .load(&mut conn)
    .await
}

/// The time series a reader asked for.
#[derive(Debug, Clone, Copy)]
pub struct SeriesRequest<'a> {
    /// The venue's time zone (IANA name) the buckets follow.
    pub timezone: &'a str,
    pub granularity: Granularity,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}
