//! Runs moved together (`workflow_runs::apply_many`, how a batch's first
//! steps are written): one statement, each run its own transition, exactly as
//! a statement per run would write it, and kept prepared on its connection.

use boxoffice_models::users::Role;
use boxoffice_models::workflow_runs::{self, Run, Transition};
use chrono::{DateTime, Duration, Utc};
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use super::fixtures::{buyers_checkout_runs, event_on_sale};
use crate::harness::TestApp;

#[derive(QueryableByName)]
struct Runs {
    #[diesel(sql_type = BigInt)]
    runs: i64,
}

/// Microseconds: what Postgres keeps of a time.
fn micros(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(|at| at.timestamp_micros())
}

fn assert_moved(run: &Run, t: &Transition, version: i32) {
    assert_eq!(
        (run.status.as_str(), run.step.as_str(), run.version),
        (t.status.as_str(), t.step.as_str(), version),
        "run {}",
        run.id
    );
    assert_eq!(run.state, t.state);
    assert_eq!(micros(run.wake_at), micros(t.wake_at));
    assert_eq!(run.pending_effect, t.pending_effect);
    assert_eq!(run.attempts, t.attempts);
    assert_eq!(run.last_error, t.last_error);
    assert_eq!(micros(run.finished_at), micros(t.finished_at));
    assert_eq!(run.view, t.view);
}

#[tokio::test]
async fn runs_moved_together_each_take_their_own_transition_in_one_prepared_statement() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1500, 10)], 15).await;
    let news = buyers_checkout_runs(&app, &event, &[None, None, None]).await;
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let rows: Vec<_> = news.iter().map(|n| (n, None)).collect();
    workflow_runs::insert_many(&mut conn, &rows).await.unwrap();

    let now = Utc::now();
    let waiting = Transition {
        status: "waiting".into(),
        step: "awaiting_payment".into(),
        state: json!({ "intent": "pi_1", "n": 1 }),
        wake_at: Some(now + Duration::minutes(15)),
        pending_effect: None,
        attempts: 0,
        last_error: None,
        finished_at: None,
        view: json!({ "step": "awaiting_payment" }),
    };
    let ended = Transition {
        status: "compensated".into(),
        step: "released".into(),
        state: json!({ "error": "sold_out" }),
        wake_at: None,
        pending_effect: Some(json!({ "cancel_intent": "pi_2" })),
        attempts: 2,
        last_error: Some(json!({ "code": "provider_unavailable" })),
        finished_at: Some(now),
        view: json!({ "status": "compensated" }),
    };
    let (a, b, untouched) = (news[0].id, news[1].id, news[2].id);
    let nobody = Uuid::now_v7();
    let mut moved =
        workflow_runs::apply_many(&conn, &[(a, &waiting), (nobody, &waiting), (b, &ended)])
            .await
            .unwrap();
    moved.sort();
    let mut expected = vec![(a, 2), (b, 2)];
    expected.sort();
    assert_eq!(
        moved, expected,
        "a run that is not there is not in the answer"
    );

    let read = async |conn: &mut AsyncPgConnection, id: Uuid| {
        workflow_runs::find(conn, id).await.unwrap().unwrap()
    };
    assert_moved(&read(&mut conn, a).await, &waiting, 2);
    assert_moved(&read(&mut conn, b).await, &ended, 2);
    let still = read(&mut conn, untouched).await;
    assert_eq!((still.status.as_str(), still.version), ("running", 1));

    // Again on the same connection: the prepared statement runs a second time.
    let moved = workflow_runs::apply_many(&conn, &[(a, &ended)])
        .await
        .unwrap();
    assert_eq!(moved, vec![(a, 3)]);
    assert_moved(&read(&mut conn, a).await, &ended, 3);
    let runs: Runs = diesel::sql_query(
        "SELECT (generic_plans + custom_plans)::bigint AS runs FROM pg_prepared_statements
          WHERE statement LIKE 'UPDATE workflow_runs r%unnest(%'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(runs.runs, 2, "prepared once, run twice");
}
