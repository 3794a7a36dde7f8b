//! The cleanup moves every analytics slot past for an hour from its 16 live
//! counter shards into one history row, and no figure moves: the event's
//! analytics equal the raw tables before the move, after it, and after late
//! sales land in moved slots (moved again by the next pass). Slots of the last
//! hour stay live.

use boxoffice_models::users::Role;
use boxoffice_workers::jobs::cleanup::{self, Retention};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::exactness::assert_equal_to_raw_tables;
use super::support::{analytics, execute, json_of};
use crate::checkout_support::event_on_sale;
use crate::harness::{TestApp, counts_moved_sql};

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
             {};",
            counts_moved_sql(ticket_type, "(SELECT sum(tickets) FROM sale)", 0)
        ),
    )
    .await;
}

/// The event's live sales counter rows that started an hour or more before
/// `now` (the cleanup's own clock) and their slots, its history rows, and its
/// live rows of the last hour; what the history rows were paid, and what the
/// history's per-event total says they were.
async fn shape(app: &TestApp, event_id: Uuid, now: DateTime<Utc>) -> serde_json::Value {
    let old = format!(
        "slot_start < '{}'::timestamptz - interval '1 hour'",
        now.to_rfc3339()
    );
    json_of(
        app,
        &format!(
            "SELECT json_build_object(
                 'old_live_rows', count(*) FILTER (WHERE {old}),
                 'old_live_slots', count(DISTINCT slot_start) FILTER (WHERE {old}),
                 'recent_rows', count(*) FILTER (WHERE NOT {old}),
                 'history_rows', (SELECT count(*) FROM analytics_sales_history WHERE event_id = '{event_id}'),
                 'history_paid', (SELECT COALESCE(sum(paid_minor), 0) FROM analytics_sales_history
                                   WHERE event_id = '{event_id}'),
                 'history_total_paid', (SELECT COALESCE(sum(paid_minor), 0)
                                          FROM analytics_sales_history_totals WHERE event_id = '{event_id}'))
               FROM analytics_sales_slots WHERE event_id = '{event_id}'"
        ),
    )
    .await
}

/// The live slots' primary key as it stands: a rebuild makes a new index.
async fn live_index_oid(app: &TestApp) -> i64 {
    let v = json_of(
        app,
        "SELECT json_build_object('oid', 'analytics_sales_slots_pkey'::regclass::oid::bigint)",
    )
    .await;
    n(&v, "oid")
}

fn n(v: &serde_json::Value, key: &str) -> i64 {
    v[key].as_i64().unwrap()
}

#[tokio::test]
async fn past_slots_move_to_one_history_row_each_and_every_figure_stays() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, 10_000)], 15).await;
    let (event_id, ticket_type) = (event.event_id, event.ticket_types[0]);
    sell(&app, event_id, ticket_type, buyer.id, SALES, 0).await;
    // One clock for the cleanup and the test's own view of what is past.
    let now = Utc::now();

    let before = shape(&app, event_id, now).await;
    println!("before the cleanup: {before}");
    assert!(
        n(&before, "old_live_rows") > n(&before, "old_live_slots"),
        "the sales must have spread over shards: {before}"
    );
    assert_eq!(n(&before, "history_rows"), 0, "{before}");
    assert!(n(&before, "recent_rows") > 0, "{before}");
    let hourly = analytics(&app, &organizer, event_id, "?granularity=hour").await;
    assert_equal_to_raw_tables(&app, event_id, &hourly).await;

    let index_before = live_index_oid(&app).await;
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let removed = cleanup::clean(&mut conn, &Retention::default(), now)
        .await
        .unwrap();
    assert_ne!(
        live_index_oid(&app).await,
        index_before,
        "the move rebuilds the live slots' primary key"
    );
    let after = shape(&app, event_id, now).await;
    println!("after it: {after}; moved {} slots", removed.analytics_slots);
    assert_eq!(removed.analytics_slots as i64, n(&before, "old_live_slots"));
    assert_eq!(n(&after, "old_live_rows"), 0, "{after}");
    assert_eq!(
        n(&after, "history_rows"),
        n(&before, "old_live_slots"),
        "one history row per past slot"
    );
    assert_eq!(
        n(&after, "recent_rows"),
        n(&before, "recent_rows"),
        "the last hour stays live"
    );
    assert!(n(&after, "history_paid") > 0, "{after}");
    assert_eq!(
        n(&after, "history_total_paid"),
        n(&after, "history_paid"),
        "the history's total is its rows' sum"
    );
    assert_eq!(
        analytics(&app, &organizer, event_id, "?granularity=hour").await,
        hourly
    );
    assert_equal_to_raw_tables(&app, event_id, &hourly).await;

    // Late sales land in moved slots (one every 7 minutes left no slot of the
    // last two days without a sale, so each has its history row): the figures
    // count them at once, and the next pass adds them to the history.
    sell(&app, event_id, ticket_type, buyer.id, 8, 24 * 60).await;
    let late = shape(&app, event_id, now).await;
    assert!(n(&late, "old_live_slots") > 0, "{late}");
    let with_late = analytics(&app, &organizer, event_id, "?granularity=hour").await;
    assert_ne!(with_late, hourly);
    assert_equal_to_raw_tables(&app, event_id, &with_late).await;
    let again = cleanup::clean(&mut conn, &Retention::default(), now)
        .await
        .unwrap();
    let moved_again = shape(&app, event_id, now).await;
    println!(
        "late sales: {late}, then {moved_again}; moved {} slots",
        again.analytics_slots
    );
    assert_eq!(again.analytics_slots as i64, n(&late, "old_live_slots"));
    assert_eq!(n(&moved_again, "old_live_rows"), 0, "{moved_again}");
    assert_eq!(n(&moved_again, "history_rows"), n(&after, "history_rows"));
    assert!(n(&moved_again, "history_paid") > n(&after, "history_paid"));
    assert_eq!(
        n(&moved_again, "history_total_paid"),
        n(&moved_again, "history_paid"),
        "late sales moved into the history's total too"
    );
    assert_eq!(
        analytics(&app, &organizer, event_id, "?granularity=hour").await,
        with_late
    );
    assert_equal_to_raw_tables(&app, event_id, &with_late).await;
}
