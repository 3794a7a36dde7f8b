//! The cleanup purges 200,000 old step rows and 50,000 old webhook ids while
//! checkouts run, through two worker processes that both tick it every
//! second. No checkout waits on a lock for more than 100 ms (sampled from
//! `pg_locks` every 10 ms), the rows of recent and unfinished runs and
//! recent webhook ids stay, and each tick runs once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use boxoffice_models::scheduled_job_runs;
use boxoffice_models::users::Role;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::future::join_all;
use serde_json::{Value, json};

use super::fault_support::{connect, scalar};
use super::work_metrics::metrics_port;
use crate::checkout_support::event_on_sale;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::{TestApp, redis_url};

const OLD_RUNS: i64 = 2_000;
const STEPS_PER_OLD_RUN: i64 = 100;
const OLD_WEBHOOKS: i64 = 50_000;
const BUYERS: usize = 12;

/// The longest any backend of this database has been waiting for a lock
/// right now, in ms.
async fn longest_lock_wait_ms(conn: &mut AsyncPgConnection) -> (u64, String) {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Wait {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        ms: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        what: String,
    }
    diesel::sql_query(
        "SELECT (extract(epoch FROM clock_timestamp() - l.waitstart) * 1000)::bigint AS ms,
                format('%s lock on %s waited by [%s], held by [%s]', l.mode, l.locktype,
                       left(a.query, 160),
                       (SELECT string_agg(left(b.query, 160), ' | ')
                          FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(l.pid)))) AS what
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE NOT l.granted AND a.datname = current_database() AND l.waitstart IS NOT NULL
          ORDER BY 1 DESC LIMIT 1",
    )
    .get_result::<Wait>(conn)
    .await
    .map(|w| (w.ms.max(0) as u64, w.what))
    .unwrap_or((0, String::new()))
}

/// The process's `/metrics` text as it stands. A process that never ran a
/// job (the other one took every tick and checkout step) exports no job
/// series at all, and purged nothing: its share of the sum is 0.
async fn scrape(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
            && let Ok(text) = r.text().await
        {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no metrics at {url}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of the series `series` (name and labels) in a Prometheus text,
/// 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cleanup_purges_old_history_under_checkout_load_once_per_tick() {
    // Checkouts poll their status all the time: no rate limit in the way.
    let app = TestApp::builder()
        .config(|c| {
            c.rate_limits.per_ip_per_minute = 1_000_000;
            c.rate_limits.per_user_per_minute = 1_000_000;
        })
        .spawn()
        .await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    // A free ticket type per buyer: checkouts do not wait on each other, so a
    // lock wait could only come from the cleanup.
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 100_000); BUYERS], 10).await;
    let buyers = join_all((0..BUYERS).map(|_| app.create_user(&[Role::Participant]))).await;

    let mut conn = connect(&app.db.url).await;
    let seeding = Instant::now();
    conn.batch_execute(&format!(
        "-- Runs that ended 40 days ago, 100 steps each: their steps go.
         INSERT INTO workflow_runs (id, kind, status, step, state, view, created_at, finished_at)
           SELECT md5('old-' || g)::uuid, 'checkout', 'completed', 'completed', '{{}}', '{{}}',
                  now() - interval '41 days', now() - interval '40 days'
             FROM generate_series(0, {old_last}) g;
         INSERT INTO workflow_steps (run_id, step, attempt, input, outcome, version, started_at, finished_at)
           SELECT md5('old-' || (g / {STEPS_PER_OLD_RUN}))::uuid, 'holding', 1, 'start', 'advanced', 1,
                  now() - interval '40 days', now() - interval '40 days'
             FROM generate_series(0, {steps_last}) g;
         -- Kept: a run that ended yesterday, a run still waiting since 40 days
         -- and a run failed 40 days ago (an operator may still retry it).
         INSERT INTO workflow_runs (id, kind, status, step, state, view, created_at, finished_at) VALUES
           (md5('recent')::uuid, 'checkout', 'completed', 'completed', '{{}}', '{{}}', now() - interval '2 days', now() - interval '1 day'),
           (md5('waiting')::uuid, 'checkout', 'waiting', 'awaiting_payment', '{{}}', '{{}}', now() - interval '40 days', NULL),
           (md5('failed')::uuid, 'checkout', 'failed', 'releasing', '{{}}', '{{}}', now() - interval '41 days', now() - interval '40 days');
         INSERT INTO workflow_steps (run_id, step, attempt, input, outcome, version, started_at, finished_at)
           SELECT r, 'holding', 1, 'start', 'advanced', 1, now() - interval '40 days', now() - interval '40 days'
             FROM unnest(ARRAY[md5('recent')::uuid, md5('waiting')::uuid, md5('failed')::uuid]) r,
                  generate_series(1, 10);
         -- Webhook ids: 50,000 from 40 days ago go, 100 from yesterday stay.
         INSERT INTO workflow_signals (run_id, name, dedupe_key, received_at, consumed_at)
           SELECT md5('recent')::uuid, 'payment_succeeded', 'stripe:evt_old_' || g,
                  now() - interval '40 days', now() - interval '40 days'
             FROM generate_series(1, {OLD_WEBHOOKS}) g;
         INSERT INTO workflow_signals (run_id, name, dedupe_key, received_at, consumed_at)
           SELECT md5('recent')::uuid, 'payment_succeeded', 'stripe:evt_new_' || g,
                  now() - interval '1 day', now() - interval '1 day'
             FROM generate_series(1, 100) g;
         ANALYZE workflow_runs; ANALYZE workflow_steps; ANALYZE workflow_signals;",
        old_last = OLD_RUNS - 1,
        steps_last = OLD_RUNS * STEPS_PER_OLD_RUN - 1,
    ))
    .await
    .unwrap();
    println!(
        "cleanup under load: {} old steps and {OLD_WEBHOOKS} old webhook ids seeded in {:.1} s",
        OLD_RUNS * STEPS_PER_OLD_RUN,
        seeding.elapsed().as_secs_f64()
    );
    let old_steps_sql = "SELECT count(*) FROM workflow_steps WHERE run_id IN
                           (SELECT md5('old-' || g)::uuid FROM generate_series(0, 1999) g)";
    let old_webhooks_sql =
        "SELECT count(*) FROM workflow_signals WHERE dedupe_key LIKE 'stripe:evt_old_%'";

    // Checkouts run from the start to past the end of the purge.
    let load = Arc::new(AtomicBool::new(true));
    let done = Arc::new(AtomicU64::new(0));
    let slowest_ms = Arc::new(AtomicU64::new(0));
    let checkouts: Vec<_> = buyers.iter().enumerate().map(|(b, buyer)| {
        let (load, done, slowest) = (load.clone(), done.clone(), slowest_ms.clone());
        let (client, url) = (app.client.clone(), app.url("/v1"));
        let (event_id, tt) = (event.event_id, event.ticket_types[b]);
        let bearer = buyer.bearer();
        tokio::spawn(async move {
            let mut n = 0;
            while AtomicBool::load(&load, Ordering::Relaxed) {
                let started = Instant::now();
                let r = client
                    .post(format!("{url}/checkouts"))
                    .header("authorization", &bearer)
                    .header("idempotency-key", format!("load-{b}-{n}"))
                    .json(&json!({ "event_id": event_id, "items": [{ "ticket_type_id": tt, "quantity": 1 }] }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
                let run: Value = r.json().await.unwrap();
                let status_url = format!("{url}/workflows/{}", run["run_id"].as_str().unwrap());
                loop {
                    let view: Value = client
                        .get(&status_url)
                        .header("authorization", &bearer)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    if view["status"] == "completed" {
                        break;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "a checkout did not complete in a minute: {view}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                slowest.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        })
    }).collect();

    // Lock waits sampled every 10 ms.
    let sampling = Arc::new(AtomicBool::new(true));
    let longest_wait = Arc::new(AtomicU64::new(0));
    let longest_what = Arc::new(std::sync::Mutex::new(String::new()));
    let sampler = {
        let (sampling, longest, what) =
            (sampling.clone(), longest_wait.clone(), longest_what.clone());
        let url = app.db.url.clone();
        tokio::spawn(async move {
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            let mut samples = 0u64;
            while AtomicBool::load(&sampling, Ordering::Relaxed) {
                let (ms, waited) = longest_lock_wait_ms(&mut conn).await;
                if ms > longest.fetch_max(ms, Ordering::Relaxed) {
                    *what.lock().unwrap() = waited;
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        })
    };

    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *")
        .env("BOXOFFICE_SCHEDULE_CLEANUP", "* * * * * *");
    let metrics_ports = [metrics_port(), metrics_port()];
    let mut workers = [
        BoxofficeProcess::start(
            &deployment.clone().env(
                "BOXOFFICE_METRICS_ADDR",
                &format!("127.0.0.1:{}", metrics_ports[0]),
            ),
            "work",
        )
        .await,
        BoxofficeProcess::start(
            &deployment.clone().env(
                "BOXOFFICE_METRICS_ADDR",
                &format!("127.0.0.1:{}", metrics_ports[1]),
            ),
            "work",
        )
        .await,
    ];
    let purging = Instant::now();
    loop {
        let left =
            scalar(&mut conn, old_steps_sql).await + scalar(&mut conn, old_webhooks_sql).await;
        if left == 0 {
            break;
        }
        assert!(
            purging.elapsed() < Duration::from_secs(180),
            "{left} old rows left after 3 minutes:\n{}",
            workers[0].logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let purge_time = purging.elapsed();
    // More ticks (with nothing left to purge), still under load.
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.store(false, Ordering::Relaxed);
    for c in checkouts {
        c.await.expect("a checkout failed");
    }
    AtomicBool::store(&sampling, false, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    // What the cleanup exported, summed over both processes.
    let mut exported = BTreeMap::new();
    for port in metrics_ports {
        let text = scrape(port).await;
        for what in ["steps", "webhooks"] {
            *exported.entry(what).or_insert(0.0) +=
                metric(&text, &format!("cleanup_rows_total{{what=\"{what}\"}}"));
        }
    }
    assert_eq!(
        exported["steps"],
        (OLD_RUNS * STEPS_PER_OLD_RUN) as f64,
        "steps exported"
    );
    assert_eq!(
        exported["webhooks"], OLD_WEBHOOKS as f64,
        "webhook ids exported"
    );
    for w in &mut workers {
        assert!(
            w.terminate().await,
            "a worker did not stop cleanly:\n{}",
            w.logs()
        );
    }

    let checkouts_done = done.load(Ordering::Relaxed);
    let longest = longest_wait.load(Ordering::Relaxed);
    assert!(checkouts_done > 0, "no checkout completed during the purge");
    assert!(
        longest <= 100,
        "a backend waited {longest} ms for a lock during the purge: {}",
        longest_what.lock().unwrap()
    );
    // What had to stay, stayed.
    let kept = |run: &str| {
        format!("SELECT count(*) FROM workflow_steps WHERE run_id = md5('{run}')::uuid")
    };
    assert_eq!(
        scalar(&mut conn, &kept("recent")).await,
        10,
        "a recent run's history stays"
    );
    assert_eq!(
        scalar(&mut conn, &kept("waiting")).await,
        10,
        "an unfinished run's history stays"
    );
    assert_eq!(
        scalar(&mut conn, &kept("failed")).await,
        10,
        "a failed run's history stays"
    );
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM workflow_signals WHERE dedupe_key LIKE 'stripe:evt_new_%'"
        )
        .await,
        100,
        "recent webhook ids stay"
    );
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM workflow_runs WHERE id IN (SELECT md5('old-' || g)::uuid FROM generate_series(0, 1999) g)").await,
        OLD_RUNS,
        "the old runs themselves stay"
    );
    // Each tick once, across both processes; everything purged counted once.
    let runs = scheduled_job_runs::list_for_job(&mut conn, "cleanup")
        .await
        .unwrap();
    let mut per_tick: BTreeMap<_, Vec<String>> = BTreeMap::new();
    for run in &runs {
        per_tick
            .entry(run.scheduled_for)
            .or_default()
            .push(run.worker.clone());
    }
    assert!(
        per_tick.len() >= 3,
        "expected a cleanup per second, got {}",
        per_tick.len()
    );
    for (tick, workers) in &per_tick {
        assert_eq!(
            workers.len(),
            1,
            "tick {tick} ran {} times: {workers:?}",
            workers.len()
        );
    }
    let purged: i64 = runs.iter().map(|r| r.affected_rows).sum();
    assert_eq!(
        purged,
        OLD_RUNS * STEPS_PER_OLD_RUN + OLD_WEBHOOKS,
        "every old row is purged and counted once"
    );
    let workers_seen: std::collections::BTreeSet<&String> =
        runs.iter().map(|r| &r.worker).collect();
    println!(
        "cleanup under load: {purged} rows purged in {:.1} s over {} ticks ({} worker names); {checkouts_done} checkouts meanwhile, slowest {} ms; longest lock wait {longest} ms ({samples} samples)",
        purge_time.as_secs_f64(),
        per_tick.len(),
        workers_seen.len(),
        slowest_ms.load(Ordering::Relaxed),
    );
}
