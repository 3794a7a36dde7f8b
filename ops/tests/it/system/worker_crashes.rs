//! Fault 1: worker processes are `kill -9`ed at random moments, several times,
//! during 240 checkouts (200 paid, the sandbox paying as intents appear, and 40
//! free), and restarted. Every run finishes; no run is charged twice; every
//! booking has its tickets; one confirmation per booking; counters consistent.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use futures::future::join_all;
use rand::RngExt;

use super::fault_support::{
    Payer, assert_alive, check_invariants, checkout, count_of, wait_all_finished,
};
use crate::checkout_support::event_on_sale;
use crate::harness::TestApp;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;

const PAID: usize = 200;
const FREE: usize = 40;
const KILLS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_workers_during_checkouts() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    // One buyer per checkout: a participant has one open checkout per event.
    let buyers = join_all((0..PAID + FREE).map(|_| app.create_user(&[Role::Participant]))).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 2000), (0, 2000)], 10).await;

    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_STRIPE_API_BASE", &sandbox.base_url)
        .env("BOXOFFICE_RATE_LIMIT_PER_IP", "100000")
        .env("BOXOFFICE_RATE_LIMIT_PER_USER", "100000")
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *")
        .env("BOXOFFICE_STALLED_AFTER_SECS", "10");
    let mut api = BoxofficeProcess::start(&deployment, "serve").await;
    let api_url = api.base_url.clone().unwrap();
    let mut workers = vec![
        BoxofficeProcess::start(&deployment, "work").await,
        BoxofficeProcess::start(&deployment, "work").await,
    ];
    let payer = Payer::start(&app.db.url, &sandbox.base_url, "true");

    // The checkouts arrive in waves while the chaos goes on.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let started = Instant::now();
    let sender = {
        let (client, api_url, event_id) = (client.clone(), api_url.clone(), event.event_id);
        let (paid_type, free_type) = (event.ticket_types[0], event.ticket_types[1]);
        tokio::spawn(async move {
            let total = PAID + FREE;
            for wave in 0..12 {
                let requests =
                    (wave * total / 12..(wave + 1) * total / 12).map(|i| {
                        let (tt, key) = if i < PAID {
                            (paid_type, format!("paid-{i}"))
                        } else {
                            (free_type, format!("free-{i}"))
                        };
                        let buyer = &buyers[i % buyers.len()];
                        let quantity = 1 + (i % 3) as i32;
                        let (client, api_url) = (client.clone(), api_url.clone());
                        async move {
                            checkout(&client, &api_url, buyer, event_id, tt, quantity, &key).await
                        }
                    });
                for r in join_all(requests).await {
                    let (status, body) = r.unwrap();
                    assert_eq!(status, 202, "{body}");
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        })
    };

    // kill -9 a random worker at a random moment, restart it, again.
    for kill in 0..KILLS {
        let pause = rand::rng().random_range(800..2500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let victim = rand::rng().random_range(0..workers.len());
        kill_9(&mut workers[victim], kill + 1).await;
        let at = started.elapsed().as_secs_f64();
        // Sometimes both are down for a moment.
        if kill % 3 == 2 {
            let other = 1 - victim;
            kill_9(&mut workers[other], kill + 1).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            workers[other] = BoxofficeProcess::start(&deployment, "work").await;
        }
        workers[victim] = BoxofficeProcess::start(&deployment, "work").await;
        println!(
            "crash {}: worker {victim} killed at {at:.1} s and restarted",
            kill + 1
        );
    }
    sender.await.expect("every checkout accepted");
    for w in &mut workers {
        assert_alive(w, "after the last crash");
    }
    println!(
        "crash: {} checkouts accepted in {:.1} s",
        PAID + FREE,
        started.elapsed().as_secs_f64()
    );

    // Orphaned jobs come back after the 20 s orphan window; stalled runs after 10 s.
    let rows = wait_all_finished(&app.db.url, Duration::from_secs(240)).await;
    println!(
        "crash: all runs finished {:.1} s after the start: {rows:?}",
        started.elapsed().as_secs_f64()
    );
    let paid = payer.stop().await;
    let stats = sandbox.stats().await;
    let rows = check_invariants(&app.db.url, Some(&stats), &deployment.mail_dir()).await;
    assert_eq!(
        count_of(&rows, "completed") as usize,
        PAID + FREE,
        "every checkout completes: {rows:?}"
    );
    assert_eq!(paid as usize, PAID, "each paid run was paid once");
    assert_eq!(stats["charges_by_run_id"].as_object().unwrap().len(), PAID);
    for w in &mut workers {
        assert_alive(w, "at the end");
        assert!(!w.logs().contains("too many results"), "{}", w.logs());
    }
    assert_alive(&mut api, "at the end");
}

/// `kill -9` a worker, which must be running until then: one found exited
/// crashed by itself, and the kill would hide it.
async fn kill_9(worker: &mut BoxofficeProcess, crash: usize) {
    assert_alive(worker, &format!("before crash {crash}"));
    let status = worker
        .kill()
        .await
        .unwrap_or_else(|e| panic!("crash {crash}: kill -9 failed: {e}"));
    assert_eq!(
        status.signal(),
        Some(nix::sys::signal::Signal::SIGKILL as i32),
        "crash {crash}: the worker ended otherwise than by the kill ({status})"
    );
}
