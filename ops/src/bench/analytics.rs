//! `boxoffice bench analytics`: an event's analytics endpoint on a big event.
//!
//! 1. The system: its own (private Postgres and Redis in a temporary folder,
//!    real `serve` and `work` child processes), as `bench checkout` starts it.
//! 2. [`analytics_seed`]: an event with `--bookings` bookings (one to three
//!    tickets each, every tenth with a coupon), a fifth as many checkouts that
//!    expired, and `--refunds` refunds that succeeded, written with bulk SQL
//!    (the counters' triggers run as they do for real sales).
//! 3. One plain indexed read (a booking by id) on the same database, the
//!    floor of any request.
//! 4. `--readers` clients read the analytics at once, `--reads` in all; the
//!    last answer is checked against the seeded counts.
//! 5. The hourly cleanup's move of past slots into the sales history
//!    (`analytics_history`) runs, and the readers read again: the event as it
//!    stands from the first hour after its sales on, printed beside the
//!    figures before the move.
//!
//! Figures are printed, never asserted on time; a wrong figure fails the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use boxoffice_api::config::JwtConfig;
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::time::Instant;

use super::analytics_seed::{self, Seeded};
use super::stats::{Samples, ms};
use crate::cli::BenchAnalyticsArgs;
use crate::config::Settings;
use crate::local_services::Durability;
use crate::system::System;

/// The goal: the analytics of a 100,000-booking event under 8 readers.
const TARGET_P95_MS: f64 = 50.0;
/// Plain reads timed for the baseline.
const PLAIN_READS: usize = 200;

pub async fn analytics(settings: Settings, args: BenchAnalyticsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.bookings > 0, "--bookings must be at least 1");
    anyhow::ensure!(
        args.refunds <= args.bookings,
        "--refunds may not pass --bookings"
    );
    anyhow::ensure!(args.readers > 0, "--readers must be at least 1");
    let shutdown = crate::shutdown::on_signal();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let started = Instant::now();
    println!(
        "boxoffice bench analytics: {} bookings, {} refunds, {} readers, {} build",
        args.bookings,
        args.refunds,
        args.readers,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let durability = if args.ephemeral {
        Durability::Ephemeral
    } else {
        Durability::Durable
    };
    // A worker too: the system does not start without one (it stays idle here).
    let roles = ["serve".to_owned(), "work".to_owned()];
    let start = System::start(&settings, &roles, durability);
    let system = tokio::select! {
        s = tokio::time::timeout_at(deadline, start) => s.context("the system did not start in time")??,
        _ = shutdown.cancelled() => anyhow::bail!("interrupted while starting"),
    };
    println!(
        "system: started in {:.1} s: postgres ({durability:?}), redis, serve and work processes (data in {})",
        started.elapsed().as_secs_f64(),
        system.data_dir.display()
    );
    let run = measure(&settings, &args, &system);
    let result = tokio::select! {
        r = tokio::time::timeout_at(deadline, run) => r.unwrap_or_else(|_| Err(anyhow::anyhow!("the benchmark ran out of time (--timeout-secs {})", args.timeout_secs))),
        _ = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted")),
    };
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
    result
}

async fn measure(
    settings: &Settings,
    args: &BenchAnalyticsArgs,
    system: &System,
) -> anyhow::Result<()> {
    let pool = boxoffice_models::pool::build_pool(&system.database_url, 4)?;
    let jwt_config = JwtConfig {
        secret: system.jwt_secret.clone().into_bytes(),
        issuer: settings.jwt_issuer.clone(),
        audience: settings.jwt_audience.clone(),
        access_ttl: Duration::from_secs(3600),
    };
    let seeding = Instant::now();
    let seeded = analytics_seed::seed(&pool, &jwt_config, args.bookings, args.refunds).await?;
    println!(
        "seeded: {} bookings ({} tickets), {} expired checkouts, {} refunds in {:.1} s (bulk SQL, counters by their triggers)",
        seeded.bookings,
        seeded.tickets,
        seeded.expired,
        seeded.refunds,
        seeding.elapsed().as_secs_f64()
    );

    let plain = plain_reads(&system.database_url, &seeded).await?;
    let api = system
        .api_urls()
        .into_iter()
        .next()
        .context("no API process")?;
    let url = format!(
        "{api}/v1/organizer/events/{}/analytics?granularity=day",
        seeded.event_id
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    // Warm up: connections, the pool, Postgres' caches.
    for _ in 0..args.readers.min(10) {
        read(&client, &url, &seeded.organizer).await?;
    }
    let (live, last) = concurrent_reads(&client, &url, &seeded.organizer, args).await?;
    check(&last, &seeded)?;

    let moving = Instant::now();
    let slots = move_past_slots(&pool).await?;
    println!(
        "moved {slots} past slots into the sales history in {:.1} s (what the hourly cleanup does)",
        moving.elapsed().as_secs_f64()
    );
    let (moved, last) = concurrent_reads(&client, &url, &seeded.organizer, args).await?;
    check(&last, &seeded)?;
    report(&plain, &live, &moved, args.readers);
    Ok(())
}

/// Moves the slots past for an hour into the sales history, as the hourly
/// cleanup does; returns how many slots it moved.
async fn move_past_slots(pool: &boxoffice_models::DbPool) -> anyhow::Result<u64> {
    let mut conn = pool.get().await?;
    let before = chrono::Utc::now() - chrono::Duration::hours(1);
    Ok(boxoffice_models::analytics_history::move_past(&mut conn, before).await?)
}

/// One booking by its primary key, one at a time, on a fresh connection.
async fn plain_reads(database_url: &str, seeded: &Seeded) -> anyhow::Result<Samples> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        #[allow(dead_code)] // Read so the row is really fetched.
        total_minor: i64,
    }
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    let mut samples = Samples::default();
    for i in 0..PLAIN_READS {
        let id = seeded.booking_ids[i % seeded.booking_ids.len()];
        let t = Instant::now();
        let _: Row = diesel::sql_query("SELECT total_minor FROM bookings WHERE id = $1")
            .bind::<SqlUuid, _>(id)
            .get_result(&mut conn)
            .await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

async fn read(
    client: &reqwest::Client,
    url: &str,
    authorization: &str,
) -> anyhow::Result<serde_json::Value> {
    let r = client
        .get(url)
        .header("authorization", authorization)
        .send()
        .await?;
    let status = r.status();
    anyhow::ensure!(status == 200, "analytics answered {status}");
    Ok(r.json().await?)
}

/// `args.reads` reads shared by `args.readers` clients; the latencies and one answer.
async fn concurrent_reads(
    client: &reqwest::Client,
    url: &str,
    authorization: &str,
    args: &BenchAnalyticsArgs,
) -> anyhow::Result<(Samples, serde_json::Value)> {
    let left = Arc::new(AtomicUsize::new(args.reads));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.readers {
        let (client, url, authorization, left) = (
            client.clone(),
            url.to_owned(),
            authorization.to_owned(),
            left.clone(),
        );
        tasks.spawn(async move {
            let mut samples = Samples::default();
            let mut last = serde_json::Value::Null;
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let t = Instant::now();
                last = read(&client, &url, &authorization).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>((samples, last))
        });
    }
    let mut all = Samples::default();
    let mut last = serde_json::Value::Null;
    while let Some(joined) = tasks.join_next().await {
        let (samples, answer) = joined.context("a reader panicked")??;
        all.extend(samples);
        if !answer.is_null() {
            last = answer;
        }
    }
    Ok((all, last))
}

/// The answer agrees with what was seeded.
fn check(answer: &serde_json::Value, seeded: &Seeded) -> anyhow::Result<()> {
    let figure = |path: &[&str]| {
        path.iter()
            .fold(answer, |v, k| &v[*k])
            .as_i64()
            .with_context(|| format!("no {} in the answer", path.join(".")))
    };
    let expect = [
        (vec!["money", "orders"], seeded.bookings),
        (vec!["money", "paid_minor"], seeded.paid_minor),
        (vec!["money", "refunds_minor"], seeded.refunded_minor),
        (vec!["refunds", "count"], seeded.refunds),
        (vec!["totals", "tickets_issued"], seeded.tickets),
        (vec!["funnel", "completed"], seeded.bookings),
        (vec!["funnel", "expired_unpaid"], seeded.expired),
    ];
    for (path, value) in expect {
        let got = figure(&path)?;
        anyhow::ensure!(
            got == value,
            "analytics says {} = {got}, the seed wrote {value}",
            path.join(".")
        );
    }
    Ok(())
}

fn line(label: &str, value: impl std::fmt::Display) {
    println!("{label:<34} {value}");
}

fn report(plain: &Samples, live: &Samples, reads: &Samples, readers: usize) {
    println!();
    line(
        "plain indexed read (SQL):",
        format!("{} (a booking by id, one client)", plain.summary()),
    );
    line(
        "GET analytics, all slots live:",
        format!("{} ({readers} concurrent readers)", live.summary()),
    );
    line(
        "GET analytics, past slots moved:",
        format!("{} ({readers} concurrent readers)", reads.summary()),
    );
    println!("\ntargets:");
    let p95 = reads.percentile(95.0);
    line(
        "  analytics p95 < 50 ms:",
        p95.map_or_else(
            || "n/a  NOT MET".into(),
            |p| {
                format!(
                    "{}  {}",
                    ms(p),
                    if p < TARGET_P95_MS { "met" } else { "NOT MET" }
                )
            },
        ),
    );
}
