//! `boxoffice chaos --minutes N --seed S`: a soak of the whole system under
//! a mixed load while faults are injected, then proof that nothing was lost.
//!
//! 1. Its own system ([`crate::system`]): private Postgres and Redis, the
//!    sandbox provider, an SMTP server ([`smtp_sink`]), and `--apis` serve
//!    and `--workers` work processes.
//! 2. [`seed`]: the organizer, the buyers, the events.
//! 3. For `--minutes`: the buyers' load ([`load`]) and the faults
//!    ([`faults`]), one at a time, each followed by a recovery probe; a
//!    purchase goes as [`purchase`] plays it.
//! 4. Everything healed, [`drain`]: every run must end by itself; then the
//!    ledger audit, against the provider's records too.
//! 5. [`report`]: printed (and written as JSON with `--report`). The command
//!    fails unless every run finished, the audit is clean and no process
//!    died without being killed.

mod client;
mod drain;
mod faults;
mod load;
mod purchase;
mod report;
mod seed;
mod smtp_sink;
mod tally;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use boxoffice_api::config::JwtConfig;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::ChaosArgs;
use crate::config::Settings;
use crate::local_services::Durability;
use crate::system::System;
use client::Api;
use load::Load;
use report::Report;
use tally::Tally;

/// More than any soak injects: a fault takes at least a few seconds.
const PLANNED_FAULTS: usize = 1_000;
/// Fresh buyers for the recovery probes (reused in turn).
const PROBE_BUYERS: usize = 200;
/// How long every run has to finish once the load stops: past the holds'
/// minute and the sweeps after it.
const DRAIN_LIMIT: Duration = Duration::from_secs(360);

pub async fn run(settings: Settings, args: ChaosArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.minutes > 0.0 && args.minutes <= 24.0 * 60.0,
        "--minutes must be more than 0 and at most a day"
    );
    let soak = Duration::from_secs_f64(args.minutes * 60.0);
    println!(
        "boxoffice chaos: seed {}, {} min, {} APIs, {} workers, {} buyers, {} build",
        args.seed,
        args.minutes,
        args.apis,
        args.workers,
        args.buyers,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let shutdown = crate::shutdown::on_signal();
    let smtp = smtp_sink::SmtpSink::start().await?;
    let mut roles = vec!["serve".to_owned(); usize::from(args.apis)];
    roles.extend(vec!["work".to_owned(); usize::from(args.workers)]);
    let env: Vec<(String, String)> = [
        ("BOXOFFICE_SMTP_URL", smtp.url()),
        // Sweeps and planning every few seconds, so that a soak of minutes
        // sees holds expire, stalled steps taken over and reminders planned.
        ("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "*/2 * * * * *".into()),
        ("BOXOFFICE_SCHEDULE_PLAN_REMINDERS", "*/5 * * * * *".into()),
        ("BOXOFFICE_STALLED_AFTER_SECS", "10".into()),
        ("BOXOFFICE_REFUND_POLL_SECS", "10".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let system = tokio::select! {
        s = System::start_with(&settings, &roles, Durability::Ephemeral, &env) => s?,
        _ = shutdown.cancelled() => anyhow::bail!("interrupted while starting"),
    };
    println!(
        "system: Postgres, Redis, SMTP and the payment sandbox on loopback ports; {}",
        roles.join(", ")
    );
    let database_url = system.database_url.clone();
    let (sandbox, stripe_key) = (system.sandbox_url.clone(), system.stripe_key.clone());
    let api = Arc::new(Api::new(system.api_urls(), sandbox.clone())?);
    let jwt = JwtConfig {
        secret: system.jwt_secret.clone().into_bytes(),
        issuer: settings.jwt_issuer.clone(),
        audience: settings.jwt_audience.clone(),
        // The soak and its drain.
        access_ttl: soak + Duration::from_secs(3600),
    };
    let outcome = async {
        let pool = boxoffice_models::pool::build_pool(&database_url, 4)?;
        let world = seed::seed(
            &pool,
            &jwt,
            &api,
            usize::from(args.buyers),
            PROBE_BUYERS,
            soak,
        )
        .await
        .context("seeding")?;
        drop(pool);
        println!(
            "seeded: {} buyers, {} events on sale, {} to be cancelled",
            world.buyers.len(),
            world.regular.len() + 2,
            world.doomed.len()
        );
        Ok::<_, anyhow::Error>(world)
    }
    .await;
    let world = match outcome {
        Ok(world) => Arc::new(world),
        Err(e) => {
            system.stop().await;
            return Err(e);
        }
    };

    let stop = CancellationToken::new();
    let tally = Arc::new(Tally::default());
    let load = Arc::new(Load {
        api: api.clone(),
        world: world.clone(),
        tally: tally.clone(),
        stop: stop.clone(),
    });
    let plan = faults::plan(args.seed, PLANNED_FAULTS);
    let preview: Vec<String> = plan
        .iter()
        .take(8)
        .map(|p| format!("{:?}", p.kind))
        .collect();
    println!(
        "faults drawn from seed {}: {} …",
        args.seed,
        preview.join(", ")
    );
    let cancel_at: Vec<Duration> = {
        let mut rng = StdRng::seed_from_u64(args.seed.wrapping_add(1));
        (0..world.doomed.len())
            .map(|_| soak.mul_f64(rng.random_range(0.2..0.7)))
            .collect()
    };

    let soak_start = Instant::now();
    let mut buyers = tokio::task::JoinSet::new();
    for index in 0..world.buyers.len() {
        buyers.spawn(load.clone().buyer(index, args.seed));
    }
    buyers.spawn(load.clone().organizer(cancel_at));
    let injecting = {
        let (load, stop) = (load.clone(), stop.clone());
        tokio::spawn(async move {
            let mut injector = faults::Injector::new(system, smtp, &load);
            let injected = injector.run(&plan, &stop, soak_start).await;
            (injector, injected)
        })
    };
    tokio::select! {
        _ = tokio::time::sleep(soak) => {}
        _ = shutdown.cancelled() => println!("interrupted: stopping the load"),
    }
    stop.cancel();
    while buyers.join_next().await.is_some() {}
    let (mut injector, injected) = injecting.await.context("the fault injector panicked")?;
    println!(
        "load stopped after {:.1} s; {} operations; draining",
        soak_start.elapsed().as_secs_f64(),
        tally.total()
    );

    let drained = drain::finish(&api, &world, &database_url, DRAIN_LIMIT).await;
    let audited = drain::audit(&database_url, &sandbox, &stripe_key).await;
    let (emails_received, emails_resent) = injector.smtp.counts();
    let result = match (drained, audited) {
        (Ok(drained), Ok(violations)) => {
            let report = Report {
                seed: args.seed,
                minutes: args.minutes,
                apis: usize::from(args.apis),
                workers: usize::from(args.workers),
                buyers: usize::from(args.buyers),
                operations: tally.snapshot(),
                operations_total: tally.total(),
                http_answers: api.answers(),
                fault_kinds: Report::kinds(&injected),
                faults: injected,
                unexpected_exits: std::mem::take(&mut injector.unexpected_exits),
                runs: drained.runs,
                unfinished_runs: drained.unfinished,
                drain_secs: drained.took.as_secs_f64(),
                offers_declined_at_the_end: drained.offers_declined,
                emails_received,
                emails_resent,
                audit_violations: violations,
                errors_logged: errors_logged(&injector.system),
            };
            report.print();
            if let Some(path) = &args.report {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if report.passed() {
                Ok(())
            } else {
                for p in &injector.system.processes {
                    eprintln!("--- end of the {} log ---\n{}", p.role, p.log_tail());
                }
                Err(anyhow::anyhow!(
                    "the soak failed: {} runs unfinished, {} audit violations, {} processes died on their own",
                    report.unfinished_runs,
                    report.audit_violations.len(),
                    report.unexpected_exits.len()
                ))
            }
        }
        (Err(e), _) | (_, Err(e)) => Err(e.context("after the soak")),
    };
    injector.system.stop().await;
    result
}

/// The `ERROR` lines of every process's log, by message.
fn errors_logged(system: &System) -> std::collections::BTreeMap<String, u64> {
    let mut by_message = std::collections::BTreeMap::new();
    for process in &system.processes {
        let Ok(text) = std::fs::read_to_string(&process.log) else {
            continue;
        };
        for line in text.lines() {
            if let Some((_, message)) = line.split_once(" ERROR ") {
                // One entry per message, whichever of a process's workers
                // logged it.
                let message: String = message
                    .split_whitespace()
                    .filter(|word| !word.starts_with("worker.name="))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(200)
                    .collect();
                *by_message
                    .entry(format!("{}: {message}", process.role))
                    .or_default() += 1;
            }
        }
    }
    by_message
}
