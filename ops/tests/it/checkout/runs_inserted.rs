//! Runs inserted together (`workflow_runs::insert_many`, how a batch of
//! checkout starts is written): the database answers with what it filled in
//! of each row, and the run the batch builds of that and of what it sent is
//! the row the database holds.

use std::collections::HashMap;

use boxoffice_models::users::Role;
use boxoffice_models::workflow_runs::{self, Stamped, Transition};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::fixtures::{buyers_checkout_runs, event_on_sale};
use crate::harness::TestApp;

#[tokio::test]
async fn a_run_inserted_as_started_is_built_of_what_was_sent_and_what_the_database_filled_in() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1500, 10)], 15).await;
    let keys = [
        Some("first-key"),
        None,
        Some("used-key"),
        Some("decided-key"),
    ];
    let news = buyers_checkout_runs(&app, &event, &keys).await;
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    // The third buyer's key started a run before this batch.
    let mut earlier = news[2].clone();
    earlier.id = Uuid::now_v7();
    workflow_runs::insert_idempotent(&mut conn, &earlier)
        .await
        .unwrap();
    let sold_out = Transition {
        status: "compensated".into(),
        step: "released".into(),
        state: json!({ "error": "sold_out" }),
        wake_at: None,
        pending_effect: None,
        attempts: 0,
        last_error: None,
        finished_at: Some(chrono::Utc::now()),
        view: json!({ "status": "compensated", "error": "sold_out" }),
    };
    let rows = vec![
        (&news[0], None),
        (&news[1], None),
        (&news[2], None),
        (&news[3], Some(&sold_out)),
    ];

    let stamped = workflow_runs::insert_many(&mut conn, &rows).await.unwrap();

    let stamped: HashMap<Uuid, Stamped> = stamped.into_iter().map(|s| (s.id, s)).collect();
    let mut ids: Vec<Uuid> = stamped.keys().copied().collect();
    ids.sort();
    let mut expected = vec![news[0].id, news[1].id, news[3].id];
    expected.sort();
    assert_eq!(
        ids, expected,
        "the run whose key started one before is not inserted, nor answered"
    );
    for new in [&news[0], &news[1]] {
        let held = workflow_runs::find(&mut conn, new.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(new.inserted_as(&stamped[&new.id]), held, "run {}", new.id);
    }
    let decided = workflow_runs::find(&mut conn, news[3].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (decided.status.as_str(), decided.version),
        ("compensated", stamped[&news[3].id].version),
        "a decided run's answer carries the version it was inserted with"
    );
    assert!(
        workflow_runs::find(&mut conn, news[2].id)
            .await
            .unwrap()
            .is_none()
    );
}
