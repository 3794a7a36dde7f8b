//! What the cleanup keeps and what it removes, rule by rule, against a real
//! database (the load and once-per-tick behaviour: `system::cleanup_under_load`).

use boxoffice_models::testing::TestDatabase;
use boxoffice_workers::jobs::cleanup::{self, Retention};
use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(format!("SELECT ({sql})::bigint AS n"))
        .get_result::<N>(conn)
        .await
        .unwrap()
        .n
}

#[tokio::test]
async fn each_retention_rule_removes_only_what_is_past_it() {
    let db = TestDatabase::create().await.unwrap();
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    conn.batch_execute(
        "INSERT INTO users (id, email, display_name, password_hash)
           VALUES ('00000000-0000-0000-0000-0000000000aa', 'p@example.com', 'P', 'x');
         INSERT INTO workflow_runs (id, kind, status, step, state, view, finished_at) VALUES
           ('00000000-0000-0000-0000-000000000001', 'checkout', 'completed', 'completed', '{}', '{}', now() - interval '40 days'),
           ('00000000-0000-0000-0000-000000000002', 'checkout', 'cancelled', 'cancelled', '{}', '{}', now() - interval '10 days');
         -- A stale timer of the old run, and one of the recent run.
         INSERT INTO outbox (queue, payload, available_at) VALUES
           ('advance_run', '{\"run_id\": \"00000000-0000-0000-0000-000000000001\"}', now() + interval '1 day'),
           ('advance_run', '{\"run_id\": \"00000000-0000-0000-0000-000000000002\"}', now() + interval '1 day');
         -- An unconsumed webhook id from long ago stays (it was never delivered);
         -- consumed ones go after the webhook retention, never before 7 days.
         INSERT INTO workflow_signals (run_id, name, dedupe_key, received_at, consumed_at) VALUES
           ('00000000-0000-0000-0000-000000000002', 'payment_succeeded', 'stripe:evt_a', now() - interval '8 days', now() - interval '8 days'),
           ('00000000-0000-0000-0000-000000000002', 'payment_succeeded', 'stripe:evt_b', now() - interval '6 days', now() - interval '6 days'),
           ('00000000-0000-0000-0000-000000000002', 'payment_succeeded', 'stripe:evt_c', now() - interval '30 days', NULL);
         INSERT INTO notifications (id, dedupe_key, kind, recipient, subject, body_text, status, sent_at) VALUES
           (gen_random_uuid(), 'old-sent', 'reminder', 'p@example.com', 'Old', 'old body', 'sent', now() - interval '100 days'),
           (gen_random_uuid(), 'new-sent', 'reminder', 'p@example.com', 'New', 'new body', 'sent', now() - interval '1 day'),
           (gen_random_uuid(), 'old-failed', 'reminder', 'p@example.com', 'Failed', 'failed body', 'failed', NULL);
         INSERT INTO audit_log (actor_id, action, target_type, target_id, created_at) VALUES
           (NULL, 'old', 'run', 'x', now() - interval '400 days'),
           (NULL, 'new', 'run', 'x', now() - interval '1 day');",
    )
    .await
    .unwrap();

    // Audit rows are kept unless configured; webhook ids at least a week
    // even when configured shorter.
    let retention = Retention {
        run_history_days: 30,
        webhook_days: 1,
        email_body_days: 90,
        audit_days: None,
    };
    let removed = cleanup::clean(&mut conn, &retention, Utc::now())
        .await
        .unwrap();
    assert_eq!(removed.timers, 1, "the old run's timer goes");
    assert_eq!(
        removed.webhooks, 1,
        "only the consumed webhook id older than 7 days goes"
    );
    assert_eq!(
        removed.email_bodies, 1,
        "the old sent email's body is blanked"
    );
    assert_eq!(removed.audit, 0, "audit rows are kept unless configured");
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM outbox WHERE payload->>'run_id' = '00000000-0000-0000-0000-000000000002'").await,
        1
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM workflow_signals WHERE dedupe_key IN ('stripe:evt_b', 'stripe:evt_c')").await,
        2
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM notifications WHERE body_text = '' AND dedupe_key = 'old-sent' AND subject = 'Old'").await,
        1,
        "the row and its subject stay"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM notifications WHERE body_text <> ''"
        )
        .await,
        2,
        "a recent or unsent email keeps its body"
    );

    // Configured: audit rows past it go. A second pass finds nothing else.
    let removed = cleanup::clean(
        &mut conn,
        &Retention {
            audit_days: Some(365),
            ..retention
        },
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(removed.audit, 1);
    assert_eq!(removed.total(), 1, "nothing is removed twice");
    assert_eq!(count(&mut conn, "SELECT count(*) FROM audit_log").await, 1);
}
