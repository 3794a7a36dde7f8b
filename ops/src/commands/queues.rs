//! `boxoffice queues`: queue health (see `workers::operator::queues`).
//! Throughput is the change of each queue's done count between two samples.

use std::time::Duration;

use crate::cli::QueuesArgs;
use crate::config::Settings;

pub async fn run(settings: &Settings, args: QueuesArgs) -> anyhow::Result<()> {
    let conns = crate::runtime::connect(settings).await?;
    let operator = crate::operator::operator(settings, &conns)?;
    let first = operator.queues().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&first)?);
        return Ok(());
    }
    let interval = args.interval.clamp(0.1, 60.0);
    tokio::time::sleep(Duration::from_secs_f64(interval)).await;
    let report = operator.queues().await?;
    println!(
        "{:<16} {:>7} {:>9} {:>9} {:>6} {:>9} {:>8} {:>8} {:>10}",
        "QUEUE", "READY", "SCHEDULED", "IN-FLIGHT", "DEAD", "DONE", "JOBS/S", "OUTBOX", "RELAY-LAG"
    );
    for q in &report.queues {
        let before = first
            .queues
            .iter()
            .find(|p| p.queue == q.queue)
            .map(|p| p.done_total)
            .unwrap_or(q.done_total);
        let rate = q.done_total.saturating_sub(before) as f64 / interval;
        println!(
            "{:<16} {:>7} {:>9} {:>9} {:>6} {:>9} {:>8.1} {:>8} {:>10}",
            q.queue,
            q.ready,
            q.scheduled,
            q.in_flight,
            q.dead,
            q.done_total,
            rate,
            q.outbox_backlog,
            q.relay_lag_secs
                .map(|l| format!("{l:.2}s"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    println!();
    if report.breakers.is_empty() {
        println!("breakers: no worker process reported (none running?)");
    }
    for b in &report.breakers {
        println!(
            "breaker {:<12} {:<10} (process {})",
            b.dependency, b.state, b.process
        );
    }
    let runs: Vec<String> = report
        .runs_by_status
        .iter()
        .map(|(s, n)| format!("{s}={n}"))
        .collect();
    println!("runs: {}", runs.join(" "));
    Ok(())
}
