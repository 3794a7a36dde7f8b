//! A waitlist offer's deadline passes while no worker runs (the only one was
//! `kill -9`ed): after restart, and a second `kill -9` during the recovery,
//! the next entry is offered exactly once and the expired participant is told.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use serde_json::json;

use super::fault_support::{assert_alive, connect, scalar};
use crate::checkout_support::event_on_sale;
use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::wait;
use crate::harness::{TestApp, counts_moved_sql, redis_url};
use crate::waitlist::support::{assert_invariants, expire_offer, join, sql, status_of};

async fn kill_9(worker: &mut BoxofficeProcess, what: &str) {
    assert_alive(worker, what);
    let status = worker.kill().await.expect("kill -9");
    assert_eq!(
        status.signal(),
        Some(nix::sys::signal::Signal::SIGKILL as i32),
        "{what}: the worker ended otherwise than by the kill ({status})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_that_expires_while_workers_are_down_goes_to_the_next_entry_once() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let first = app.create_user(&[Role::Participant]).await;
    let second = app.create_user(&[Role::Participant]).await;
    // One unit, sold.
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 1)], 15).await;
    let tt = event.ticket_types[0];
    sql(&app, &counts_moved_sql(tt, 1, 0)).await;
    let mut entries = Vec::new();
    for who in [&first, &second] {
        let r = join(
            &app,
            who,
            event.event_id,
            json!({ "ticket_type_id": tt, "quantity": 1 }),
        )
        .await;
        assert_eq!(r.status(), 201);
        let body: serde_json::Value = r.json().await.unwrap();
        entries.push(body["id"].as_str().unwrap().to_owned());
    }

    let deployment = Deployment::new(&app.db.url, &redis_url(), &app.redis_prefix)
        .env("BOXOFFICE_SCHEDULE_SWEEP_RUNS", "* * * * * *")
        .env("BOXOFFICE_STALLED_AFTER_SECS", "5");
    let mut worker = BoxofficeProcess::start(&deployment, "work").await;
    // The organizer adds one unit: it is offered to the first entry.
    let r = app
        .client
        .patch(app.url(&format!("/v1/events/{}/ticket-types/{tt}", event.event_id)))
        .header("authorization", organizer.bearer())
        .json(&json!({ "capacity": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait::until(
        Duration::from_secs(60),
        "the first entry offered",
        || async { status_of(&app, &entries[0]).await == "offered" },
    )
    .await;
    // kill -9 the only worker once the offer waits for an answer (its email
    // step done), and let the deadline pass while no worker runs.
    expire_offer(&app, &entries[0]).await;
    kill_9(&mut worker, "before the deadline").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        status_of(&app, &entries[0]).await,
        "offered",
        "no worker ran"
    );
    assert_eq!(status_of(&app, &entries[1]).await, "waiting");

    // Two workers come back; one is killed again during the recovery.
    let started = Instant::now();
    let mut workers = vec![
        BoxofficeProcess::start(&deployment, "work").await,
        BoxofficeProcess::start(&deployment, "work").await,
    ];
    tokio::time::sleep(Duration::from_millis(700)).await;
    kill_9(&mut workers[0], "during the recovery").await;
    workers[0] = BoxofficeProcess::start(&deployment, "work").await;
    wait::until(
        Duration::from_secs(90),
        "the second entry offered",
        || async { status_of(&app, &entries[1]).await == "offered" },
    )
    .await;
    let recovered = started.elapsed();
    assert_eq!(status_of(&app, &entries[0]).await, "expired");
    // Let every sweep that could offer again run a few ticks.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut conn = connect(&app.db.url).await;
    let offers = scalar(
        &mut conn,
        &format!(
            "SELECT count(*) FROM workflow_runs WHERE kind = 'waitlist_offer' AND state->>'entry_id' = '{}'",
            entries[1]
        ),
    )
    .await;
    assert_eq!(offers, 1, "offered exactly once");
    let offer_emails = scalar(
        &mut conn,
        &format!(
            "SELECT count(*) FROM notifications WHERE user_id = '{}' AND kind = 'waitlist_offer'",
            second.id
        ),
    )
    .await;
    assert_eq!(offer_emails, 1);
    let c = assert_invariants(&mut conn, tt).await;
    assert_eq!(
        (c.capacity, c.sold, c.held, c.waiting_units),
        (2, 1, 1, 0),
        "{c:?}"
    );
    // The expired participant is told, by an email actually written out.
    let mail_dir = deployment.mail_dir();
    wait::until(Duration::from_secs(60), "the expiry email sent", || async {
        std::fs::read_dir(&mail_dir).is_ok_and(|files| {
            files.filter_map(Result::ok).any(|f| {
                std::fs::read_to_string(f.path())
                    .is_ok_and(|text| text.contains(&first.email) && text.contains("has expired"))
            })
        })
    })
    .await;
    for w in &mut workers {
        assert_alive(w, "at the end");
    }
    println!(
        "point 3: offer deadline passed with no worker; after restart (and a kill -9 during it) \
         the next entry was offered once, {:.1}s later; the expired participant was emailed",
        recovered.as_secs_f64()
    );
}
