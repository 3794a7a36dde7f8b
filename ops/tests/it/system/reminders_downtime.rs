//! Reminders whose time comes while no worker runs: the one whose event has
//! not started by the time Boxoffice is back is sent late; the one whose event
//! has started is recorded as skipped and sends nothing.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;

use super::fault_support::connect;
use crate::checkout_support::event_on_sale;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::{TestApp, redis_url};
use crate::reminders::support::{
    SmtpSink, due_in, per_recipient, reminder_runs, seed_bookings, seeded_email, wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reminders_missed_while_down_are_sent_late_before_the_start_and_skipped_after() {
    let app = TestApp::spawn().await;
    let sink = SmtpSink::start().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let started_early = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 10).await;
    let starts_later = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 10).await;
    seed_bookings(
        &app.db.url,
        started_early.event_id,
        started_early.ticket_types[0],
        2,
        "early",
        0,
    )
    .await;
    seed_bookings(
        &app.db.url,
        starts_later.event_id,
        starts_later.ticket_types[0],
        2,
        "later",
        0,
    )
    .await;
    // Reminders 1 minute before: due in 12 s (the event starts in 72 s) and
    // in 40 s (it starts in 100 s). Boxoffice is down from 5 s to 80 s.
    let t0 = Instant::now();
    due_in(
        &app.db.url,
        started_early.event_id,
        1,
        Duration::from_secs(12),
    )
    .await;
    due_in(
        &app.db.url,
        starts_later.event_id,
        1,
        Duration::from_secs(40),
    )
    .await;

    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_SMTP_URL", &sink.url())
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *")
        .env("BOXOFFICE_SCHEDULE_PLAN_REMINDERS", "* * * * * *");
    let mut worker = BoxofficeProcess::start(&deployment, "work").await;
    wait_until(
        Duration::from_secs(10),
        "both reminders planned",
        || async {
            let mut conn = connect(&app.db.url).await;
            reminder_runs(&mut conn, started_early.event_id).await.len() == 1
                && reminder_runs(&mut conn, starts_later.event_id).await.len() == 1
        },
    )
    .await;
    let status = worker.kill().await.expect("kill -9 the worker");
    assert!(
        t0.elapsed() < Duration::from_secs(12),
        "the worker went down only after the first reminder's time"
    );
    println!(
        "reminder downtime: worker killed {:.1} s in; both reminders waiting ({status})",
        t0.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(80).saturating_sub(t0.elapsed())).await;
    assert_eq!(sink.count(), 0, "nothing was sent while down");
    let mut worker = BoxofficeProcess::start(&deployment, "work").await;

    wait_until(
        Duration::from_secs(20),
        "both reminder runs end",
        || async {
            let mut conn = connect(&app.db.url).await;
            reminder_runs(&mut conn, started_early.event_id).await
                == [("completed".into(), "skipped".into())]
                && reminder_runs(&mut conn, starts_later.event_id).await
                    == [("completed".into(), "completed".into())]
        },
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "the late reminders arrive",
        || async { per_recipient(sink.dir(), "Reminder:").len() >= 2 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = per_recipient(sink.dir(), "Reminder:");
    assert_eq!(
        received,
        [(seeded_email("later", 0), 1), (seeded_email("later", 1), 1)]
            .into_iter()
            .collect(),
        "the event not started yet is reminded late, once per booking; the started one not at all"
    );
    println!(
        "reminder downtime: back {:.1} s in; the started event's reminder skipped, the other sent late to {} buyers",
        t0.elapsed().as_secs_f64(),
        received.len()
    );
    assert!(worker.terminate().await, "the worker did not stop cleanly");
}
