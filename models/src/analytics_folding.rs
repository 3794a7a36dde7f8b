//! Folding the shards of past analytics slots.
//!
//! A sale counts itself in one of 16 shard rows of its 15-minute slot
//! (`analytics_shard`), so sales committing together do not wait on one row.
//! Once a slot is past, nothing writes to it any more, and its shards are
//! folded into shard 0: an event sold over a month then has one row per slot
//! to read instead of up to sixteen. The sums are unchanged, so every figure
//! is the same before and after; a late write to a folded slot (a sale that
//! committed long after its booking row was created) lands in a shard again
//! and is folded by the next pass.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Folds the shards of at most `limit` slots that started before `before`;
/// returns how many slots it folded (fewer than `limit`: nothing is left).
/// One statement: the shard rows are deleted and their sums added to shard 0
/// together, so a reader never sees a slot counted twice or not at all.
pub async fn fold_past_slots(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "WITH slots AS (
              SELECT DISTINCT event_id, slot_start, currency
                FROM analytics_sales_slots
               WHERE shard <> 0 AND slot_start < $1
               LIMIT $2
          ), folded AS (
              DELETE FROM analytics_sales_slots s USING slots
               WHERE s.event_id = slots.event_id AND s.slot_start = slots.slot_start
                 AND s.currency = slots.currency AND s.shard <> 0
              RETURNING s.event_id, s.slot_start, s.currency, s.orders, s.tickets,
                        s.subtotal_minor, s.discount_minor, s.paid_minor
          )
          INSERT INTO analytics_sales_slots AS s
                 (event_id, slot_start, currency, shard, orders, tickets,
                  subtotal_minor, discount_minor, paid_minor)
          SELECT event_id, slot_start, currency, 0, sum(orders), sum(tickets),
                 sum(subtotal_minor), sum(discount_minor), sum(paid_minor)
            FROM folded
           GROUP BY event_id, slot_start, currency
          ON CONFLICT (event_id, slot_start, currency, shard) DO UPDATE SET
                 orders = s.orders + EXCLUDED.orders,
                 tickets = s.tickets + EXCLUDED.tickets,
                 subtotal_minor = s.subtotal_minor + EXCLUDED.subtotal_minor,
                 discount_minor = s.discount_minor + EXCLUDED.discount_minor,
                 paid_minor = s.paid_minor + EXCLUDED.paid_minor",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await
}
