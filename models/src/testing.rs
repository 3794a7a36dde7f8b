//! Test databases: one per test, cloned from a migrated template.
//!
//! The template is built once per migration set (its name carries a hash of the
//! embedded migrations), under an advisory lock so parallel test processes
//! agree on who builds it. Cloning a template is far faster than migrating.

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// A fresh database of its own, migrated, for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

/// The server URL the test suite was given, from `BOXOFFICE_TEST_DATABASE_URL`.
pub fn server_url() -> String {
    std::env::var("BOXOFFICE_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "BOXOFFICE_TEST_DATABASE_URL is not set: run the test suite with ops/scripts/test, \
             which starts its own Postgres and Redis"
        )
    })
}

fn with_database(server_url: &str, db: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server_url, String::new()),
    };
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    format!("{root}/{db}{query}")
}

/// The template's name carries a digest of every migration file (computed by
/// build.rs), so editing or adding a migration builds a new template.
fn template_name() -> String {
    format!(
        "boxoffice_template_{}",
        include_str!(concat!(env!("OUT_DIR"), "/migrations_digest.txt"))
    )
}

/// Which of a test database's statements `pg_stat_statements` counts.
///
/// The server keeps one table of counts for all its databases (5,000
/// entries by default). The suite's hundreds of databases, each with its own
/// entries, would fill it, and a full table evicts the entries run least:
/// often the very ones a test that counts statements is reading. So only
/// the databases of those tests are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementCounts {
    /// Nothing (every test that does not read the counts).
    Off,
    /// The statements sessions send.
    TopLevel,
    /// Those and the statements that functions and triggers run.
    All,
}

impl StatementCounts {
    fn track(self) -> &'static str {
        match self {
            StatementCounts::Off => "none",
            StatementCounts::TopLevel => "top",
            StatementCounts::All => "all",
        }
    }
}

impl TestDatabase {
    /// Creates a database for one test, cloned from the migrated template,
    /// whose statements are not counted.
    pub async fn create() -> anyhow::Result<Self> {
        Self::create_counting(StatementCounts::Off).await
    }

    /// [`TestDatabase::create`], its sessions' statements counted as
    /// `counts` says (for sessions opened after this returns).
    pub async fn create_counting(counts: StatementCounts) -> anyhow::Result<Self> {
        let server = server_url();
        let admin_url = with_database(&server, "postgres");
        let template = template_name();
        ensure_template(&server, &admin_url, &template).await?;

        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&admin_url).await?;
        // Each database's name makes these statements new entries too.
        sql_query("SET pg_stat_statements.track = 'none'")
            .execute(&mut admin)
            .await?;
        sql_query(format!(
            "CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"
        ))
        .execute(&mut admin)
        .await?;
        sql_query(format!(
            "ALTER DATABASE {name} SET pg_stat_statements.track = '{}'",
            counts.track()
        ))
        .execute(&mut admin)
        .await?;
        Ok(Self {
            url: with_database(&server, &name),
            name,
        })
    }
}

async fn ensure_template(server: &str, admin_url: &str, template: &str) -> anyhow::Result<()> {
    let mut admin = AsyncPgConnection::establish(admin_url).await?;
    // One builder at a time across every test process.
    sql_query("SELECT pg_advisory_lock(7414171)")
        .execute(&mut admin)
        .await?;
    let result = build_template_if_missing(server, &mut admin, template).await;
    sql_query("SELECT pg_advisory_unlock(7414171)")
        .execute(&mut admin)
        .await?;
    result
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

async fn build_template_if_missing(
    server: &str,
    admin: &mut AsyncPgConnection,
    template: &str,
) -> anyhow::Result<()> {
    let found: Exists = sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate) AS exists",
    )
    .bind::<diesel::sql_types::Text, _>(template)
    .get_result(admin)
    .await?;
    if found.exists {
        return Ok(());
    }
    // A half-built template from a crashed run is not marked as template: rebuild it.
    sql_query(format!("DROP DATABASE IF EXISTS {template}"))
        .execute(admin)
        .await?;
    sql_query(format!("CREATE DATABASE {template}"))
        .execute(admin)
        .await?;
    crate::migrations::run_pending(&with_database(server, template)).await?;
    sql_query(format!(
        "ALTER DATABASE {template} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
    ))
    .execute(admin)
    .await?;
    Ok(())
}
