//! The suite's own databases: one per test, whose statements
//! `pg_stat_statements` counts only when the test asks. The server keeps one
//! table of counts for all its databases; filled by hundreds of test
//! databases, it evicted the counts that other tests were reading.

use boxoffice_models::testing::{StatementCounts, TestDatabase};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::checkout_support::statement_calls_in;

/// A statement with no constants, so that its text is counted as written.
const COUNTED: &str = "SELECT count(*) FROM pg_class";

#[tokio::test]
async fn a_test_database_counts_its_statements_only_when_the_test_asks() {
    let mut counted = Vec::new();
    for counts in [StatementCounts::Off, StatementCounts::TopLevel] {
        let db = TestDatabase::create_counting(counts).await.unwrap();
        let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
        conn.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .unwrap();
        for _ in 0..3 {
            diesel::sql_query(COUNTED).execute(&mut conn).await.unwrap();
        }
        counted.push((
            statement_calls_in(&mut conn, None, &format!("{COUNTED}%")).await,
            // Its creation, in the server's own database, is not counted
            // either: each name would be an entry of its own.
            statement_calls_in(
                &mut conn,
                Some("postgres"),
                &format!("CREATE DATABASE {}%", db.name),
            )
            .await,
        ));
    }
    assert_eq!(
        counted,
        [(0, 0), (3, 0)],
        "(calls, creations): off, then top level"
    );
}
