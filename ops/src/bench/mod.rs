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
//! 5. Figures from the buyers' clocks, from the database's own history
//!    (holds, step records, signals, [`db_figures`]) and from the processes'
//!    and servers' own counters ([`cost`]: CPU time, transactions, statements,
//!    Redis commands), checked against the targets ([`report`]).
//!
//! With `--baseline-bin`, an earlier build of `boxoffice` runs the same sale
//! first, on a system of its own, and the two are compared ([`compare`]).
//!
//! Everything it started is stopped on success, error, Ctrl-C or when
//! `--timeout-secs` runs out. Figures are printed, never asserted on time.
//!
//! `boxoffice bench analytics` ([`analytics`]) times an event's analytics on
//! a big event in the same way.

mod analytics;
mod analytics_seed;
mod clients;
mod compare;
mod cost;
mod db_figures;
mod descriptors;
mod flash_sale;
mod listen_queue;
mod raw_baseline;
mod report;
mod rss;
pub(crate) mod sale_event;
pub(crate) mod seed;
mod stats;
mod status_load;
mod targets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use boxoffice_api::config::JwtConfig;
use tokio::time::Instant;
use uuid::Uuid;

use crate::cli::BenchCheckoutArgs;
use crate::config::Settings;
use crate::local_services::Durability;

pub use analytics::analytics;

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
    /// Where the sale's cost is read.
    meter: cost::Meter,
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

    let mut builds: Vec<(&str, Option<PathBuf>)> = Vec::new();
    if let Some(path) = &args.baseline_bin {
        anyhow::ensure!(
            args.target.is_none(),
            "--baseline-bin starts systems of its own; leave out --target"
        );
        builds.push(("baseline", Some(path.clone())));
    }
    builds.push(("this build", args.bin.clone()));
    let mut measured = Vec::new();
    for (label, exe) in builds {
        if args.baseline_bin.is_some() || exe.is_some() {
            println!(
                "\n=== {label}{} ===",
                exe.as_deref()
                    .map_or_else(String::new, |p| format!(": {}", p.display()))
            );
        }
        let figures = one_system(&settings, &args, exe.as_deref(), deadline, &shutdown).await?;
        measured.push((label, figures));
    }
    if let [(_, baseline), (_, this)] = measured.as_slice() {
        compare::print(baseline, this);
    }
    println!(
        "\nbenchmark finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Brings up a system (or takes the running one), runs the sale against it,
/// prints its report and stops what it started.
async fn one_system(
    settings: &Settings,
    args: &BenchCheckoutArgs,
    exe: Option<&Path>,
    deadline: Instant,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<report::Figures> {
    let started = Instant::now();
    let (system, target) = match &args.target {
        Some(api) => {
            let database_url = settings
                .database_url()
                .context("--target needs DATABASE_URL (the target's Postgres)")?
                .to_owned();
            let target = Target {
                apis: vec![api.trim_end_matches('/').to_owned()],
                sandbox: args
                    .sandbox
                    .clone()
                    .context("--target needs --sandbox (the payment sandbox's base URL)")?,
                database_url: database_url.clone(),
                jwt_secret: settings
                    .jwt_secret
                    .clone()
                    .context("--target needs BOXOFFICE_JWT_SECRET (the target's key)")?,
                processes: Vec::new(),
                meter: cost::Meter {
                    processes: Vec::new(),
                    postgres_pid: None,
                    redis_pid: None,
                    database_url,
                    redis_url: settings.redis_url.clone(),
                },
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
            let exe = match exe {
                Some(path) => path.to_owned(),
                None => std::env::current_exe().context("finding this binary")?,
            };
            let log = [("BOXOFFICE_LOG".to_owned(), args.processes_log.clone())];
            let start = crate::system::System::start_binary(
                &exe,
                settings,
                &args.processes,
                durability,
                &log,
            );
            let system = tokio::select! {
                s = tokio::time::timeout_at(deadline, start) => s.context("the system did not start in time")??,
                _ = shutdown.cancelled() => anyhow::bail!("interrupted while starting"),
            };
            let processes: Vec<(String, u32)> = system
                .processes
                .iter()
                .filter_map(|p| Some((p.role.clone(), p.pid()?)))
                .collect();
            let target = Target {
                apis: system.api_urls(),
                sandbox: system.sandbox_url.clone(),
                database_url: system.database_url.clone(),
                jwt_secret: system.jwt_secret.clone(),
                processes: processes.clone(),
                meter: cost::Meter {
                    processes,
                    postgres_pid: system.postgres_pid(),
                    redis_pid: system.redis_pid(),
                    database_url: system.database_url.clone(),
                    redis_url: system.redis_url(),
                },
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

    let run = measure(settings, args, &target, deadline);
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
        // A copy that fails costs the logs, not the figures, and never
        // leaves the system running.
        if let Some(folder) = &args.keep_logs
            && let Err(e) = keep_logs(&system, folder, exe)
        {
            eprintln!("the processes' logs were not kept: {e:#}");
        }
        system.stop().await;
        println!(
            "stopped everything it started ({:.1} s in all)",
            started.elapsed().as_secs_f64()
        );
    }
    result
}

/// Copies the processes' logs into `folder`, under a subfolder named after
/// the build measured (`this-build`, or the file name of `--bin` or
/// `--baseline-bin`).
fn keep_logs(
    system: &crate::system::System,
    folder: &Path,
    exe: Option<&Path>,
) -> anyhow::Result<()> {
    let build = exe.and_then(|p| p.file_name()).map_or_else(
        || "this-build".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let into = folder.join(build);
    std::fs::create_dir_all(&into).with_context(|| format!("creating {}", into.display()))?;
    for process in &system.processes {
        if let Some(name) = process.log.file_name() {
            std::fs::copy(&process.log, into.join(name))
                .with_context(|| format!("copying {}", process.log.display()))?;
        }
    }
    println!("logs of the processes kept in {}", into.display());
    Ok(())
}

async fn measure(
    settings: &Settings,
    args: &BenchCheckoutArgs,
    target: &Target,
    deadline: Instant,
) -> anyhow::Result<report::Figures> {
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

    // Quiet until every backend has published its counts, so that the
    // readings before and after the sale count the sale alone.
    cost::enable_statement_counts(&target.database_url).await;
    tokio::time::sleep(cost::STATS_DELAY).await;
    cost::reset_statements(&target.database_url).await;
    let counts_before = target.meter.counts().await;
    let cpu_before = target.meter.cpu();

    let clients = clients::Clients::new(seeded.buyers.len(), args.http2)?;
    let sale = flash_sale::Sale {
        apis: target.apis.clone(),
        sandbox: target.sandbox.clone(),
        event_id: seeded.event_id,
        ticket_type: seeded.hot_ticket_type,
        deadline: deadline.checked_sub(REPORT_MARGIN).unwrap_or(deadline),
    };
    // `ops/scripts/profile-checkout` profiles between these two lines.
    println!(
        "sale: starting ({} buyers, {})",
        seeded.buyers.len(),
        clients.describe()
    );
    let descriptors = descriptors::Peaks::start(target.processes.clone());
    let overflows_before = listen_queue::overflows();
    let result = flash_sale::run(&clients, &sale, &seeded.buyers).await;
    let listen_overflows = listen_queue::during(overflows_before, listen_queue::overflows());
    let peak_descriptors = descriptors.finish().await;
    println!("sale: over in {:.1} s", result.elapsed.as_secs_f64());
    let cpu = cost::spent(&cpu_before, &target.meter.cpu());
    // The statements of the quiet wait are the system's idle background.
    let counts_at_end = target.meter.counts().await;
    tokio::time::sleep(cost::STATS_DELAY).await;
    let counts_after = target.meter.counts().await;
    let top_statements =
        cost::top_statements(&target.database_url, i64::from(args.statements)).await;
    let counts = cost::SaleCounts {
        sale: counts_after.since(&counts_before),
        idle_statements: counts_after
            .statements
            .zip(counts_at_end.statements)
            .map(|(a, b)| a - b),
    };

    let runs: Vec<(Uuid, seed::Buyer)> = result
        .outcomes
        .iter()
        .zip(&seeded.buyers)
        .filter_map(|(o, b)| Some((o.run_id?, b.clone())))
        .collect();
    let reads_cpu_before = target.meter.cpu();
    let reads_started = Instant::now();
    let status_reads = flash_sale::status_reads(
        clients.first(),
        &sale,
        &runs,
        args.status_reads,
        STATUS_READERS,
    )
    .await;
    let reads_cpu = cost::spent(&reads_cpu_before, &target.meter.cpu());
    let reads_wall = reads_started.elapsed();

    let status_load = match runs.first() {
        Some((run_id, buyer)) if args.status_load_secs > 0 => {
            let url = format!("{}/v1/workflows/{run_id}", target.apis[0]);
            let cpu_before = target.meter.cpu();
            let started = Instant::now();
            let figures = status_load::run(
                &url,
                &buyer.authorization,
                Duration::from_secs(args.status_load_secs),
                2,
                32,
            )
            .await;
            Some(report::StatusLoad {
                figures: figures.map_err(|e| format!("{e:#}")),
                cpu: cost::spent(&cpu_before, &target.meter.cpu()),
                wall: started.elapsed(),
            })
        }
        _ => None,
    };

    let run_ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
    let mut conn = pool.get().await?;
    let db = db_figures::read(&mut conn, &run_ids, seeded.hot_ticket_type).await?;
    // After the sale: the holds it sells stay in `holds` as dead rows until a
    // vacuum, and the sale's reads of its holds would step over them.
    let sales_alone = raw_baseline::measure_sales(
        &target.database_url,
        seeded.baseline_ticket_type,
        args.raw_connections,
        Duration::from_secs_f64(args.raw_secs),
    )
    .await?;
    seed::remove_baseline(&pool, &seeded).await?;
    let peak_rss: Vec<(String, Option<u64>)> = target
        .processes
        .iter()
        .map(|(role, pid)| (role.clone(), rss::peak_rss_kib(*pid)))
        .collect();

    report::report(report::Inputs {
        raw: &raw,
        hold_statement: hold_statement.as_ref(),
        sales_alone: &sales_alone,
        sale: &result,
        db: &db,
        cpu: &cpu,
        counts: &counts,
        top_statements: &top_statements,
        reads: &status_reads,
        reads_cpu: &reads_cpu,
        reads_wall,
        status_load: status_load.as_ref(),
        peak_rss: &peak_rss,
        peak_descriptors: &peak_descriptors,
        listen_overflows: &listen_overflows,
    })
}
