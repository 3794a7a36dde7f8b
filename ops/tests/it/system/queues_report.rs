//! `boxoffice queues` against a real `work` process: the figures it prints are
//! the ones the test created (a dead job, a message waiting in the outbox) and
//! the breaker states the process publishes.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use serde_json::Value;

use crate::checkout_support::{event_on_sale, order, start};
use crate::harness::TestApp;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;
use crate::system::poison::{boxoffice, dead_job_of, poison, wait_status};
use crate::system::work_metrics::{metrics_port, scrape_until};

fn queue<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {report}"))
}

/// The row of `queue` in the table: QUEUE READY SCHEDULED IN-FLIGHT DEAD DONE
/// JOBS/S OUTBOX RELAY-LAG.
fn row<'a>(table: &'a str, queue: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&queue))
        .unwrap_or_else(|| panic!("no row for {queue} in:\n{table}"))
}

#[tokio::test]
async fn boxoffice_queues_shows_dead_jobs_outbox_backlog_and_breaker_states() {
    // The API leaves the first step to the workers, who meet the poison.
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;

    // One run whose first job will die, started before any worker runs.
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 1),
        None,
    )
    .await;
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    poison(&app, &run_id).await;
    // One message for later: it waits in the outbox, not yet due.
    let conn = app.raw_conn().await;
    boxoffice_models::outbox::push(
        &conn,
        "purge_sessions",
        &serde_json::json!({ "scheduled_for": chrono::Utc::now() }),
        Some(chrono::Utc::now() + chrono::Duration::hours(1)),
    )
    .await
    .unwrap();

    // With an SMTP server configured the mailer has a breaker too (nothing is
    // mailed here, so it stays closed).
    let port = metrics_port();
    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_SMTP_URL", "smtp://127.0.0.1:9")
        .env("BOXOFFICE_METRICS_ADDR", &format!("127.0.0.1:{port}"));
    let _worker = BoxofficeProcess::start(&deployment, "work").await;
    wait_status(&app, &run_id, "failed", Duration::from_secs(45)).await;
    dead_job_of(&app, &run_id, Duration::from_secs(10)).await;
    // Its metrics count the dead job and the parked run, by kind.
    let text = scrape_until(port, "workflow_runs_parked_total").await;
    for line in [
        "workflow_runs_parked_total{kind=\"checkout\"} 1",
        "jobs_dead_total{queue=\"advance_run\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }

    // The process publishes its breakers every 2 s.
    let started = Instant::now();
    let report: Value = loop {
        let report: Value =
            serde_json::from_str(&boxoffice(&app, &["queues", "--json"]).await).unwrap();
        if !report["breakers"].as_array().unwrap().is_empty() {
            break report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no breaker reported: {report}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let advance = queue(&report, "advance_run");
    assert_eq!(advance["dead"], 1, "{report}");
    assert_eq!(advance["ready"], 0, "{report}");
    assert_eq!(advance["outbox_backlog"], 0, "{report}");
    for other in ["run_effect", "send_email", "sweep_runs", "purge_sessions"] {
        assert_eq!(queue(&report, other)["dead"], 0, "{other}: {report}");
    }
    let purge = queue(&report, "purge_sessions");
    assert_eq!(purge["outbox_backlog"], 1, "{report}");
    assert!(
        purge["relay_lag_secs"].is_null(),
        "not due yet, so no lag: {report}"
    );
    let breakers: Vec<(&str, &str)> = report["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["dependency"].as_str().unwrap(),
                b["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(breakers.contains(&("payments", "closed")), "{report}");
    assert!(breakers.contains(&("smtp", "closed")), "{report}");
    assert_eq!(report["runs_by_status"]["failed"], 1, "{report}");

    // The table shows the same, with a throughput measured over the interval.
    let table = boxoffice(&app, &["queues", "--interval", "0.5"]).await;
    let advance = row(&table, "advance_run");
    assert_eq!(advance[4], "1", "DEAD of advance_run:\n{table}");
    assert!(advance[6].parse::<f64>().is_ok(), "JOBS/S:\n{table}");
    let purge = row(&table, "purge_sessions");
    assert_eq!(purge[7], "1", "OUTBOX of purge_sessions:\n{table}");
    assert_eq!(purge[8], "-", "RELAY-LAG of purge_sessions:\n{table}");
    for dependency in ["payments", "smtp"] {
        assert!(
            table.lines().any(|l| {
                let f: Vec<_> = l.split_whitespace().collect();
                f.len() >= 3 && f[0] == "breaker" && f[1] == dependency && f[2] == "closed"
            }),
            "no closed {dependency} breaker in:\n{table}"
        );
    }
    assert!(table.contains("failed=1"), "{table}");
}
