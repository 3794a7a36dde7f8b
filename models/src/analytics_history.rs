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
/// its empty pages and plan with its old row counts. Then it rebuilds the
/// live table's indexes ([`rebuild_live_indexes`]).
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
        // The slots are moved and every figure is right whatever comes of
        // this: a failure costs readers speed, not truth, and the next pass
        // tries again.
        if let Err(e) = rebuild_live_indexes(conn).await {
            tracing::warn!(error = %e, "could not rebuild the live analytics slots' indexes");
        }
    }
    Ok(moved)
}

/// Rebuilds the live slots' indexes without blocking sales (`REINDEX
/// CONCURRENTLY`). Vacuum frees the moved rows' index entries but not the
/// index's pages, and PostgreSQL prices an index scan by the index's pages
/// per row: after a large move (the first after an upgrade, or after the
/// cleanup was down for a while) the primary key of a table left with a few
/// dozen rows still has the pages of the tens of thousands it held, and the
/// planner read every live row of every event (a sequential scan) for one
/// event's figures. Hourly moves of a few slots per event keep the indexes
/// small, so the rebuild is cheap. A rebuild that failed half way (its lock
/// wait timed out) leaves an invalid copy behind; it is dropped first.
async fn rebuild_live_indexes(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    #[derive(diesel::QueryableByName)]
    struct Leftover {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let leftovers: Vec<Leftover> = diesel::sql_query(
        "SELECT i.relname::text AS name
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
          WHERE x.indrelid = 'analytics_sales_slots'::regclass AND NOT x.indisvalid",
    )
    .load(conn)
    .await?;
    for leftover in leftovers {
        // A name PostgreSQL gave it; quoted all the same.
        let name = leftover.name.replace('"', "\"\"");
        conn.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS \"{name}\""))
            .await?;
    }
    conn.batch_execute("REINDEX TABLE CONCURRENTLY analytics_sales_slots")
        .await
}

/// Moves at most `limit` slots that started before `before` into the history;
/// returns how many it moved (fewer than `limit`: nothing is left). One
/// statement: the live rows are deleted and their sums added to the history
/// and to its per-event totals together, so a reader never sees a slot
/// counted twice or not at all.
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
          ), totals AS (
              INSERT INTO analytics_sales_history_totals AS t
                     (event_id, currency, orders, tickets, subtotal_minor, discount_minor, paid_minor)
              SELECT event_id, currency, sum(orders), sum(tickets),
                     sum(subtotal_minor), sum(discount_minor), sum(paid_minor)
                FROM moved
               GROUP BY event_id, currency
               ORDER BY event_id, currency
              ON CONFLICT (event_id, currency) DO UPDATE SET
                     orders = t.orders + EXCLUDED.orders,
                     tickets = t.tickets + EXCLUDED.tickets,
                     subtotal_minor = t.subtotal_minor + EXCLUDED.subtotal_minor,
                     discount_minor = t.discount_minor + EXCLUDED.discount_minor,
                     paid_minor = t.paid_minor + EXCLUDED.paid_minor
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
