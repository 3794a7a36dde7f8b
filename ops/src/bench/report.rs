//! The benchmark's report: every figure of one sale, then the targets
//! ([`super::targets`]), and the few figures a comparison of two builds needs.

use std::time::Duration;

use super::cost::{self, Cpu, SaleCounts};
use super::db_figures::DatabaseFigures;
use super::stats::{Samples, ms};
use super::{flash_sale, raw_baseline, rss, targets};

/// Everything one sale measured.
pub struct Inputs<'a> {
    pub raw: &'a raw_baseline::RawRate,
    pub hold_statement: Option<&'a raw_baseline::RawRate>,
    /// Sales of held seats of one type, one transaction each.
    pub sales_alone: &'a raw_baseline::RawRate,
    pub sale: &'a flash_sale::SaleResult,
    pub db: &'a DatabaseFigures,
    /// CPU seconds of each kind of process during the sale.
    pub cpu: &'a Cpu,
    pub counts: &'a SaleCounts,
    /// The statements that took the most of the database's time.
    pub top_statements: &'a [cost::Statement],
    pub reads: &'a flash_sale::StatusReads,
    /// CPU seconds of each kind of process during the status reads.
    pub reads_cpu: &'a Cpu,
    pub reads_wall: Duration,
    /// `wrk`'s status reads, when they ran.
    pub status_load: Option<&'a StatusLoad>,
    pub peak_rss: &'a [(String, Option<u64>)],
    /// The most file descriptors (nearly all sockets) each process held
    /// during the sale.
    pub peak_descriptors: &'a [(String, Option<usize>)],
    /// Connections dropped for a full listen queue during the sale.
    pub listen_overflows: &'a str,
}

/// `wrk` on one run's status, and the CPU each kind of process spent meanwhile.
pub struct StatusLoad {
    pub figures: Result<super::status_load::WrkFigures, String>,
    pub cpu: Cpu,
    pub wall: Duration,
}

/// The share of one core the API processes used in `wall`: `n/a` when none
/// of them was measured (`--target`: not our processes).
fn api_share(cpu: &Cpu, wall: Duration) -> String {
    let api: Vec<f64> = cpu
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "serve" | "all"))
        .map(|(_, t)| *t)
        .collect();
    if api.is_empty() {
        return "n/a".into();
    }
    let used = api.iter().sum::<f64>();
    format!("{:.0} %", 100.0 * used / wall.as_secs_f64().max(1e-9))
}

/// The figures two builds are compared by.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub completed: usize,
    /// CPU seconds of `serve` and `work` (and `all`) during the sale.
    pub own_cpu: f64,
    /// The same with Postgres and Redis.
    pub server_cpu: f64,
    pub cpu: Cpu,
    pub counts: cost::Counts,
    pub holds_per_sec: Option<f64>,
    pub raw_per_sec: f64,
    pub post_p99: Option<f64>,
    pub step_p50: Option<f64>,
    pub status_p99: Option<f64>,
    pub wrk_rate: Option<f64>,
    pub peak_rss_kib: u64,
}

/// Boxoffice's own processes.
fn is_own(kind: &str) -> bool {
    matches!(kind, "serve" | "work" | "all")
}

/// `serve 1.2 ms, work 3.4 ms, …` per `per` (checkouts, decisions).
fn cpu_each(cpu: &Cpu, per: f64) -> String {
    cpu.iter()
        .filter(|(kind, _)| kind.as_str() != cost::LOAD_GENERATOR)
        .map(|(kind, secs)| format!("{kind} {}", ms(secs * 1000.0 / per)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rate(n: i64, secs: f64) -> Option<f64> {
    (n > 1 && secs > 0.0).then(|| n as f64 / secs)
}

pub fn per_sec(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.0}/s"))
}

pub fn line(label: &str, value: impl std::fmt::Display) {
    println!("{label:<34} {value}");
}

pub fn report(inputs: Inputs<'_>) -> anyhow::Result<Figures> {
    let Inputs {
        raw,
        hold_statement,
        sales_alone,
        sale,
        db,
        cpu,
        counts,
        top_statements,
        reads,
        reads_cpu,
        reads_wall,
        status_load,
        peak_rss,
        peak_descriptors,
        listen_overflows,
    } = inputs;
    let mut post = Samples::default();
    let (mut winners, mut losers) = (Samples::default(), Samples::default());
    let mut to_awaiting = Samples::default();
    let mut pay_to_completed = Samples::default();
    let (mut completed, mut sold_out, mut other, mut errors) = (0usize, 0usize, 0usize, Vec::new());
    let mut last_completion: Option<Duration> = None;
    let retried: u32 = sale.outcomes.iter().map(|o| o.retried).sum();
    for o in &sale.outcomes {
        if let Some(d) = o.post {
            post.push(d);
        }
        match (o.to_decision, o.held) {
            (Some(d), true) => winners.push(d),
            (Some(d), false) => losers.push(d),
            (None, _) => {}
        }
        if let Some(d) = o.to_awaiting_payment {
            to_awaiting.push(d);
        }
        if let Some(d) = o.pay_to_completed {
            pay_to_completed.push(d);
        }
        match (o.error.as_deref(), o.status.as_deref()) {
            (Some(e), _) => errors.push(e.to_owned()),
            (None, Some("completed")) => {
                completed += 1;
                last_completion = last_completion.max(o.ended_after);
            }
            (None, Some("compensated")) => sold_out += 1,
            _ => other += 1,
        }
    }
    let holds_per_sec = rate(db.holds, db.holds_span_secs);
    let decisions_per_sec = rate(db.decisions, db.decisions_span_secs);
    let completed_per_sec = last_completion.and_then(|d| rate(completed as i64, d.as_secs_f64()));
    let oversold = (i64::from(db.sold) - i64::from(db.capacity)).max(0)
        + (i64::from(db.sold) - db.tickets).abs();

    println!();
    line(
        "raw single-row rate:",
        format!(
            "{:.0} holds/s ({} connections, {} auto-committed UPDATEs in {:.1} s)",
            raw.per_sec(),
            raw.connections,
            raw.holds,
            raw.elapsed.as_secs_f64()
        ),
    );
    line(
        "Boxoffice's hold statement alone:",
        match hold_statement {
            Some(hold_statement) => format!(
                "{:.0} holds/s ({:.0} % of raw; holds::hold from {} connections, {} holds in {:.1} s)",
                hold_statement.per_sec(),
                100.0 * hold_statement.per_sec() / raw.per_sec().max(1e-9),
                hold_statement.connections,
                hold_statement.holds,
                hold_statement.elapsed.as_secs_f64()
            ),
            None => "not measured: this system's schema predates the hold of this build \
                     (the ticket type's `taken`, migration 000017)"
                .to_owned(),
        },
    );
    line(
        "Boxoffice's sale of a hold alone:",
        format!(
            "{:.0} sales/s ({:.0} % of raw; holds::convert_for_run, a transaction each, from {} connections, {} sales in {:.1} s)",
            sales_alone.per_sec(),
            100.0 * sales_alone.per_sec() / raw.per_sec().max(1e-9),
            sales_alone.connections,
            sales_alone.holds,
            sales_alone.elapsed.as_secs_f64()
        ),
    );
    line(
        "holds/s:",
        format!(
            "{} ({} holds, from the first one's transaction to the last one's {} in {:.3} s; {} hold decisions incl. sold out: {})",
            per_sec(holds_per_sec),
            db.holds,
            if db.holds_span_to_commit {
                "commit"
            } else {
                "transaction"
            },
            db.holds_span_secs,
            db.decisions,
            per_sec(decisions_per_sec)
        ),
    );
    line(
        "completed checkouts/s:",
        format!(
            "{} ({completed} completed, last {:.2} s after the first POST; sale took {:.2} s)",
            per_sec(completed_per_sec),
            last_completion.unwrap_or_default().as_secs_f64(),
            sale.elapsed.as_secs_f64()
        ),
    );
    line("POST /v1/checkouts:", post.summary());
    line("decision, winners (buyer):", winners.summary());
    line("decision, losers (buyer):", losers.summary());
    line("start → awaiting payment:", to_awaiting.summary());
    line("pay → completed (buyer):", pay_to_completed.summary());
    line(
        "webhook → completed (server):",
        db.webhook_to_completed.summary(),
    );
    line(
        "created → first step (server):",
        db.first_step_waits.summary(),
    );
    line("step → step (server):", db.step_gaps.summary());
    for pair in &db.step_gaps_by_step {
        println!("  {}: {}", pair.steps, pair.gaps.summary());
    }
    line(
        "GET /v1/workflows/{id}:",
        format!(
            "{} ({} clients, {} failed; {:.0} reads/s; the API used {} of a core)",
            reads.samples.summary(),
            super::STATUS_READERS,
            reads.failures,
            reads.samples.len() as f64 / reads_wall.as_secs_f64().max(1e-9),
            api_share(reads_cpu, reads_wall)
        ),
    );
    let wrk_rate = status_load.and_then(|l| l.figures.as_ref().ok().map(|f| f.requests_per_sec));
    let wrk_p99 = status_load.and_then(|l| l.figures.as_ref().ok().map(|f| f.p99_ms));
    if let Some(load) = status_load {
        line(
            "status reads by wrk:",
            match &load.figures {
                Ok(f) => format!(
                    "{:.0} requests/s, p50 {}  p99 {} ({} failed; 2 threads, 32 connections, {:.1} s; the API used {} of a core, postgres {:.0} %)",
                    f.requests_per_sec,
                    ms(f.p50_ms),
                    ms(f.p99_ms),
                    f.failed,
                    load.wall.as_secs_f64(),
                    api_share(&load.cpu, load.wall),
                    100.0 * load.cpu.get("postgres").copied().unwrap_or(0.0)
                        / load.wall.as_secs_f64().max(1e-9)
                ),
                Err(e) => format!("n/a ({e})"),
            },
        );
    }
    line(
        "oversold:",
        format!(
            "{oversold} (capacity {}, sold {}, tickets {}, held {})",
            db.capacity, db.sold, db.tickets, db.held
        ),
    );
    line(
        "outcomes:",
        format!(
            "{completed} completed, {sold_out} sold out, {other} other, {} errors ({retried} answers 503 retried)",
            errors.len()
        ),
    );
    let own_cpu: f64 = cpu.iter().filter(|(k, _)| is_own(k)).map(|(_, t)| t).sum();
    let server_cpu: f64 = own_cpu
        + cpu.get("postgres").copied().unwrap_or(0.0)
        + cpu.get("redis").copied().unwrap_or(0.0);
    let per_checkout = (completed as f64).max(1.0);
    let per_decision = (db.decisions as f64).max(1.0);
    let measured = cpu.keys().any(|k| is_own(k));
    for (label, per) in [
        ("CPU per completed checkout:", per_checkout),
        ("CPU per hold decision:", per_decision),
    ] {
        line(
            label,
            if measured {
                format!(
                    "{} (Boxoffice's own {}; with postgres and redis {})",
                    cpu_each(cpu, per),
                    ms(own_cpu * 1000.0 / per),
                    ms(server_cpu * 1000.0 / per)
                )
            } else {
                "n/a (--target: not our processes)".into()
            },
        );
    }
    line(
        "CPU apart from the system:",
        format!(
            "{} {:.2} s in all during the sale",
            cost::LOAD_GENERATOR,
            cpu.get(cost::LOAD_GENERATOR).copied().unwrap_or(0.0)
        ),
    );
    let each = |n: Option<i64>| {
        n.map_or_else(
            || "n/a".into(),
            |n| format!("{:.1}", n as f64 / per_checkout),
        )
    };
    line(
        "per completed checkout:",
        format!(
            "{} Postgres transactions, {} statements, {} Redis commands (from the sale's start to {} s after its end; {} of the statements came in those idle seconds)",
            each(counts.sale.transactions),
            each(counts.sale.statements),
            each(counts.sale.redis_commands),
            cost::STATS_DELAY.as_secs(),
            counts
                .idle_statements
                .map_or_else(|| "n/a".into(), |n| n.to_string()),
        ),
    );
    if !top_statements.is_empty() {
        println!(
            "statements by database time (calls per completed checkout, ms in all, statement):"
        );
        for st in top_statements {
            let query: String = st.query.chars().take(150).collect();
            println!(
                "  {:>6.1} {:>8.0} ms  {query}",
                st.calls as f64 / per_checkout,
                st.total_ms
            );
        }
    }
    rss::print(peak_rss, peak_descriptors);
    line("connections dropped at accept:", listen_overflows);

    let step_p50 = db.step_gaps.percentile(50.0);
    let post_p99 = post.percentile(99.0);
    let status_p99 = reads.samples.percentile(99.0);
    targets::print(&targets::Judged {
        holds_per_sec,
        raw_per_sec: raw.per_sec(),
        winners: &winners,
        losers: &losers,
        first_step_waits: &db.first_step_waits,
        step_gaps: &db.step_gaps,
        post_p99,
        status_p99,
        wrk: status_load.map(|_| (wrk_rate, wrk_p99)),
    });

    if let Some(e) = &reads.first_error {
        eprintln!("\nfirst failed status read: {e}");
    }
    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        eprintln!("\nerrors (first 5 distinct):");
        for e in errors.iter().take(5) {
            eprintln!("  {e}");
        }
    }
    anyhow::ensure!(oversold == 0, "OVERSOLD by {oversold}");
    anyhow::ensure!(
        errors.is_empty() && other == 0,
        "{} buyers did not see their checkout end cleanly",
        errors.len() + other
    );
    Ok(Figures {
        completed,
        own_cpu,
        server_cpu,
        cpu: cpu.clone(),
        counts: counts.sale.clone(),
        holds_per_sec,
        raw_per_sec: raw.per_sec(),
        post_p99,
        step_p50,
        status_p99,
        wrk_rate,
        peak_rss_kib: peak_rss.iter().filter_map(|(_, k)| *k).sum(),
    })
}
