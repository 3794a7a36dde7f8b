//! The session purge is scheduled in every `work` process (apalis-cron has no
//! leader election), yet runs once per tick.

use std::collections::BTreeMap;
use std::time::Duration;

use boxoffice_models::scheduled_job_runs;
use boxoffice_models::testing::TestDatabase;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::harness::processes::{BoxofficeProcess, Deployment};
use crate::harness::redis_url;

#[tokio::test]
async fn purge_runs_once_per_tick_with_two_worker_processes() {
    let db = TestDatabase::create().await.unwrap();
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    // One session long expired, one revoked an hour ago, one live.
    conn.batch_execute(
        "INSERT INTO users (id, email, display_name, password_hash) \
         VALUES ('00000000-0000-0000-0000-0000000000aa', 'p@example.com', 'P', 'x');
         INSERT INTO sessions (id, user_id, expires_at, revoked_at) VALUES
           (gen_random_uuid(), '00000000-0000-0000-0000-0000000000aa', now() - interval '1 day', NULL),
           (gen_random_uuid(), '00000000-0000-0000-0000-0000000000aa', now() + interval '1 day', now() - interval '1 hour'),
           (gen_random_uuid(), '00000000-0000-0000-0000-0000000000aa', now() + interval '1 day', NULL);",
    )
    .await
    .unwrap();

    let deployment = Deployment::new(
        &db.url,
        &redis_url(),
        &format!("t{}", uuid::Uuid::new_v4().simple()),
    )
    .env("BOXOFFICE_SCHEDULE_PURGE_SESSIONS", "* * * * * *");
    let mut first = BoxofficeProcess::start(&deployment, "work").await;
    let mut second = BoxofficeProcess::start(&deployment, "work").await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        first.terminate().await,
        "first worker did not stop cleanly:\n{}",
        first.logs()
    );
    assert!(
        second.terminate().await,
        "second worker did not stop cleanly:\n{}",
        second.logs()
    );

    let runs = scheduled_job_runs::list_for_job(&mut conn, "purge_sessions")
        .await
        .unwrap();
    let mut per_tick: BTreeMap<_, Vec<String>> = BTreeMap::new();
    for run in &runs {
        per_tick
            .entry(run.scheduled_for)
            .or_default()
            .push(run.worker.clone());
    }
    assert!(
        per_tick.len() >= 4,
        "expected a run per second, got {} ticks",
        per_tick.len()
    );
    for (tick, workers) in &per_tick {
        assert_eq!(
            workers.len(),
            1,
            "tick {tick} ran {} times: {workers:?}",
            workers.len()
        );
    }
    // Both processes fired ticks; the queue let each tick through once.
    let total_purged: i64 = runs.iter().map(|r| r.affected_rows).sum();
    assert_eq!(
        total_purged, 2,
        "the expired and the revoked session are purged, once"
    );

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let left: Count = diesel::sql_query("SELECT count(*) AS n FROM sessions")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(left.n, 1, "the live session stays");
}
