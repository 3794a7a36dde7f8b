//! The time series is bucketed on the venue's clock (Europe/Berlin) across the
//! night the clocks go back (2026-10-25, 03:00 CEST → 02:00 CET): hourly, the
//! two 02:00 hours are two buckets with their own offsets; daily, that day is
//! one bucket of 25 hours. Bad parameters are 400 problems; someone else's
//! event is a 404.

use boxoffice_models::users::Role;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::support::{analytics, execute, get};
use crate::checkout_support::event_on_sale;
use crate::harness::{TestApp, assert_problem, counts_moved_sql};

/// `(instant, tickets)` of each sale, at 10.00 EUR a ticket.
const SALES: [(&str, i64); 8] = [
    ("2026-10-24T21:50:00Z", 1), // 23:50 CEST, the 24th
    ("2026-10-24T23:30:00Z", 2), // 01:30 CEST
    ("2026-10-25T00:10:00Z", 1), // 02:10 CEST, the first 02:00 hour
    ("2026-10-25T00:50:00Z", 1), // 02:50 CEST
    ("2026-10-25T01:20:00Z", 3), // 02:20 CET, the second 02:00 hour
    ("2026-10-25T02:05:00Z", 1), // 03:05 CET
    ("2026-10-25T22:30:00Z", 1), // 23:30 CET, still the 25th
    ("2026-10-25T23:10:00Z", 2), // 00:10 CET, the 26th
];
/// A refund of the 02:50 CEST sale succeeds at 02:40 CET.
const REFUND_AT: &str = "2026-10-25T01:40:00Z";

/// Writes the sales as a confirmation writes them (a completed checkout run,
/// its booking and tickets), at instants the test chooses: the clock of a
/// sale over HTTP cannot be turned back to October.
async fn seed(app: &TestApp, event_id: Uuid, ticket_type: Uuid, buyer: Uuid) -> Vec<Uuid> {
    let mut bookings = Vec::new();
    let mut sql = String::new();
    for (at, tickets) in SALES {
        let (run, booking) = (Uuid::now_v7(), Uuid::now_v7());
        let total = tickets * 1000;
        sql.push_str(&format!(
            "INSERT INTO workflow_runs (id, kind, status, step, state, view, created_at, finished_at)
               VALUES ('{run}', 'checkout', 'completed', 'completed', '{{\"event_id\": \"{event_id}\"}}', '{{}}', '{at}', '{at}');
             INSERT INTO bookings (id, run_id, user_id, event_id, currency, subtotal_minor, total_minor, created_at)
               VALUES ('{booking}', '{run}', '{buyer}', '{event_id}', 'EUR', {total}, {total}, '{at}');
             INSERT INTO tickets (id, booking_id, event_id, ticket_type_id, number, qr_payload, created_at, paid_minor)
               SELECT gen_random_uuid(), '{booking}', '{event_id}', '{ticket_type}', md5(random()::text), 'qr', '{at}', 1000
                 FROM generate_series(1, {tickets});
             {};",
            counts_moved_sql(ticket_type, tickets, 0)
        ));
        bookings.push(booking);
    }
    let (refund_run, refunded) = (Uuid::now_v7(), bookings[3]);
    sql.push_str(&format!(
        "INSERT INTO workflow_runs (id, kind, status, step, state, view)
           VALUES ('{refund_run}', 'refund', 'completed', 'completed', '{{}}', '{{}}');
         INSERT INTO refunds (run_id, booking_id, amount_minor, currency, tickets, requested_by)
           VALUES ('{refund_run}', '{refunded}', 1000, 'EUR', 1, 'buyer');
         UPDATE refunds SET status = 'succeeded', completed_at = '{REFUND_AT}' WHERE run_id = '{refund_run}';"
    ));
    execute(app, &sql).await;
    bookings
}

fn bucket(start: &str, local: &str, orders: i64, tickets: i64, refunds: i64) -> Value {
    json!({ "start": start, "local_start": local, "orders": orders, "tickets": tickets,
            "revenue_minor": tickets * 1000, "refunds": refunds, "refunds_minor": refunds * 1000 })
}

#[tokio::test]
async fn buckets_follow_the_venue_clock_across_the_night_the_clocks_go_back() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    // The fixture's venue is in Europe/Berlin.
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, 100)], 15).await;
    seed(&app, event.event_id, event.ticket_types[0], buyer.id).await;

    let hourly = analytics(&app, &organizer, event.event_id, "?granularity=hour").await;
    assert_eq!(hourly["timezone"], "Europe/Berlin");
    assert_eq!(
        hourly["series"],
        json!([
            bucket("2026-10-24T21:00:00Z", "2026-10-24T23:00:00+02:00", 1, 1, 0),
            bucket("2026-10-24T23:00:00Z", "2026-10-25T01:00:00+02:00", 1, 2, 0),
            bucket("2026-10-25T00:00:00Z", "2026-10-25T02:00:00+02:00", 2, 2, 0),
            bucket("2026-10-25T01:00:00Z", "2026-10-25T02:00:00+01:00", 1, 3, 1),
            bucket("2026-10-25T02:00:00Z", "2026-10-25T03:00:00+01:00", 1, 1, 0),
            bucket("2026-10-25T22:00:00Z", "2026-10-25T23:00:00+01:00", 1, 1, 0),
            bucket("2026-10-25T23:00:00Z", "2026-10-26T00:00:00+01:00", 1, 2, 0),
        ]),
        "{hourly}"
    );

    let daily = analytics(&app, &organizer, event.event_id, "?granularity=day").await;
    assert_eq!(
        daily["series"],
        json!([
            bucket("2026-10-23T22:00:00Z", "2026-10-24T00:00:00+02:00", 1, 1, 0),
            bucket("2026-10-24T22:00:00Z", "2026-10-25T00:00:00+02:00", 6, 9, 1),
            bucket("2026-10-25T23:00:00Z", "2026-10-26T00:00:00+01:00", 1, 2, 0),
        ]),
        "{daily}"
    );
    let start = |i: usize| {
        daily["series"][i]["start"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    assert_eq!(
        (start(2) - start(1)).num_hours(),
        25,
        "the 25th has 25 hours"
    );
    // The default granularity is the day.
    let default = analytics(&app, &organizer, event.event_id, "").await;
    assert_eq!(default["series"], daily["series"]);
    assert_eq!(default["granularity"], "day");

    // `from` and `to` select buckets by their start: both 02:00 hours.
    let window = analytics(
        &app,
        &organizer,
        event.event_id,
        "?granularity=hour&from=2026-10-25T00:00:00Z&to=2026-10-25T02:00:00Z",
    )
    .await;
    assert_eq!(
        window["series"],
        json!([
            bucket("2026-10-25T00:00:00Z", "2026-10-25T02:00:00+02:00", 2, 2, 0),
            bucket("2026-10-25T01:00:00Z", "2026-10-25T02:00:00+01:00", 1, 3, 1),
        ])
    );
    // The rest of the figures are the event's whole life.
    assert_eq!(window["money"]["orders"], 8);
    assert_eq!(window["money"]["paid_minor"], 12_000);
    assert_eq!(window["money"]["refunds_minor"], 1000);
    assert_eq!(window["money"]["net_minor"], 11_000);

    // Bad parameters are problems, not 500s.
    let path = format!("/v1/organizer/events/{}/analytics", event.event_id);
    let call = |query: &str| {
        app.client
            .get(app.url(&format!("{path}{query}")))
            .header("authorization", organizer.bearer())
            .send()
    };
    assert_problem(
        call("?granularity=week").await.unwrap(),
        400,
        "invalid_query",
    )
    .await;
    assert_problem(call("?from=yesterday").await.unwrap(), 400, "invalid_query").await;
    assert_problem(call("?colour=blue").await.unwrap(), 400, "invalid_query").await;
    assert_problem(
        call("?from=2026-10-25T02:00:00Z&to=2026-10-25T02:00:00Z")
            .await
            .unwrap(),
        400,
        "invalid_range",
    )
    .await;

    // Someone else's event does not exist for them; a participant may not ask.
    let other = app.create_user(&[Role::Organizer]).await;
    let (status, body) = get(&app, &other, &path).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "not_found");
    let (status, _) = get(&app, &buyer, &path).await;
    assert_eq!(status, 403);
    let (status, _) = get(&app, &organizer, "/v1/admin/analytics").await;
    assert_eq!(status, 403, "the admins' totals are for admins");
    // Admins see any event.
    let admin = app.create_user(&[Role::Admin]).await;
    let (status, body) = get(&app, &admin, &format!("{path}?granularity=hour")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["series"], hourly["series"]);
}
