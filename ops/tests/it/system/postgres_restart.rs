//! Fault 4: the deployment's Postgres stops in the middle of a run set and
//! starts again (same port, data kept). The API and the workers recover without
//! being restarted, and every run finishes.

use std::time::{Duration, Instant};

use boxoffice_ops::local_services::{Durability, LocalPostgres};
use futures::future::join_all;

use super::fault_support::{
    Payer, TempDir, assert_alive, check_invariants, checkout, connect, count_of, register,
    unfinished, wait_all_finished,
};
use crate::checkout_support::event_on_sale;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;
use crate::harness::sandbox::TestSandbox;

const PER_WAVE: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarts_and_everything_recovers() {
    let dir = TempDir::new("boxoffice-pg-restart");
    let postgres = LocalPostgres::start(&dir.0, Durability::Ephemeral)
        .await
        .unwrap();
    let (port, db) = (postgres.port, postgres.database_url());
    boxoffice_models::migrations::run_pending(&db)
        .await
        .unwrap();

    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sandbox =
        TestSandbox::start(&format!("http://127.0.0.1:{api_port}/v1/webhooks/stripe")).await;
    let deployment = Deployment::new(&db, &redis_url(), &prefix)
        .env("BOXOFFICE_STRIPE_API_BASE", &sandbox.base_url)
        .env("BOXOFFICE_RATE_LIMIT_PER_IP", "100000")
        .env("BOXOFFICE_RATE_LIMIT_PER_USER", "100000")
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *")
        .env("BOXOFFICE_STALLED_AFTER_SECS", "5");
    let mut api = BoxofficeProcess::start(
        &deployment
            .clone()
            .env("BOXOFFICE_HTTP_ADDR", &format!("127.0.0.1:{api_port}")),
        "serve",
    )
    .await;
    let api_url = format!("http://127.0.0.1:{api_port}");
    let mut workers = [
        BoxofficeProcess::start(&deployment, "work").await,
        BoxofficeProcess::start(&deployment, "work").await,
    ];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    // One buyer per checkout (a participant has one open checkout per event):
    // the first wave's, then the second's.
    let buyers = join_all((0..2 * PER_WAVE).map(|_| register(&client, &api_url))).await;
    let event = event_on_sale(&db, buyers[0].id, &[(4500, 2000), (0, 2000)], 10).await;

    let wave = |tag: &'static str, first_buyer: usize| {
        let (client, api_url, buyers, event) = (client.clone(), api_url.clone(), &buyers, &event);
        async move {
            join_all((0..PER_WAVE).map(|i| {
                let tt = event.ticket_types[i % 2];
                let (client, api_url) = (client.clone(), api_url.clone());
                async move {
                    let key = format!("{tag}-{i}");
                    let started = Instant::now();
                    loop {
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
                            Ok((202, _)) => return started.elapsed(),
                            other => assert!(
                                started.elapsed() < Duration::from_secs(60),
                                "{key}: {other:?}"
                            ),
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }))
            .await
        }
    };

    wave("before", 0).await;
    // Runs must be on their way when Postgres goes, or recovery is not shown.
    // The free half completed in their answers; the paid half cannot finish
    // before the payer starts, which it does only once Postgres is gone.
    let in_flight = unfinished(&mut connect(&db).await).await;
    let stopped_at = Instant::now();
    postgres.stop().await;
    println!("postgres: stopped with {in_flight} of {PER_WAVE} runs in flight");
    assert!(
        in_flight as usize >= PER_WAVE / 2,
        "the paid runs of the first wave were in flight when Postgres stopped: {in_flight}"
    );
    // It finds their intents once Postgres is back, and pays them then.
    let payer = Payer::start(&db, &sandbox.base_url, "true");
    // The API answers while the database is away: 503, saying Postgres is
    // unreachable, within its probe's own time limit; a hang fails here.
    let asked = Instant::now();
    let r = client
        .get(format!("{api_url}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| {
            let why = if e.is_timeout() {
                "within 10 s"
            } else {
                "at all"
            };
            panic!("/readyz did not answer {why} during the outage: {e}")
        });
    let (status, took) = (r.status(), asked.elapsed());
    let body: serde_json::Value = r.json().await.expect("a readiness report");
    println!("postgres: /readyz during the outage: {status} in {took:.2?}: {body}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["postgres"]["ok"], false, "{body}");
    assert_eq!(body["redis"]["ok"], true, "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let postgres = LocalPostgres::start_on(&dir.0, Durability::Ephemeral, port)
        .await
        .unwrap();
    println!(
        "postgres: back {:.1} s after it stopped",
        stopped_at.elapsed().as_secs_f64()
    );
    let waits = wave("after", PER_WAVE).await;
    for w in &mut workers {
        assert_alive(w, "after Postgres came back");
    }
    let longest = waits.iter().max().unwrap();
    println!(
        "postgres: the API took new checkouts again (longest client wait {:.2} s)",
        longest.as_secs_f64()
    );

    let rows = wait_all_finished(&db, Duration::from_secs(150)).await;
    println!(
        "postgres: every run finished {:.1} s after the stop: {rows:?}",
        stopped_at.elapsed().as_secs_f64()
    );
    let paid = payer.stop().await;
    let stats = sandbox.stats().await;
    let rows = check_invariants(&db, Some(&stats), &deployment.mail_dir()).await;
    assert_eq!(
        count_of(&rows, "completed") as usize,
        2 * PER_WAVE,
        "{rows:?}"
    );
    assert_eq!(paid as usize, PER_WAVE);
    assert_alive(&mut api, "at the end");
    for w in &mut workers {
        assert_alive(w, "at the end");
    }
    drop((api, workers));
    postgres.stop().await;
    // Its own prefix: no `TestApp` removes the mail on its drop.
    let _ = std::fs::remove_dir_all(deployment.mail_dir());
}
