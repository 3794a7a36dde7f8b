//! A `work` process serves Prometheus metrics of what it did: workflow
//! transitions and outcomes, business counters, job counters.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use serde_json::Value;

use crate::checkout_support::{event_on_sale, is_finished, order, start, wait_for};
use crate::harness::TestApp;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;

#[tokio::test]
async fn a_worker_process_exports_workflow_and_business_metrics() {
    // The worker takes the whole free checkout, its first step too.
    let app = TestApp::builder()
        .leaving_first_steps_to_workers()
        .spawn()
        .await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;

    let port = metrics_port();
    // An SMTP server nobody answers: the mailer gets its breaker (and the
    // confirmation email only retries), so both breakers export their state.
    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_METRICS_ADDR", &format!("127.0.0.1:{port}"))
        .env("BOXOFFICE_SMTP_URL", "smtp://127.0.0.1:9");
    let _worker = BoxofficeProcess::start(&deployment, "work").await;

    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 2),
        None,
    )
    .await;
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = wait_for(&app, &buyer, &run_id, Duration::from_secs(30), is_finished).await;
    assert_eq!(done["status"], "completed");

    let text = scrape_until(port, "tickets_sold_total").await;
    for line in [
        "workflow_runs_finished_total{kind=\"checkout\",status=\"completed\"} 1",
        "tickets_sold_total 2",
        "bookings_confirmed_total 1",
        "holds_placed_total 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        text.contains("workflow_transitions_total{kind=\"checkout\""),
        "{text}"
    );
    // The free checkout went start → holding → confirming → completed:
    // each step it left has its duration recorded.
    for step in ["start", "holding", "confirming"] {
        let count =
            format!("workflow_step_duration_seconds_count{{kind=\"checkout\",step=\"{step}\"}} 1");
        assert!(text.contains(&count), "missing {count:?} in:\n{text}");
    }
    // The relay measured the outbox: the lag of what it moved, and the backlog.
    for gauge in [
        "outbox_relay_lag_seconds{queue=\"advance_run\"}",
        "outbox_backlog_messages{queue=\"advance_run\"}",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(gauge)),
            "missing {gauge:?} in:\n{text}"
        );
    }
    // The free checkout never calls the provider: its breaker is closed. The
    // mailer's may have opened by now (its server is down); it is there.
    assert!(
        text.contains("circuit_breaker_state{dependency=\"payments\"} 0"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("circuit_breaker_state{dependency=\"smtp\"} ")),
        "{text}"
    );
}

/// A free loopback port for a process's metrics listener.
pub fn metrics_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Scrapes the process's `/metrics` on `port` until the text contains `needle`.
pub async fn scrape_until(port: u16, needle: &str) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(&url).await
            && let Ok(text) = r.text().await
            && text.contains(needle)
        {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no {needle:?} in the metrics at {url}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
