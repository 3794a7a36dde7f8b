//! `boxoffice bench checkout`: a flash sale through HTTP against a whole
//! Boxoffice system, with the figures the checkout path is judged by.
//!
//! 1. The system: its own ([`crate::system`]: private Postgres and Redis in a
//!    temporary folder, the sandbox provider, real `serve` and `work` child
//!    processes) unless `--target` names a running one.
//! 2. [`seed`]: an organizer, the buyers (signed in), an event with one hot
//!    ticket type of `--capacity` seats.
//! 3. [`raw_baseline`]: the single-row hold rate of the same Postgres with no
//!    Boxoffice in between — the ceiling for one hot ticket type.
//! 4. [`flash_sale`]: every buyer checks out at once, long-polls, pays as soon as
//!    it can; then a burst of plain status reads.
//! 5. Figures from the buyers' clocks and from the database's own history
//!    (holds, step records, signals), checked against the targets.
//!
//! Everything it started is stopped on success, error, Ctrl-C or when
//! `--timeout-secs` runs out. Figures are printed, never asserted on time.
//!
//! `boxoffice bench analytics` ([`analytics`]) times an event's analytics on
//! a big event in the same way.

mod analytics;
mod analytics_seed;
mod flash_sale;
mod raw_baseline;
mod rss;
pub(crate) mod sale_event;
pub(crate) mod seed;
mod stats;

use std::time::Duration;

use anyhow::Context;
use boxoffice_api::config::JwtConfig;
use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use tokio::time::Instant;
use uuid::Uuid;

use crate::cli::BenchCheckoutArgs;
use crate::config::Settings;
use crate::local_services::Durability;
use stats::{Samples, ms};

pub use analytics::analytics;

/// Targets from the issue.
const TARGET_HOLD_RATIO: f64 = 0.5;
const TARGET_STEP_P50_MS: f64 = 10.0;
const TARGET_STATUS_P99_MS: f64 = 10.0;
/// Concurrent clients of the status-read burst.
const STATUS_READERS: usize = 8;
/// Time kept after the sale's deadline to read figures and print them.
const REPORT_MARGIN: Duration = Duration::from_secs(20);

/// The system the benchmark talks to.
struct Target {
    apis: Vec<String>,
    sandbox: String,
    database_url: String,
    jwt_secret: String,
    /// `(role, pid)` of processes whose peak memory is reported.
    processes: Vec<(String, u32)>,
}

pub async fn checkout(settings: Settings, args: BenchCheckoutArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.buyers > 0, "--buyers must be at least 1");
    anyhow::ensure!(args.capacity > 0, "--capacity must be at least 1");
    for role in &args.processes {
        anyhow::ensure!(
            ["serve", "work", "all"].contains(&role.as_str()),
            "--processes takes serve, work and all, not {role:?}"
        );
    }
    let shutdown = crate::shutdown::on_signal();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let started = Instant::now();
    println!(
        "boxoffice bench checkout: {} buyers, capacity {}, {} build",
        args.buyers,
        args.capacity,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    let (system, target) = match &args.target {
        Some(api) => {
            let target = Target {
                apis: vec![api.trim_end_matches('/').to_owned()],
                sandbox: args
                    .sandbox
                    .clone()
                    .context("--target needs --sandbox (the payment sandbox's base URL)")?,
                database_url: settings
                    .database_url()
                    .context("--target needs DATABASE_URL (the target's Postgres)")?
                    .to_owned(),
                jwt_secret: settings
                    .jwt_secret
                    .clone()
                    .context("--target needs BOXOFFICE_JWT_SECRET (the target's key)")?,
                processes: Vec::new(),
            };
            println!("system: the running one at {api}");
            (None, target)
        }
        None => {
            let durability = if args.ephemeral {
                Durability::Ephemeral
            } else {
                Durability::Durable
            };
            let start = crate::system::System::start(&settings, &args.processes, durability);
            let system = tokio::select! {
                s = tokio::time::timeout_at(deadline, start) => s.context("the system did not start in time")??,
                _ = shutdown.cancelled() => anyhow::bail!("interrupted while starting"),
            };
            let target = Target {
                apis: system.api_urls(),
                sandbox: system.sandbox_url.clone(),
                database_url: system.database_url.clone(),
                jwt_secret: system.jwt_secret.clone(),
                processes: system
                    .processes
                    .iter()
                    .filter_map(|p| Some((p.role.clone(), p.pid()?)))
                    .collect(),
            };
            println!(
                "system: started in {:.1} s: postgres ({:?}), redis, sandbox, processes {} (data in {})",
                started.elapsed().as_secs_f64(),
                durability,
                args.processes.join(","),
                system.data_dir.display()
            );
            (Some(system), target)
        }
    };

    let run = measure(&settings, &args, &target, deadline);
    let result = tokio::select! {
        r = tokio::time::timeout_at(deadline, run) => r.unwrap_or_else(|_| Err(anyhow::anyhow!("the benchmark ran out of time (--timeout-secs {})", args.timeout_secs))),
        _ = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(system) = system {
        if result.is_err() {
            for p in &system.processes {
                eprintln!("--- end of the {} log ---\n{}", p.role, p.log_tail());
            }
        }
        system.stop().await;
        println!(
            "stopped everything it started ({:.1} s in all)",
            started.elapsed().as_secs_f64()
        );
    }
    result
}

async fn measure(
    settings: &Settings,
    args: &BenchCheckoutArgs,
    target: &Target,
    deadline: Instant,
) -> anyhow::Result<()> {
    let pool = boxoffice_models::pool::build_pool(&target.database_url, 16)?;
    let jwt_config = JwtConfig {
        secret: target.jwt_secret.clone().into_bytes(),
        issuer: settings.jwt_issuer.clone(),
        audience: settings.jwt_audience.clone(),
        access_ttl: Duration::from_secs(3600),
    };
    let seeding = Instant::now();
    let seeded = seed::seed(&pool, &jwt_config, args.buyers, args.capacity).await?;
    println!(
        "seeded: {} buyers signed in (inserted through the models, sessions and tokens minted as a login does) in {:.1} s",
        seeded.buyers.len(),
        seeding.elapsed().as_secs_f64()
    );

    let raw = raw_baseline::measure(
        &target.database_url,
        seeded.baseline_ticket_type,
        args.raw_connections,
        Duration::from_secs_f64(args.raw_secs),
    )
    .await?;
    let hold_statement = raw_baseline::measure_hold(
        &target.database_url,
        seeded.baseline_ticket_type,
        args.raw_connections,
        Duration::from_secs_f64(args.raw_secs),
    )
    .await?;
    seed::remove_baseline(&pool, &seeded).await?;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(45))
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let sale = flash_sale::Sale {
        apis: target.apis.clone(),
        sandbox: target.sandbox.clone(),
        event_id: seeded.event_id,
        ticket_type: seeded.hot_ticket_type,
        deadline: deadline.checked_sub(REPORT_MARGIN).unwrap_or(deadline),
    };
    let result = flash_sale::run(&client, &sale, &seeded.buyers).await;

    let runs: Vec<(Uuid, seed::Buyer)> = result
        .outcomes
        .iter()
        .zip(&seeded.buyers)
        .filter_map(|(o, b)| Some((o.run_id?, b.clone())))
        .collect();
    let status_reads =
        flash_sale::status_reads(&client, &sale, &runs, args.status_reads, STATUS_READERS).await;

    let run_ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
    let mut conn = pool.get().await?;
    let db = database_figures(&mut conn, &run_ids, seeded.hot_ticket_type).await?;
    let peak_rss: Vec<(String, Option<u64>)> = target
        .processes
        .iter()
        .map(|(role, pid)| (role.clone(), rss::peak_rss_kib(*pid)))
        .collect();

    report(
        &raw,
        &hold_statement,
        &result,
        &db,
        &status_reads,
        &peak_rss,
    )
}

/// What the database recorded about the sale.
struct DatabaseFigures {
    holds: i64,
    holds_span_secs: f64,
    decisions: i64,
    decisions_span_secs: f64,
    step_gaps: Samples,
    first_step_waits: Samples,
    webhook_to_completed: Samples,
    capacity: i32,
    sold: i32,
    held: i32,
    tickets: i64,
}

#[derive(diesel::QueryableByName)]
struct CountSpan {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Double)]
    span: f64,
}

#[derive(diesel::QueryableByName)]
struct Millis {
    #[diesel(sql_type = Double)]
    ms: f64,
}

#[derive(diesel::QueryableByName)]
struct Gap {
    #[diesel(sql_type = Double)]
    ms: f64,
    /// The gap from the run's creation to its first job.
    #[diesel(sql_type = Bool)]
    first: bool,
}

#[derive(diesel::QueryableByName)]
struct Counters {
    #[diesel(sql_type = Integer)]
    capacity: i32,
    #[diesel(sql_type = Integer)]
    sold: i32,
    #[diesel(sql_type = Integer)]
    held: i32,
    #[diesel(sql_type = BigInt)]
    tickets: i64,
}

async fn database_figures(
    conn: &mut diesel_async::AsyncPgConnection,
    runs: &[Uuid],
    ticket_type: Uuid,
) -> anyhow::Result<DatabaseFigures> {
    let holds: CountSpan = diesel::sql_query(
        "SELECT count(*)::bigint AS n,
                COALESCE(EXTRACT(EPOCH FROM max(created_at) - min(created_at)), 0)::float8 AS span
           FROM holds WHERE ticket_type_id = $1",
    )
    .bind::<SqlUuid, _>(ticket_type)
    .get_result(conn)
    .await?;
    // Every run that reached the hold, whether it got a seat or was sold out.
    let decisions: CountSpan = diesel::sql_query(
        "SELECT count(DISTINCT run_id)::bigint AS n,
                COALESCE(EXTRACT(EPOCH FROM max(started_at) - min(started_at)), 0)::float8 AS span
           FROM workflow_steps WHERE run_id = ANY($1) AND step = 'holding'",
    )
    .bind::<Array<SqlUuid>, _>(runs)
    .get_result(conn)
    .await?;
    // One job of a run = its step records with one start time. A gap is from
    // one job to the next, except the wait for the buyer's payment (a gap that
    // ends in a signal). The gap from the run's creation to its first job is the
    // queue wait of a new run, reported on its own line.
    let gaps: Vec<Gap> = diesel::sql_query(
        "WITH jobs AS (
              SELECT run_id, started_at AS at, bool_or(input LIKE 'signal:%') AS by_signal, false AS created
                FROM workflow_steps WHERE run_id = ANY($1) GROUP BY run_id, started_at
              UNION ALL
              SELECT id, created_at, false, true FROM workflow_runs WHERE id = ANY($1)
          ), gaps AS (
              SELECT by_signal,
                     lag(created) OVER w AS after_creation,
                     EXTRACT(EPOCH FROM at - lag(at) OVER w) * 1000 AS gap
                FROM jobs WINDOW w AS (PARTITION BY run_id ORDER BY at)
          )
          SELECT gap::float8 AS ms, after_creation AS first
            FROM gaps WHERE gap IS NOT NULL AND NOT by_signal",
    )
    .bind::<Array<SqlUuid>, _>(runs)
    .load(conn)
    .await?;
    let webhooks: Vec<Millis> = diesel::sql_query(
        "SELECT (EXTRACT(EPOCH FROM r.finished_at - s.received_at) * 1000)::float8 AS ms
           FROM workflow_runs r
           JOIN LATERAL (SELECT min(received_at) AS received_at FROM workflow_signals WHERE run_id = r.id) s ON true
          WHERE r.id = ANY($1) AND r.status = 'completed' AND s.received_at IS NOT NULL AND r.finished_at IS NOT NULL",
    )
    .bind::<Array<SqlUuid>, _>(runs)
    .load(conn)
    .await?;
    let counters: Counters = diesel::sql_query(
        "SELECT capacity, sold, held,
                (SELECT count(*) FROM tickets WHERE ticket_type_id = $1)::bigint AS tickets
           FROM ticket_types WHERE id = $1",
    )
    .bind::<SqlUuid, _>(ticket_type)
    .get_result(conn)
    .await?;
    let (mut step_gaps, mut first_step_waits) = (Samples::default(), Samples::default());
    for g in &gaps {
        if g.first {
            first_step_waits.push_millis(g.ms);
        } else {
            step_gaps.push_millis(g.ms);
        }
    }
    let mut webhook_to_completed = Samples::default();
    webhooks
        .iter()
        .for_each(|w| webhook_to_completed.push_millis(w.ms));
    Ok(DatabaseFigures {
        holds: holds.n,
        holds_span_secs: holds.span,
        decisions: decisions.n,
        decisions_span_secs: decisions.span,
        step_gaps,
        first_step_waits,
        webhook_to_completed,
        capacity: counters.capacity,
        sold: counters.sold,
        held: counters.held,
        tickets: counters.tickets,
    })
}

fn rate(n: i64, secs: f64) -> Option<f64> {
    (n > 1 && secs > 0.0).then(|| n as f64 / secs)
}

fn per_sec(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.0}/s"))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

fn line(label: &str, value: impl std::fmt::Display) {
    println!("{label:<34} {value}");
}

fn report(
    raw: &raw_baseline::RawRate,
    hold_statement: &raw_baseline::RawRate,
    sale: &flash_sale::SaleResult,
    db: &DatabaseFigures,
    reads: &flash_sale::StatusReads,
    peak_rss: &[(String, Option<u64>)],
) -> anyhow::Result<()> {
    let mut post = Samples::default();
    let mut to_awaiting = Samples::default();
    let mut pay_to_completed = Samples::default();
    let (mut completed, mut sold_out, mut other, mut errors) = (0usize, 0usize, 0usize, Vec::new());
    let mut last_completion: Option<Duration> = None;
    for o in &sale.outcomes {
        if let Some(d) = o.post {
            post.push(d);
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
        format!(
            "{:.0} holds/s ({:.0} % of raw; holds::hold from {} connections, {} holds in {:.1} s)",
            hold_statement.per_sec(),
            100.0 * hold_statement.per_sec() / raw.per_sec().max(1e-9),
            hold_statement.connections,
            hold_statement.holds,
            hold_statement.elapsed.as_secs_f64()
        ),
    );
    line(
        "holds/s:",
        format!(
            "{} ({} holds, first to last in {:.2} s; {} hold decisions incl. sold out: {})",
            per_sec(holds_per_sec),
            db.holds,
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
    line(
        "GET /v1/workflows/{id}:",
        format!(
            "{} ({STATUS_READERS} clients, {} failed)",
            reads.samples.summary(),
            reads.failures
        ),
    );
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
            "{completed} completed, {sold_out} sold out, {other} other, {} errors",
            errors.len()
        ),
    );
    if peak_rss.is_empty() {
        line("peak RSS:", "n/a (--target: not our processes)");
    } else {
        let total: u64 = peak_rss.iter().filter_map(|(_, k)| *k).sum();
        let each: Vec<String> = peak_rss
            .iter()
            .map(|(role, k)| format!("{role} {}", k.map_or_else(|| "n/a".into(), rss::mib)))
            .collect();
        line(
            "peak RSS:",
            format!("{} (total {})", each.join(", "), rss::mib(total)),
        );
    }

    println!("\ntargets:");
    let ratio = holds_per_sec.map(|h| h / raw.per_sec().max(1e-9));
    line(
        "  holds ≥ 50 % of raw rate:",
        match ratio {
            Some(r) => format!(
                "{:.1} % ({} vs {:.0} holds/s)  {}",
                r * 100.0,
                per_sec(holds_per_sec),
                raw.per_sec(),
                verdict(r >= TARGET_HOLD_RATIO)
            ),
            None => "n/a (fewer than two holds)  NOT MET".into(),
        },
    );
    let step_p50 = db.step_gaps.percentile(50.0);
    line(
        "  step → step p50 ≤ 10 ms:",
        step_p50.map_or_else(
            || "n/a  NOT MET".into(),
            |p| format!("{}  {}", ms(p), verdict(p <= TARGET_STEP_P50_MS)),
        ),
    );
    let status_p99 = reads.samples.percentile(99.0);
    line(
        "  status reads p99 ≤ 10 ms:",
        status_p99.map_or_else(
            || "n/a  NOT MET".into(),
            |p| format!("{}  {}", ms(p), verdict(p <= TARGET_STATUS_P99_MS)),
        ),
    );

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
    Ok(())
}
