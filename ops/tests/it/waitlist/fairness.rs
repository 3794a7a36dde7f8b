//! Units freed while people wait go to the waitlist in serving order (vip
//! first, then by join time), while public buyers keep trying: they get none.

use std::sync::Arc;
use std::time::Duration;

use boxoffice_models::users::Role;
use futures::future::join_all;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::support::{
    RUN_FINISH_LIMIT, assert_invariants, emails_to, entries, expire_checkouts, joined,
    run_finished, sample_invariants, sold_out,
};
use crate::checkout_support::{order, start};
use crate::harness::TestApp;
use crate::harness::wait;

const CAPACITY: i32 = 20;
const STANDARD: usize = 25;
const VIP: usize = 5;
const PUBLIC_BUYERS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn freed_units_go_to_vip_then_the_earliest_standard_entries_never_to_the_public() {
    // The public keeps trying from one address, as fast as it is answered:
    // no rate limit in the way of the race this test is about.
    let app = TestApp::builder()
        .config(|c| c.rate_limits.per_ip_per_minute = 1_000_000)
        .spawn()
        .await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    // 20 checkouts of one unit each hold the whole type.
    let sold_out = sold_out(&app, CAPACITY, CAPACITY as usize).await;
    let tt = sold_out.ticket_type();
    let event_id = sold_out.event.event_id;

    let waiters =
        join_all((0..STANDARD + VIP).map(|_| app.create_user(&[Role::Participant]))).await;
    let mut entry_ids = Vec::new();
    for waiter in &waiters {
        entry_ids.push(joined(&app, waiter, &sold_out, 1).await);
    }
    // The last five to join are the organizer's guests.
    for entry_id in &entry_ids[STANDARD..] {
        let r = app
            .client
            .patch(app.url(&format!("/v1/events/{event_id}/waitlist/{entry_id}")))
            .header("authorization", sold_out.organizer.bearer())
            .json(&json!({ "priority": "vip" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    let buyers = join_all((0..PUBLIC_BUYERS).map(|_| app.create_user(&[Role::Participant]))).await;
    let stop = CancellationToken::new();
    let sampler = sample_invariants(app.db.url.clone(), tt, stop.clone());
    let buyers_done = CancellationToken::new();
    let app = Arc::new(app);
    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|buyer| {
            let (app, event, done) = (app.clone(), sold_out.event.event_id, buyers_done.clone());
            let ticket_types = vec![tt];
            tokio::spawn(async move {
                let event = crate::checkout_support::SaleEvent {
                    event_id: event,
                    ticket_types,
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
                    assert_eq!(r.status(), 202);
                    let body: serde_json::Value = r.json().await.unwrap();
                    let run = body["run_id"].as_str().unwrap().to_owned();
                    let row = run_finished(&mut conn, &run, RUN_FINISH_LIMIT).await;
                    outcomes.push((row.status, row.error_code.unwrap_or_default()));
                }
                outcomes
            })
        })
        .collect();

    // Every holding checkout expires while the buyers keep trying.
    tokio::time::sleep(Duration::from_millis(500)).await;
    expire_checkouts(&app, &sold_out.holding_runs).await;
    wait::until(RUN_FINISH_LIMIT, "20 entries offered", || async {
        entries(&app, tt)
            .await
            .iter()
            .filter(|e| e.status == "offered")
            .count()
            == CAPACITY as usize
    })
    .await;
    // The buyers go on a while with every unit offered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    buyers_done.cancel();
    let outcomes: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    stop.cancel();
    let samples = sampler.await.unwrap();

    // The public got nothing: every attempt ended sold out.
    assert!(!outcomes.is_empty());
    for (status, code) in &outcomes {
        assert_eq!(status, "compensated", "{outcomes:?}");
        assert_eq!(code, "sold_out", "{outcomes:?}");
    }
    // The five vip entries and the fifteen earliest standard ones.
    let rows = entries(&app, tt).await;
    let offered: Vec<&str> = rows
        .iter()
        .filter(|e| e.status == "offered")
        .map(|e| e.id.as_str())
        .collect();
    let mut expected: Vec<&str> = entry_ids[STANDARD..]
        .iter()
        .chain(&entry_ids[..CAPACITY as usize - VIP])
        .map(String::as_str)
        .collect();
    expected.sort_unstable();
    let mut got = offered.clone();
    got.sort_unstable();
    assert_eq!(got, expected);
    let mut conn = app.raw_conn().await;
    let c = assert_invariants(&mut conn, tt).await;
    assert_eq!(
        (c.sold, c.held, c.waiting_units),
        (0, CAPACITY, 10),
        "{c:?}"
    );
    // An entry is offered before its offer's email is queued (the next step
    // of its run): wait until all of them are, then check who got one.
    wait::until(RUN_FINISH_LIMIT, "every offer's email queued", || async {
        let mut told = 0;
        for waiter in &waiters {
            told += emails_to(&app, waiter.id, "waitlist_offer").await;
        }
        told >= i64::from(CAPACITY)
    })
    .await;
    for (waiter, entry_id) in waiters.iter().zip(&entry_ids) {
        let told = emails_to(&app, waiter.id, "waitlist_offer").await;
        assert_eq!(told, i64::from(offered.contains(&entry_id.as_str())));
    }
    println!(
        "point 1: {} public checkouts, all sold_out; offered 5 vip + 15 earliest standard of 30; \
         {samples} invariant samples (sold + held <= capacity, held = active holds incl. offers)",
        outcomes.len()
    );
}
