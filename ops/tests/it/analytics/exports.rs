//! Exports: 10,000 attendees stream from a real `serve` process while its
//! resident memory grows by less than 20 MB; every row is there once, RFC 4180
//! with a header row; a name starting with `=` arrives neutralised; another
//! organizer gets 404.

use std::collections::HashSet;
use std::time::Duration;

use boxoffice_models::users::Role;
use uuid::Uuid;

use super::support::execute;
use crate::checkout_support::event_on_sale;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;
use crate::harness::{TestApp, counts_moved_sql};

const ATTENDEES: i64 = 10_000;
const PER_BOOKING: i64 = 5;
const HOLDERS: i64 = 100;
const EVIL_NAME: &str = "=HYPERLINK(\"http://evil.test\",\"click\")";
const MAX_GROWTH_KIB: u64 = 20 * 1024;

/// 10,000 tickets in 2,000 bookings of 100 holders, one of whom has a name a
/// spreadsheet would run: bulk SQL, as the confirmations would have written them.
async fn seed(app: &TestApp, event_id: Uuid, ticket_type: Uuid) {
    let bookings = ATTENDEES / PER_BOOKING;
    let evil = EVIL_NAME.replace('\'', "''");
    execute(
        app,
        &format!(
            "INSERT INTO users (id, email, display_name, password_hash, roles)
               SELECT md5('holder' || g)::uuid, 'holder-' || g || '@example.com',
                      CASE WHEN g = 0 THEN '{evil}' ELSE 'Holder ' || g END, 'x', '{{participant}}'
                 FROM generate_series(0, {HOLDERS} - 1) g;
             INSERT INTO workflow_runs (id, kind, status, step, state, view)
               SELECT md5('run' || g)::uuid, 'checkout', 'completed', 'completed',
                      jsonb_build_object('event_id', '{event_id}'), '{{}}'
                 FROM generate_series(1, {bookings}) g;
             INSERT INTO bookings (id, run_id, user_id, event_id, currency, subtotal_minor, total_minor)
               SELECT md5('booking' || g)::uuid, md5('run' || g)::uuid, md5('holder' || (g % {HOLDERS}))::uuid,
                      '{event_id}', 'EUR', {PER_BOOKING} * 1000, {PER_BOOKING} * 1000
                 FROM generate_series(1, {bookings}) g;
             INSERT INTO tickets (id, booking_id, event_id, ticket_type_id, number, qr_payload, paid_minor)
               SELECT md5('ticket' || g)::uuid, md5('booking' || ((g - 1) / {PER_BOOKING} + 1))::uuid,
                      '{event_id}', '{ticket_type}', 'T-' || g, 'qr', 1000
                 FROM generate_series(1, {ATTENDEES}) g;
             {};",
            counts_moved_sql(ticket_type, ATTENDEES, 0)
        ),
    )
    .await;
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_attendees_stream_with_flat_memory_and_neutralised_formulas() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let other = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, 20_000)], 15).await;
    seed(&app, event.event_id, event.ticket_types[0]).await;

    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix);
    let api = BoxofficeProcess::start(&deployment, "serve").await;
    let pid = api.pid().expect("the API's pid");
    let base = api.base_url.clone().unwrap();
    let client = reqwest::Client::new();
    let url = |file: &str| format!("{base}/v1/organizer/events/{}/{file}", event.event_id);

    // Another organizer: no such event. The orders file warms the process up.
    let r = client
        .get(url("attendees.csv"))
        .header("authorization", other.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .get(url("orders.csv"))
        .header("authorization", other.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let orders = client
        .get(url("orders.csv"))
        .header("authorization", organizer.bearer())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(orders.lines().count() as i64, 1 + ATTENDEES / PER_BOOKING);
    assert!(orders.starts_with("booking_id,created_at,status,buyer_name,"));

    let before = rss_kib(pid);
    let r = client
        .get(url("attendees.csv"))
        .header("authorization", organizer.bearer())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers().get("content-length").is_none(),
        "a streamed body has no length up front"
    );
    let mut r = r;
    let mut body = Vec::new();
    let mut peak = before;
    let mut chunks = 0;
    while let Some(chunk) = r.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
        chunks += 1;
        peak = peak.max(rss_kib(pid));
    }
    peak = peak.max(rss_kib(pid));
    let growth = peak.saturating_sub(before);
    println!(
        "attendees.csv: {} bytes in {chunks} chunks; API RSS {before} KiB before, peak {peak} KiB, growth {growth} KiB",
        body.len()
    );
    assert!(
        growth < MAX_GROWTH_KIB,
        "the API grew by {growth} KiB while streaming"
    );

    let text = String::from_utf8(body).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        [
            "ticket_id",
            "ticket_number",
            "ticket_type",
            "status",
            "holder_name",
            "holder_email",
            "booking_id",
            "paid_minor",
            "currency",
            "checked_in_at"
        ]
    );
    let mut ids = HashSet::new();
    let mut evil_rows = 0;
    for record in reader.records() {
        let record = record.unwrap();
        assert!(
            ids.insert(record[0].to_owned()),
            "ticket {} twice",
            &record[0]
        );
        assert!(
            !record.iter().any(|c| c.starts_with(['=', '+', '-', '@'])),
            "a formula cell got through: {record:?}"
        );
        if record[4] == format!("'{EVIL_NAME}") {
            evil_rows += 1;
        }
    }
    assert_eq!(ids.len() as i64, ATTENDEES);
    // The holder with the formula name has every 100th booking's 5 tickets.
    assert_eq!(evil_rows, ATTENDEES / HOLDERS);
    assert!(text.contains("\r\n"), "records end with CRLF");
    assert!(
        !text.contains(&format!(",{EVIL_NAME}")),
        "the raw formula never appears as a cell"
    );
}
