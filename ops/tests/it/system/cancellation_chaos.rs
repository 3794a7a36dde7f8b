//! An event with 2,000 paid bookings is cancelled while two worker processes
//! run; the payment provider is down for 30 s in the middle of the refunds and
//! each worker is `kill -9`ed once (and restarted). Checkouts waiting for
//! payment at the cancellation are paid by their buyers as it happens. Every
//! booking is refunded exactly once and in full, nothing is confirmed after
//! the cancellation, the cancellation run completes, and each buyer gets one
//! cancellation email.
//!
//! The bookings are written with SQL (as a checkout writes them) against
//! intents really created and paid at the sandbox, so the refunds are real.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use boxoffice_models::holds;
use boxoffice_models::users::Role;
use diesel_async::SimpleAsyncConnection;
use futures::StreamExt;
use futures::future::join_all;
use serde_json::Value;
use uuid::Uuid;

use super::fault_support::{
    Payer, TempDir, awaiting_intents, checkout, connect, scalar, wait_all_finished,
};
use crate::checkout_support::event_on_sale;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::sandbox::TestSandbox;
use crate::harness::{TEST_STRIPE_KEY, TestApp, counts_moved_sql, redis_url};

const BOOKINGS: usize = 2_000;
const BUYERS: usize = 400;
/// Checkouts waiting for payment when the event is cancelled.
const IN_FLIGHT: usize = 20;
const PRICE: i64 = 4500;
const OUTAGE: Duration = Duration::from_secs(30);

/// Creates an intent at the sandbox and pays it; its id.
async fn paid_intent(sandbox: &TestSandbox, i: usize) -> String {
    let r = sandbox
        .client
        .post(format!("{}/v1/payment_intents", sandbox.base_url))
        .bearer_auth(TEST_STRIPE_KEY)
        .header("idempotency-key", format!("seed-{i}"))
        .form(&[("amount", PRICE.to_string()), ("currency", "eur".into())])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "creating an intent: {}",
        r.status()
    );
    let intent: Value = r.json().await.unwrap();
    let id = intent["id"].as_str().unwrap().to_owned();
    sandbox.pay(&id).await;
    id
}

/// `buyers` participants and `intents.len()` confirmed one-ticket bookings
/// (each with its completed checkout run), spread over the buyers.
async fn seed_bookings(
    db_url: &str,
    event_id: Uuid,
    ticket_type: Uuid,
    intents: &[String],
) -> Vec<String> {
    let mut conn = connect(db_url).await;
    let emails: Vec<String> = (0..BUYERS)
        .map(|b| format!("chaos-buyer-{b}@example.com"))
        .collect();
    let buyer_ids: Vec<Uuid> = (0..BUYERS).map(|_| Uuid::now_v7()).collect();
    let users: Vec<String> = buyer_ids
        .iter()
        .zip(&emails)
        .map(|(id, email)| {
            format!("('{id}', '{email}', 'Buyer', 'not-a-password-hash', ARRAY['participant'])")
        })
        .collect();
    let mut sql = format!(
        "INSERT INTO users (id, email, display_name, password_hash, roles) VALUES {};",
        users.join(",")
    );
    let (mut runs, mut bookings, mut tickets) = (Vec::new(), Vec::new(), Vec::new());
    for (i, intent) in intents.iter().enumerate() {
        let (run, booking, ticket) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let buyer = buyer_ids[i % BUYERS];
        runs.push(format!(
            "('{run}', 'checkout', 'completed', 'completed', \
              '{{\"event_id\": \"{event_id}\"}}', '{{}}', '{buyer}', now())"
        ));
        bookings.push(format!(
            "('{booking}', '{run}', '{buyer}', '{event_id}', 'EUR', {PRICE}, {PRICE}, '{intent}')"
        ));
        tickets.push(format!(
            "('{ticket}', '{booking}', '{event_id}', '{ticket_type}', 'CHAOS-{i}', 'qr-{i}', {PRICE})"
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO workflow_runs (id, kind, status, step, state, view, owner_id, finished_at) VALUES {};
         INSERT INTO bookings (id, run_id, user_id, event_id, currency, subtotal_minor, total_minor, payment_intent_id) VALUES {};
         INSERT INTO tickets (id, booking_id, event_id, ticket_type_id, number, qr_payload, paid_minor) VALUES {};
         {};",
        runs.join(","),
        bookings.join(","),
        tickets.join(","),
        counts_moved_sql(ticket_type, intents.len(), 0)
    ));
    conn.batch_execute(&sql).await.unwrap();
    emails
}

/// The runs not finished and the refunds not succeeded, for a failure's message.
async fn unfinished(conn: &mut diesel_async::AsyncPgConnection) -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let rows: Vec<Row> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT concat_ws(' | ', r.id::text, r.kind, r.status, r.step, r.attempts::text,
                    r.wake_at::text, r.pending_effect::text, r.last_error::text, r.state::text,
                    (SELECT string_agg(s.name || ':' || s.consumed_at::text, ',') FROM workflow_signals s WHERE s.run_id = r.id),
                    (SELECT string_agg(st.step || '/' || st.input || '/' || st.outcome, ', ' ORDER BY st.id) FROM workflow_steps st WHERE st.run_id = r.id)) AS line
               FROM workflow_runs r
              WHERE r.status NOT IN ('completed', 'compensated') AND r.kind <> 'event_cancellation'
             UNION ALL
             SELECT concat_ws(' | ', 'refund row', run_id::text, status, amount_minor::text) FROM refunds WHERE status <> 'succeeded'",
        ),
        conn,
    )
    .await
    .unwrap_or_default();
    rows.into_iter()
        .map(|r| r.line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The cancellation emails written by the workers, per recipient.
fn cancellation_mail(dir: &std::path::Path) -> HashMap<String, usize> {
    let mut per_recipient = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return per_recipient;
    };
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let header = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        if header("Subject:").is_some_and(|s| s.contains("is cancelled"))
            && let Some(to) = header("To:")
        {
            *per_recipient.entry(to).or_default() += 1;
        }
    }
    per_recipient
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_2000_paid_bookings_through_an_outage_and_worker_crashes() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    // One buyer per checkout in flight: a participant has one open checkout per event.
    let late_buyers = join_all((0..IN_FLIGHT).map(|_| app.create_user(&[Role::Participant]))).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(PRICE, 3000)], 10).await;
    let tt = event.ticket_types[0];

    let seeding = Instant::now();
    let intents: Vec<String> = futures::stream::iter(0..BOOKINGS)
        .map(|i| paid_intent(&sandbox, i))
        .buffered(32)
        .collect()
        .await;
    let buyer_emails = seed_bookings(&app.db.url, event.event_id, tt, &intents).await;
    println!(
        "cancellation chaos: {BOOKINGS} paid bookings of {BUYERS} buyers seeded in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let mail = TempDir::new("boxoffice-chaos-mail");
    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_STRIPE_API_BASE", &sandbox.base_url)
        .env("BOXOFFICE_RATE_LIMIT_PER_IP", "100000")
        .env("BOXOFFICE_RATE_LIMIT_PER_USER", "100000")
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *")
        .env("BOXOFFICE_STALLED_AFTER_SECS", "10")
        .env("BOXOFFICE_CANCELLATION_MAX_IN_FLIGHT", "200")
        .env("BOXOFFICE_REFUND_POLL_SECS", "20")
        .env("BOXOFFICE_MAIL_DIR", mail.0.to_str().unwrap());
    let api = BoxofficeProcess::start(&deployment, "serve").await;
    let api_url = api.base_url.clone().unwrap();
    let mut workers = vec![
        BoxofficeProcess::start(&deployment, "work").await,
        BoxofficeProcess::start(&deployment, "work").await,
    ];

    // Checkouts waiting for payment when the event is cancelled.
    let client = reqwest::Client::new();
    for r in join_all((0..IN_FLIGHT).map(|i| {
        let (client, api_url, buyer) = (client.clone(), api_url.clone(), &late_buyers[i]);
        async move {
            checkout(
                &client,
                &api_url,
                buyer,
                event.event_id,
                tt,
                1,
                &format!("late-{i}"),
            )
            .await
        }
    }))
    .await
    {
        let (status, body) = r.unwrap();
        assert_eq!(status, 202, "{body}");
    }
    let mut conn = connect(&app.db.url).await;
    let waiting_since = Instant::now();
    while awaiting_intents(&mut conn, "true").await.unwrap().len() < IN_FLIGHT {
        assert!(
            waiting_since.elapsed() < Duration::from_secs(60),
            "checkouts never awaited payment"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The cancellation; the waiting buyers pay as it happens.
    let started = Instant::now();
    let r = client
        .post(format!("{api_url}/v1/events/{}/cancel", event.event_id))
        .header("authorization", organizer.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let parent: Uuid = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let payer = Payer::start(&app.db.url, &sandbox.base_url, "true");

    // A tenth of the refunds done, then the provider goes down and each
    // worker is killed once while it is down.
    while scalar(
        &mut conn,
        "SELECT count(*) FROM refunds WHERE status = 'succeeded'",
    )
    .await
        < (BOOKINGS / 10) as i64
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "refunds do not progress"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sandbox
        .configure(serde_json::json!({ "outage": true, "outage_mode": "error" }))
        .await;
    let outage_started = Instant::now();
    let refunded_before = scalar(
        &mut conn,
        "SELECT count(*) FROM refunds WHERE status = 'succeeded'",
    )
    .await;
    for (victim, at) in [(0, Duration::from_secs(8)), (1, Duration::from_secs(18))] {
        tokio::time::sleep(at.saturating_sub(outage_started.elapsed())).await;
        // The victim must be alive, and end by this very kill.
        let status = workers[victim]
            .kill()
            .await
            .unwrap_or_else(|e| panic!("worker {victim}: kill -9 failed: {e}"));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(nix::sys::signal::Signal::SIGKILL as i32),
            "worker {victim} ended otherwise than by the kill ({status})"
        );
        println!(
            "cancellation chaos: worker {victim} killed {:.1} s after the cancellation, during the outage",
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        workers[victim] = BoxofficeProcess::start(&deployment, "work").await;
    }
    tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
    sandbox
        .configure(serde_json::json!({ "outage": false }))
        .await;
    println!(
        "cancellation chaos: provider down for {:.1} s ({refunded_before} refunds done before it)",
        outage_started.elapsed().as_secs_f64()
    );

    // The parent completes once every refund has ended.
    let status = loop {
        let status: String = {
            #[derive(diesel::QueryableByName)]
            struct S {
                #[diesel(sql_type = diesel::sql_types::Text)]
                status: String,
            }
            let s: S = diesel_async::RunQueryDsl::get_result(
                diesel::sql_query("SELECT status FROM workflow_runs WHERE id = $1")
                    .bind::<diesel::sql_types::Uuid, _>(parent),
                &mut conn,
            )
            .await
            .unwrap();
            s.status
        };
        if status == "completed" || status == "failed" {
            break status;
        }
        if started.elapsed() >= Duration::from_secs(240) {
            println!("{}", unfinished(&mut conn).await);
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the cancellation did not complete: {status}; {} refunds succeeded",
            scalar(
                &mut conn,
                "SELECT count(*) FROM refunds WHERE status = 'succeeded'"
            )
            .await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let took = started.elapsed();
    assert_eq!(status, "completed");
    println!(
        "cancellation chaos: {BOOKINGS} bookings refunded in {:.1} s ({:.1} refunds/s, a 30 s outage and 2 worker crashes included)",
        took.as_secs_f64(),
        BOOKINGS as f64 / took.as_secs_f64()
    );
    let rows = wait_all_finished(&app.db.url, Duration::from_secs(120)).await;
    let paid_late = payer.stop().await;

    // The parent's own account of it.
    let view: Value = {
        #[derive(diesel::QueryableByName)]
        struct V {
            #[diesel(sql_type = diesel::sql_types::Jsonb)]
            view: Value,
        }
        let v: V = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query("SELECT view FROM workflow_runs WHERE id = $1")
                .bind::<diesel::sql_types::Uuid, _>(parent),
            &mut conn,
        )
        .await
        .unwrap();
        v.view
    };
    assert_eq!(view["bookings_total"], BOOKINGS, "{view}");
    assert_eq!(view["refunded"], BOOKINGS, "{view}");
    assert_eq!(view["failed"], 0, "{view}");
    assert_eq!(view["pending"], 0, "{view}");
    assert_eq!(
        view["refunded_amount"]["amount_minor"],
        BOOKINGS as i64 * PRICE,
        "{view}"
    );

    // At the provider: every charged intent refunded exactly once, in full.
    let stats = sandbox.stats().await;
    let charged = stats["charged_minor_by_intent"].as_object().unwrap();
    for intent in &intents {
        assert_eq!(charged[intent], PRICE, "{intent}");
    }
    for (intent, amount) in charged {
        assert_eq!(
            &stats["refunded_minor_by_intent"][intent], amount,
            "{intent} is refunded in full"
        );
        assert_eq!(
            stats["refunds_by_intent"][intent], 1,
            "{intent} is refunded once"
        );
    }
    assert!(
        stats["refunds_pending_by_intent"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "{}",
        stats["refunds_pending_by_intent"]
    );
    assert_eq!(
        stats["refunds_by_intent"].as_object().unwrap().len(),
        charged.len(),
        "nothing refunded that was not charged"
    );

    // Here: every booking refunded, none confirmed after the cancellation.
    let event_id = event.event_id;
    assert_eq!(
        scalar(
            &mut conn,
            &format!("SELECT count(*) FROM bookings WHERE event_id = '{event_id}'")
        )
        .await,
        BOOKINGS as i64,
        "no booking confirmed after the cancellation"
    );
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM bookings WHERE status = 'refunded' AND refunded_minor = total_minor").await,
        BOOKINGS as i64
    );
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM notifications WHERE kind = 'booking_confirmation'"
        )
        .await,
        0,
        "no confirmation sent"
    );
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM tickets WHERE status <> 'void'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(&mut conn, &format!("SELECT count(*) FROM workflow_runs WHERE parent_id = '{parent}' AND kind = 'refund' AND status = 'completed'")).await,
        BOOKINGS as i64,
        "one completed refund run per booking"
    );
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(DISTINCT booking_id) FROM refunds WHERE status = 'succeeded'"
        )
        .await,
        BOOKINGS as i64
    );
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM refunds").await,
        BOOKINGS as i64,
        "one refund per booking"
    );
    // Held and sold agree with holds and tickets.
    let bad = holds::inconsistencies(&mut conn).await.unwrap();
    assert!(bad.is_empty(), "held differs from active holds: {bad:?}");
    assert_eq!(
        scalar(
            &mut conn,
            &format!("SELECT sold + held FROM ticket_types WHERE id = '{tt}'")
        )
        .await,
        0,
        "every unit back on sale"
    );
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM workflow_runs WHERE kind = 'checkout' AND status = 'compensated'"
        )
        .await,
        IN_FLIGHT as i64,
        "every checkout in flight compensated: {rows:?}"
    );

    // One cancellation email per buyer, as written by the workers.
    let mailing = Instant::now();
    let mail_seen = loop {
        let seen = cancellation_mail(&mail.0);
        if seen.len() >= BUYERS || mailing.elapsed() > Duration::from_secs(60) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(mail_seen.len(), BUYERS, "one email to each buyer");
    for email in &buyer_emails {
        assert_eq!(mail_seen.get(email), Some(&1), "{email}: {mail_seen:?}");
    }
    println!(
        "cancellation chaos: {paid_late} checkouts paid during the cancellation, none confirmed; {} cancellation emails; runs {rows:?}",
        mail_seen.values().sum::<usize>()
    );
    for w in &workers {
        assert!(!w.logs().contains("panicked"), "{}", w.logs());
    }
    drop(api);
}
