//! Multi-unit entries under the serving policy: the first entry that does not
//! fit keeps freed units for itself for one window, then smaller entries
//! behind it are offered what it cannot use, and it is served as soon as
//! enough units come back.

use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use futures::future::join_all;

use super::support::{assert_invariants, entries, expire_checkouts, joined, sold_out_in};
use crate::checkout_support::{is_finished, order, start, started_run, wait_for};
use crate::harness::TestApp;
use crate::harness::wait;

const WINDOW: Duration = Duration::from_secs(4);

fn status<'a>(rows: &'a [super::support::EntryRow], id: &str) -> &'a str {
    rows.iter()
        .find(|e| e.id == id)
        .map(|e| e.status.as_str())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_entry_blocks_for_one_window_then_smaller_ones_are_backfilled() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers_with_head_wait(&sandbox.base_url, WINDOW);
    // Three checkouts hold 3, 4 and 3 units of a type of 10.
    let sold_out = sold_out_in(&app, &[3, 4, 3]).await;
    let tt = sold_out.ticket_type();
    let people = join_all((0..5).map(|_| app.create_user(&[Role::Participant]))).await;
    // Join order: a wants 4, b 1, c 2, d 3.
    let a = joined(&app, &people[0], &sold_out, 4).await;
    let b = joined(&app, &people[1], &sold_out, 1).await;
    let c = joined(&app, &people[2], &sold_out, 2).await;
    let d = joined(&app, &people[3], &sold_out, 3).await;

    // 3 units come back: `a` (4) is first and does not fit.
    expire_checkouts(&app, &sold_out.holding_runs[..1]).await;
    wait::until(Duration::from_secs(30), "a's clock started", || async {
        entries(&app, tt)
            .await
            .iter()
            .any(|e| e.id == a && e.blocked_since.is_some())
    })
    .await;
    let blocked_at = Instant::now();
    // Inside its window nobody behind it is offered, and the public gets nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = entries(&app, tt).await;
    for id in [&a, &b, &c, &d] {
        assert_eq!(status(&rows, id), "waiting", "{rows:?}");
    }
    let public = started_run(
        start(
            &app.base_url,
            &app.client,
            &people[4],
            order(&sold_out.event, 0, 1),
            None,
        )
        .await,
    )
    .await;
    let view = wait_for(
        &app,
        &people[4],
        &public,
        Duration::from_secs(30),
        is_finished,
    )
    .await;
    assert_eq!(view["error"]["code"], "sold_out", "{view}");

    // After the window, b (1) and c (2) take the 3 units a cannot use.
    wait::until(Duration::from_secs(30), "b and c offered", || async {
        let rows = entries(&app, tt).await;
        status(&rows, &b) == "offered" && status(&rows, &c) == "offered"
    })
    .await;
    let backfilled_after = blocked_at.elapsed();
    let rows = entries(&app, tt).await;
    assert_eq!(status(&rows, &a), "waiting");
    assert_eq!(
        status(&rows, &d),
        "waiting",
        "d (3) is behind a and does not fit"
    );
    assert!(
        rows.iter().any(|e| e.id == a && e.blocked_since.is_some()),
        "a's window starts again"
    );

    // 4 units come back: a is served at once, within its new window.
    expire_checkouts(&app, &sold_out.holding_runs[1..2]).await;
    wait::until(Duration::from_secs(30), "a offered", || async {
        status(&entries(&app, tt).await, &a) == "offered"
    })
    .await;
    assert_eq!(status(&entries(&app, tt).await, &d), "waiting");
    // The last 3 go to d.
    expire_checkouts(&app, &sold_out.holding_runs[2..]).await;
    wait::until(Duration::from_secs(30), "d offered", || async {
        status(&entries(&app, tt).await, &d) == "offered"
    })
    .await;
    let mut conn = app.raw_conn().await;
    let counters = assert_invariants(&mut conn, tt).await;
    assert_eq!(
        (counters.sold, counters.held, counters.waiting_units),
        (0, 10, 0)
    );
    println!(
        "point 2: entries 4,1,2,3 with 3 units free: the 4 blocked, the 1 and 2 were offered \
         {:.1}s after its clock started (window {WINDOW:?}); 4 more units went to the 4 at once, the last 3 to the 3",
        backfilled_after.as_secs_f64()
    );
}
