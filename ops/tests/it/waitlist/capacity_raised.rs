//! Capacity raised by the organizer while people wait: the new units are
//! offered to them before any public sale.

use std::sync::Arc;
use std::time::Duration;

use boxoffice_models::users::Role;
use futures::future::join_all;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::support::{
    RUN_FINISH_LIMIT, assert_invariants, entries, joined, run_finished, sample_invariants, sold_out,
};
use crate::checkout_support::{SaleEvent, order, start};
use crate::harness::TestApp;
use crate::harness::wait;

const WAITING: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raised_capacity_goes_to_the_waiting_before_any_public_sale() {
    // The public keeps trying from one address, as fast as it is answered:
    // no rate limit in the way of the race this test is about.
    let app = TestApp::builder()
        .config(|c| c.rate_limits.per_ip_per_minute = 1_000_000)
        .spawn()
        .await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let sold_out = sold_out(&app, 5, 1).await;
    let tt = sold_out.ticket_type();
    let event_id = sold_out.event.event_id;
    let waiters = join_all((0..WAITING).map(|_| app.create_user(&[Role::Participant]))).await;
    for waiter in &waiters {
        joined(&app, waiter, &sold_out, 1).await;
    }
    let buyers = join_all((0..20).map(|_| app.create_user(&[Role::Participant]))).await;
    let stop = CancellationToken::new();
    let sampler = sample_invariants(app.db.url.clone(), tt, stop.clone());
    let app = Arc::new(app);
    let done = CancellationToken::new();
    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|buyer| {
            let (app, done) = (app.clone(), done.clone());
            tokio::spawn(async move {
                let event = SaleEvent {
                    event_id,
                    ticket_types: vec![tt],
                };
                let mut outcomes = Vec::new();
                let mut conn = app.raw_conn().await;
                while !done.is_cancelled() {
                    let r = start(
                        &app.base_url,
                        &app.client,
                        &buyer,
                        order(&event, 0, 1),
                        None,
                    )
                    .await;
                    let body: serde_json::Value = r.json().await.unwrap();
                    let run = body["run_id"].as_str().unwrap().to_owned();
                    let row = run_finished(&mut conn, &run, RUN_FINISH_LIMIT).await;
                    outcomes.push(row.error_code.unwrap_or_default());
                }
                outcomes
            })
        })
        .collect();

    // The organizer raises the capacity by exactly what the waitlist wants.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app
        .client
        .patch(app.url(&format!("/v1/events/{event_id}/ticket-types/{tt}")))
        .header("authorization", sold_out.organizer.bearer())
        .json(&json!({ "capacity": 5 + WAITING }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait::until(Duration::from_secs(30), "everyone offered", || async {
        entries(&app, tt)
            .await
            .iter()
            .all(|e| e.status == "offered")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    done.cancel();
    let outcomes: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    stop.cancel();
    let samples = sampler.await.unwrap();
    assert!(!outcomes.is_empty());
    assert!(
        outcomes.iter().all(|code| code == "sold_out"),
        "{outcomes:?}"
    );
    let mut conn = app.raw_conn().await;
    let c = assert_invariants(&mut conn, tt).await;
    assert_eq!(
        (c.capacity, c.sold, c.held, c.waiting_units),
        (15, 0, 15, 0),
        "{c:?}"
    );
    println!(
        "point 6: capacity 5 -> 15 with {WAITING} waiting: all {WAITING} offered, {} public attempts all sold_out, {samples} invariant samples",
        outcomes.len()
    );
}
