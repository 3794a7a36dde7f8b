//! The cleanup folds the 16 counter shards of every analytics slot past for an
//! hour into one row, and no figure moves: the event's analytics equal the raw
//! tables before the fold, after it, and after a late sale lands in a folded
//! slot (folded again by the next pass). Slots of the last hour keep their shards.

use boxoffice_models::users::Role;
use boxoffice_workers::jobs::cleanup::{self, Retention};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::exactness::assert_equal_to_raw_tables;
use super::support::{analytics, execute, json_of};
use crate::checkout_support::event_on_sale;
use crate::harness::TestApp;

/// Sales spread over the last two days, one every 7 minutes: most 15-minute
/// slots get two or three, so their shards are several rows.
const SALES: i64 = 400;

/// Writes `n` sales as confirmations write them (a completed checkout run, its
/// booking and tickets), the first `ago_minutes` before now, then one every 7
/// minutes further back.
async fn sell(
    app: &TestApp,
    event_id: Uuid,
    ticket_type: Uuid,
    buyer: Uuid,
    n: i64,
    ago_minutes: i64,
) {
    execute(
        app,
        &format!(
            "CREATE TEMP TABLE sale AS
               SELECT gen_random_uuid() AS run, gen_random_uuid() AS booking,
                      now() - make_interval(mins => ({ago_minutes} + 7 * i)::int) AS at,
                      1 + i % 3 AS tickets
                 FROM generate_series(0, {n} - 1) i;
             INSERT INTO workflow_runs (id, kind, status, step, state, view, created_at, finished_at)
               SELECT run, 'checkout', 'completed', 'completed',
                      jsonb_build_object('event_id', '{event_id}'), '{{}}', at, at FROM sale;
             INSERT INTO bookings (id, run_id, user_id, event_id, currency, subtotal_minor, total_minor, created_at)
               SELECT booking, run, '{buyer}', '{event_id}', 'EUR', tickets * 1000, tickets * 1000, at FROM sale;
             INSERT INTO tickets (id, booking_id, event_id, ticket_type_id, number, qr_payload, created_at, paid_minor)
               SELECT gen_random_uuid(), booking, '{event_id}', '{ticket_type}', md5(random()::text), 'qr', at, 1000
                 FROM sale, generate_series(1, tickets);
             UPDATE ticket_types SET sold = sold + (SELECT sum(tickets) FROM sale) WHERE id = '{ticket_type}';"
        ),
    )
    .await;
}

/// The event's sales counter rows and slots that started an hour or more
/// before `now` (the cleanup's own clock), how many of those slots still have
/// shard rows, and the rows of the last hour.
async fn shape(app: &TestApp, event_id: Uuid, now: DateTime<Utc>) -> serde_json::Value {
    let old = format!(
        "slot_start < '{}'::timestamptz - interval '1 hour'",
        now.to_rfc3339()
    );
    json_of(
        app,
        &format!(
            "SELECT json_build_object(
                 'old_rows', count(*) FILTER (WHERE {old}),
                 'old_slots', count(DISTINCT slot_start) FILTER (WHERE {old}),
                 'old_sharded_slots', count(DISTINCT slot_start) FILTER (WHERE {old} AND shard <> 0),
                 'recent_rows', count(*) FILTER (WHERE NOT {old}))
               FROM analytics_sales_slots WHERE event_id = '{event_id}'"
        ),
    )
    .await
}

fn n(v: &serde_json::Value, key: &str) -> i64 {
    v[key].as_i64().unwrap()
}

#[tokio::test]
async fn folding_past_slots_keeps_every_figure_and_leaves_one_row_per_slot() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, 10_000)], 15).await;
    let (event_id, ticket_type) = (event.event_id, event.ticket_types[0]);
    sell(&app, event_id, ticket_type, buyer.id, SALES, 0).await;
    // One clock for the cleanup and the test's own view of what is past.
    let now = Utc::now();

    let before = shape(&app, event_id, now).await;
    println!("before the fold: {before}");
    assert!(
        n(&before, "old_rows") > n(&before, "old_slots"),
        "the sales must have spread over shards, or there is nothing to fold: {before}"
    );
    assert!(n(&before, "recent_rows") > 0, "{before}");
    let hourly = analytics(&app, &organizer, event_id, "?granularity=hour").await;
    assert_equal_to_raw_tables(&app, event_id, &hourly).await;

    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let removed = cleanup::clean(&mut conn, &Retention::default(), now)
        .await
        .unwrap();
    let after = shape(&app, event_id, now).await;
    println!(
        "after the fold: {after}; folded {} slots",
        removed.analytics_slots
    );
    assert_eq!(
        removed.analytics_slots as i64,
        n(&before, "old_sharded_slots")
    );
    assert_eq!(
        n(&after, "old_rows"),
        n(&before, "old_slots"),
        "one row per past slot: {after}"
    );
    assert_eq!(n(&after, "old_slots"), n(&before, "old_slots"));
    assert_eq!(
        n(&after, "recent_rows"),
        n(&before, "recent_rows"),
        "the last hour keeps its shards"
    );
    assert_eq!(
        analytics(&app, &organizer, event_id, "?granularity=hour").await,
        hourly
    );
    assert_equal_to_raw_tables(&app, event_id, &hourly).await;

    // Late sales land in folded slots (some in shard rows again); the figures
    // count them at once, and the next pass folds them.
    sell(&app, event_id, ticket_type, buyer.id, 8, 24 * 60).await;
    let late = shape(&app, event_id, now).await;
    let with_late = analytics(&app, &organizer, event_id, "?granularity=hour").await;
    assert_ne!(with_late, hourly);
    assert_equal_to_raw_tables(&app, event_id, &with_late).await;
    let again = cleanup::clean(&mut conn, &Retention::default(), now)
        .await
        .unwrap();
    assert_eq!(again.analytics_slots as i64, n(&late, "old_sharded_slots"));
    let refolded = shape(&app, event_id, now).await;
    println!(
        "late sales folded: {refolded}; folded {} slots",
        again.analytics_slots
    );
    assert_eq!(n(&refolded, "old_sharded_slots"), 0, "{refolded}");
    assert_eq!(n(&refolded, "old_rows"), n(&refolded, "old_slots"));
    assert_eq!(
        analytics(&app, &organizer, event_id, "?granularity=hour").await,
        with_late
    );
    assert_equal_to_raw_tables(&app, event_id, &with_late).await;
}
