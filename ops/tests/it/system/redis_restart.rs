//! Fault 3: the deployment's Redis stops in the middle of a run set, some runs'
//! only message in it, and comes back (same port) with its data lost. Every run
//! still finishes: Postgres holds the truth, the relay refills Redis from the
//! outbox, the sweep re-drives runs whose messages were lost, and the workers
//! come back by themselves.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use boxoffice_ops::local_services::{Durability, LocalRedis};
use boxoffice_workers::registry::QUEUES;
use boxoffice_workers::relay::Relay;
use futures::future::join_all;

use super::fault_support::{
    Payer, TempDir, assert_alive, check_invariants, checkout, connect, count_of, log_events,
    scalar, unfinished, wait_all_finished,
};
use crate::checkout_support::event_on_sale;
use crate::harness::TestApp;
use crate::harness::processes::{BoxofficeProcess, Deployment};

const PER_WAVE: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarts_empty_and_every_run_finishes() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    // One buyer per checkout (a participant has one open checkout per event):
    // the first wave's, then the second's.
    let buyers = join_all((0..3 * PER_WAVE).map(|_| app.create_user(&[Role::Participant]))).await;
    // Paid and free seats for the first and last waves; the third wave's own
    // paid seats, on a row no paused worker can be holding a lock on.
    let event = event_on_sale(
        &app.db.url,
        organizer.id,
        &[(4500, 2000), (0, 2000), (4500, 2000)],
        10,
    )
    .await;

    let dir = TempDir::new("boxoffice-redis-restart");
    let first_dir = dir.0.join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    let redis = LocalRedis::start(&first_dir, Durability::Ephemeral)
        .await
        .unwrap();
    let (port, redis_url) = (redis.port, redis.url());

    let deployment = Deployment::new(&app.db.url, &redis_url, &app.redis_prefix)
        .env("BOXOFFICE_STRIPE_API_BASE", &sandbox.base_url)
        .env("BOXOFFICE_RATE_LIMIT_PER_IP", "100000")
        .env("BOXOFFICE_RATE_LIMIT_PER_USER", "100000")
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *")
        .env("BOXOFFICE_STALLED_AFTER_SECS", "3");
    // An API without the provider's secret key (as a deployment that keeps it
    // off its public processes runs) leaves payment intents to the workers:
    // the runs of the third wave below then wait on their messages.
    let api_deployment = deployment.clone().without("BOXOFFICE_STRIPE_SECRET_KEY");
    let mut api = BoxofficeProcess::start(&api_deployment, "serve").await;
    let api_url = api.base_url.clone().unwrap();
    let mut workers = [
        BoxofficeProcess::start(&deployment, "work").await,
        BoxofficeProcess::start(&deployment, "work").await,
    ];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let wave = |tag: &'static str, first_buyer: usize| {
        let (client, api_url, buyers) = (client.clone(), api_url.clone(), &buyers);
        let event = &event;
        async move {
            join_all((0..PER_WAVE).map(|i| {
                let tt = match tag {
                    "lost" => event.ticket_types[2],
                    _ => event.ticket_types[i % 2],
                };
                let (client, api_url) = (client.clone(), api_url.clone());
                async move {
                    let key = format!("{tag}-{i}");
                    let started = Instant::now();
                    loop {
                        // While Redis comes back, the API may answer 5xx: a client retries.
                        match checkout(
                            &client,
                            &api_url,
                            &buyers[first_buyer + i],
                            event.event_id,
                            tt,
                            1,
                            &key,
                        )
                        .await
                        {
                            Ok((202, _)) => return,
                            other => assert!(
                                started.elapsed() < Duration::from_secs(30),
                                "{key}: {other:?}"
                            ),
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }))
            .await;
        }
    };

    wave("before", 0).await;
    // Runs must be on their way when Redis goes, or recovery is not shown. The
    // free half completed in their answers; the paid half cannot finish before
    // the payer starts, which it does only once Redis is gone.
    let mut conn = connect(&app.db.url).await;
    let in_flight = unfinished(&mut conn).await;
    assert!(
        in_flight as usize >= PER_WAVE / 2,
        "the paid runs of the first wave are in flight: {in_flight}"
    );
    // So that some runs surely have their only message in Redis when it goes,
    // a third wave starts while the workers are paused, and its messages are
    // moved from the outbox to Redis by the relay's own code.
    pause_between_relay_passes(&workers, &mut conn, &app.redis_prefix).await;
    wave("lost", PER_WAVE).await;
    let relay = Relay {
        db: app.pool().clone(),
        redis: redis::Client::open(redis_url.as_str())
            .unwrap()
            .get_connection_manager()
            .await
            .unwrap(),
        prefix: app.redis_prefix.clone(),
        queues: QUEUES.to_vec(),
        nudge: Default::default(),
        wake: Default::default(),
    };
    let relayed = relay.relay_once().await.unwrap();
    let lost = scalar(
        &mut conn,
        "SELECT count(*) FROM workflow_runs r WHERE r.idempotency_key LIKE 'lost-%'
            AND r.status = 'running'
            AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.payload->>'run_id' = r.id::text)",
    )
    .await;
    // The API held each run's seats as it started it; the payment intent is
    // to be created, and its message is now in Redis only.
    assert_eq!(
        lost as usize, PER_WAVE,
        "the third wave's runs wait on messages in Redis only"
    );
    let stopped_at = Instant::now();
    redis.stop().await;
    let payer = Payer::start(&app.db.url, &sandbox.base_url, "true");
    for w in &workers {
        w.resume();
    }
    println!(
        "redis: stopped with {in_flight} of the first {PER_WAVE} runs in flight, and {lost} more whose {relayed} messages were only in Redis"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Back on the same port with nothing in it (a new, empty data folder).
    let second_dir = dir.0.join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    std::fs::copy(
        first_dir.join("redis-password"),
        second_dir.join("redis-password"),
    )
    .unwrap();
    let redis = LocalRedis::start_on(&second_dir, Durability::Ephemeral, port)
        .await
        .unwrap();
    println!(
        "redis: back, empty, {:.1} s after it stopped",
        stopped_at.elapsed().as_secs_f64()
    );
    wave("after", 2 * PER_WAVE).await;
    for w in &mut workers {
        assert_alive(w, "after Redis came back");
    }
    assert_alive(&mut api, "after Redis came back");
    // The workers come back by themselves, and the sweep drives again the runs
    // whose messages Redis lost.
    let back = Instant::now();
    loop {
        for w in &mut workers {
            assert_alive(w, "while Redis recovered");
        }
        let restarts = workers.each_ref().map(restarted_workers);
        let redriven = redriven_runs(&workers);
        if restarts.iter().all(|n| *n > 0) && redriven >= lost as u64 {
            println!(
                "redis: the worker processes restarted {restarts:?} workers; the sweeps re-drove {redriven} stalled runs"
            );
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "60 s after Redis came back: workers restarted per process {restarts:?}, stalled runs re-driven {redriven} (of at least {lost})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let rows = wait_all_finished(&app.db.url, Duration::from_secs(150)).await;
    println!(
        "redis: every run finished {:.1} s after the restart: {rows:?}",
        stopped_at.elapsed().as_secs_f64()
    );
    let paid = payer.stop().await;
    let stats = sandbox.stats().await;
    let rows = check_invariants(&app.db.url, Some(&stats), &deployment.mail_dir()).await;
    assert_eq!(
        count_of(&rows, "completed") as usize,
        3 * PER_WAVE,
        "{rows:?}"
    );
    assert_eq!(
        paid as usize,
        2 * PER_WAVE,
        "the paid runs (half of the first and last waves, all of the third) were paid once each"
    );
    for w in &mut workers {
        assert_alive(w, "at the end");
    }
    redis.stop().await;
}

/// Pauses the worker processes at a moment when none of their relays is in
/// the middle of a pass. A relay stopped inside its transaction keeps its
/// queue's advisory lock (and the messages it claimed) for as long as it is
/// stopped, and the test's own relay pass would then skip that queue and
/// leave the third wave's messages in the outbox.
async fn pause_between_relay_passes(
    workers: &[BoxofficeProcess],
    conn: &mut diesel_async::AsyncPgConnection,
    prefix: &str,
) {
    // The relay locks `hashtext(<queue>)`; an advisory lock on a bigint key
    // shows its low 32 bits as `objid`.
    let queues = QUEUES
        .iter()
        .map(|q| {
            let config = boxoffice_workers::queue::config(prefix, q);
            let name: &str = config.queue.as_ref();
            format!("'{name}'")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let held = format!(
        "SELECT count(*) FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.objid::text::bigint IN
                (SELECT hashtext(q)::bigint & 4294967295 FROM unnest(ARRAY[{queues}]) AS q)"
    );
    for _ in 0..200 {
        for w in workers {
            w.pause();
        }
        if scalar(conn, &held).await == 0 {
            return;
        }
        for w in workers {
            w.resume();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the workers' relays were always in the middle of a pass");
}

/// Workers the process started again after one stopped (names `…-r1` on).
fn restarted_workers(process: &BoxofficeProcess) -> usize {
    log_events(process, "worker starting")
        .iter()
        .filter(|e| {
            e["worker.name"]
                .as_str()
                .is_some_and(|n| !n.ends_with("-r0"))
        })
        .count()
}

/// Stalled runs the sweeps of these processes re-drove.
fn redriven_runs(processes: &[BoxofficeProcess]) -> u64 {
    processes
        .iter()
        .flat_map(|p| log_events(p, "sweep moved runs and emails"))
        .filter_map(|e| e["redriven"].as_u64())
        .sum()
}
