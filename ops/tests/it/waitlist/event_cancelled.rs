//! Cancelling an event ends its waitlist: entries still waiting end as `left`
//! and give their units back, so nothing waits for an event that will not be.

use boxoffice_models::users::Role;
use futures::future::join_all;

use super::support::{assert_invariants, entries, joined, sold_out};
use crate::harness::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_the_event_ends_its_waiting_entries() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let sold_out = sold_out(&app, 2, 1).await;
    let tt = sold_out.ticket_type();
    let event_id = sold_out.event.event_id;
    let waiters = join_all((0..3).map(|_| app.create_user(&[Role::Participant]))).await;
    for waiter in &waiters {
        joined(&app, waiter, &sold_out, 1).await;
    }
    let mut conn = app.raw_conn().await;
    assert_eq!(assert_invariants(&mut conn, tt).await.waiting_units, 3);

    let r = app
        .client
        .post(app.url(&format!("/v1/events/{event_id}/cancel")))
        .header("authorization", sold_out.organizer.bearer())
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "cancelling: {} {}",
        r.status(),
        r.text().await.unwrap()
    );

    let after = entries(&app, tt).await;
    let statuses: Vec<&str> = after.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["left", "left", "left"], "{after:?}");
    let counters = assert_invariants(&mut conn, tt).await;
    assert_eq!(counters.waiting_units, 0, "{counters:?}");
    println!("event cancelled with 3 waiting: entries {statuses:?}, waiting_units 0");
}
