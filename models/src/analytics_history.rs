//! Moving past analytics slots into the sales history.
//!
//! A sale counts itself in one of 16 shard rows of its 15-minute slot in
//! `analytics_sales_slots` (`analytics_shard`), so sales committing together
//! do not wait on one row. Every sale rewrites its row, so that table is
//! sparse on disk. Once a slot is past, nothing writes to it any more, and
//! the cleanup moves it into `analytics_sales_history`, one dense row per
//! slot with its shards summed. Readers add both tables, so every figure is
//! the same before and after; a late write to a moved slot (a sale that
//! committed long after its booking row was created) lands in the live table
//! again and is moved by the next pass.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

/// Slots moved per statement.
const BATCH: i64 = 5_000;

/// Moves every slot that started before `before` into the history, in
/// statements of [`BATCH`] slots; returns how many it moved. When it moved
/// any, it vacuums and analyzes both tables at once (outside any
/// transaction, so call it on a connection that is in none): the moved rows
/// leave the live table dead, and until autovacuum came by, readers would scan
/// its empty pages and plan with its old row counts.
pub async fn move_past(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> diesel::QueryResult<u64> {
    let mut moved = 0u64;
    loop {
        let n = move_past_slots(conn, before, BATCH).await?;
        moved += n as u64;
        if (n as i64) < BATCH {
            break;
        }
    }
    if moved > 0 {
        conn.batch_execute("VACUUM (ANALYZE) analytics_sales_slots, analytics_sales_history")
            .await?;
    }
    Ok(moved)
}

/// Moves at most `limit` slots that started before `before` into the history;
/// returns how many it moved (fewer than `limit`: nothing is left). One
/// statement: the live rows are deleted and their sums added to the history
/// together, so a reader never sees a slot counted twice or not at all.
async fn move_past_slots(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "WITH slots AS (
              SELECT DISTINCT event_id, slot_start, currency
                FROM analytics_sales_slots
               WHERE slot_start < $1
               LIMIT $2
          ), moved AS (
              DELETE FROM analytics_sales_slots s USING slots
               WHERE s.event_id = slots.event_id AND s.slot_start = slots.slot_start
                 AND s.currency = slots.currency
              RETURNING s.event_id, s.slot_start, s.currency, s.orders, s.tickets,
                        s.subtotal_minor, s.discount_minor, s.paid_minor
          )
          INSERT INTO analytics_sales_history AS h
                 (event_id, slot_start, currency, orders, tickets,
                  subtotal_minor, discount_minor, paid_minor)
          SELECT event_id, slot_start, currency, sum(orders), sum(tickets),
                 sum(subtotal_minor), sum(discount_minor), sum(paid_minor)
            FROM moved
           GROUP BY event_id, slot_start, currency
           ORDER BY event_id, slot_start, currency
          ON CONFLICT (event_id, slot_start, currency) DO UPDATE SET
                 orders = h.orders + EXCLUDED.orders,
                 tickets = h.tickets + EXCLUDED.tickets,
                 subtotal_minor = h.subtotal_minor + EXCLUDED.subtotal_minor,
                 discount_minor = h.discount_minor + EXCLUDED.discount_minor,
                 paid_minor = h.paid_minor + EXCLUDED.paid_minor",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await
}
