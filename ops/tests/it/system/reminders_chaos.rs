//! 20,000 confirmed bookings of one event whose 1-hour reminder falls due at
//! one moment; two worker processes; one of them `kill -9`ed while the
//! reminders are being fanned out (and restarted). Every booking's buyer gets
//! exactly one reminder through the SMTP server, the Redis queues stay within
//! the relay's bound (plus the jobs the killed worker had fetched, which come
//! back by themselves), and the run completes having queued each exactly once.
//!
//! The bookings are written with SQL (as a checkout writes them), one buyer
//! each, so the sink counts reminders per booking by recipient.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use boxoffice_workers::registry::QUEUES;
use boxoffice_workers::relay::{MAX_QUEUE_DEPTH, queue_depth};

use super::fault_support::{assert_alive, connect, scalar};
use crate::checkout_support::event_on_sale;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::{TestApp, redis_url};
use crate::reminders::support::{SmtpSink, due_in, message_ids, seed_bookings, seeded_email};

const BOOKINGS: usize = 20_000;
/// Emails one worker process sends at once (`send_email`'s concurrency):
/// at most these can be resent after a `kill -9` (accepted by the server,
/// not yet marked sent), each with the same `Message-ID` as its first copy.
const SENDS_IN_FLIGHT: usize = 4;
/// The relay keeps a queue under `MAX_QUEUE_DEPTH`, but the jobs a killed
/// worker had fetched are put back by apalis-redis's orphan recovery, past
/// the relay: at most one worker's fetch (its concurrency, 16 at most).
const RETURNED_AFTER_THE_KILL: usize = 16;
/// Sending takes most of the time: about 90 emails/s as text, about 45/s
/// with the HTML, QR code and calendar file of each reminder, on a 2-core
/// machine in a debug build.
const SENDING_BUDGET: Duration = Duration::from_secs(900);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_reminders_through_a_worker_crash() {
    let app = TestApp::spawn().await;
    let sink = SmtpSink::start().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, BOOKINGS as i32)], 10).await;
    let seeding = Instant::now();
    seed_bookings(
        &app.db.url,
        event.event_id,
        event.ticket_types[0],
        BOOKINGS,
        "rc",
        1000,
    )
    .await;
    println!(
        "reminder chaos: {BOOKINGS} bookings seeded in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    // The 1-hour reminder falls due 15 s from now.
    due_in(&app.db.url, event.event_id, 60, Duration::from_secs(15)).await;
    let due = Instant::now() + Duration::from_secs(15);

    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_SMTP_URL", &sink.url())
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *")
        .env("BOXOFFICE_SCHEDULE_PLAN_REMINDERS", "* * * * * *");
    let mut workers = vec![
        BoxofficeProcess::start(&deployment, "work").await,
        BoxofficeProcess::start(&deployment, "work").await,
    ];

    // Sample the depth of every queue throughout.
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        let redis = app.conns.redis_patient.clone();
        let prefix = app.redis_prefix.clone();
        tokio::spawn(async move {
            let mut samples = 0;
            while AtomicBool::load(&sampling, Ordering::Relaxed) {
                for queue in QUEUES {
                    let config = boxoffice_workers::queue::config(&prefix, queue);
                    let depth = queue_depth(&redis, &config).await.unwrap();
                    assert!(
                        depth <= MAX_QUEUE_DEPTH + RETURNED_AFTER_THE_KILL,
                        "{queue} is {depth} deep"
                    );
                    peak.fetch_max(depth, Ordering::Relaxed);
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };

    // Kill one worker while the fan-out is under way: some reminders queued,
    // not all.
    let mut conn = connect(&app.db.url).await;
    let queued_sql = "SELECT count(*) FROM notifications WHERE kind = 'reminder'";
    loop {
        let queued = scalar(&mut conn, queued_sql).await;
        if queued >= 500 {
            assert!(
                queued < BOOKINGS as i64,
                "the fan-out ended before the kill ({queued} queued)"
            );
            let status = workers[0].kill().await.expect("kill -9 the first worker");
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(nix::sys::signal::Signal::SIGKILL as i32),
                "the worker ended otherwise than by the kill ({status})"
            );
            println!(
                "reminder chaos: worker killed {:.1} s after the due time, {queued} of {BOOKINGS} reminders queued",
                due.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            Instant::now() < due + Duration::from_secs(60),
            "the fan-out did not start within a minute of the due time:\n{}",
            workers[0].logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    workers[0] = BoxofficeProcess::start(&deployment, "work").await;

    // Every booking's buyer gets its reminder.
    let mut last_report = Instant::now();
    let finished_at = loop {
        // Counting files is cheap; the messages are read once, at the end.
        let reached = sink.count();
        if reached >= BOOKINGS {
            break Instant::now();
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            println!(
                "reminder chaos: {reached} reminders received {:.0} s after the due time",
                due.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        for w in &mut workers {
            assert_alive(w, "while the reminders went out");
        }
        assert!(
            due.elapsed() < SENDING_BUDGET,
            "only {reached} of {BOOKINGS} reminders received after {SENDING_BUDGET:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let sending = finished_at.saturating_duration_since(due);
    // A moment for a duplicate to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.await.expect("queues stayed within their bound");

    let received = message_ids(sink.dir(), "Reminder:");
    let expected: HashSet<String> = (0..BOOKINGS).map(|i| seeded_email("rc", i)).collect();
    let got: HashSet<String> = received.keys().cloned().collect();
    assert_eq!(
        got, expected,
        "exactly the buyers of the event are reminded"
    );
    let mut copies = 0;
    for (to, ids) in &received {
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            1,
            "{to} got {} different reminders",
            distinct.len()
        );
        copies += ids.len() - 1;
    }
    assert!(
        copies <= SENDS_IN_FLIGHT,
        "{copies} resent copies: more than the sends in flight at the kill"
    );
    assert_eq!(scalar(&mut conn, queued_sql).await, BOOKINGS as i64);
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM notifications WHERE kind = 'reminder' AND status = 'sent'"
        )
        .await,
        BOOKINGS as i64
    );
    let run_done = scalar(
        &mut conn,
        &format!(
            "SELECT count(*) FROM event_reminders e JOIN workflow_runs r ON r.id = e.run_id
              WHERE e.event_id = '{}' AND r.status = 'completed' AND r.step = 'completed'
                AND (r.state->>'queued')::int = {BOOKINGS}",
            event.event_id
        ),
    )
    .await;
    assert_eq!(
        run_done, 1,
        "one reminder run, completed, counting each booking once"
    );
    println!(
        "reminder chaos: {BOOKINGS} reminders, one per booking, in {:.1} s after the due time ({:.0} emails/s); {copies} copies resent after the kill; Redis queue depth peaked at {} (relay bound {MAX_QUEUE_DEPTH}, {samples} samples)",
        sending.as_secs_f64(),
        BOOKINGS as f64 / sending.as_secs_f64().max(0.001),
        peak.load(Ordering::Relaxed)
    );
    for w in &mut workers {
        assert!(w.terminate().await, "a worker did not stop cleanly");
    }
}
