//! After the load: every run must reach its end by itself. Abandoned
//! checkouts end when their one-minute holds expire; reminders were due
//! inside the soak; the only thing a run can still be waiting for is a
//! participant's answer to a waitlist offer, so the buyers decline the offers
//! they still have, as a participant who no longer wants the seat would.
//! Then the books are audited, against the provider's records too.

use std::collections::BTreeMap;
use std::time::Duration;

use boxoffice_models::ledger_audit::{self, Violation, provider};
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use reqwest::Method;
use tokio::time::Instant;

use super::client::Api;
use super::load::open_offers;
use super::seed::World;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Statuses a run can still move from.
const UNFINISHED: [&str; 3] = ["running", "waiting", "compensating"];

pub struct Drained {
    /// kind → status → runs.
    pub runs: BTreeMap<String, BTreeMap<String, i64>>,
    pub unfinished: i64,
    pub took: Duration,
    pub offers_declined: u64,
}

/// Waits up to `limit` for every run to finish.
pub async fn finish(
    api: &Api,
    world: &World,
    database_url: &str,
    limit: Duration,
) -> anyhow::Result<Drained> {
    let started = Instant::now();
    let mut declined = 0;
    loop {
        declined += decline_open_offers(api, world).await;
        // Reconnect each time: cheap, and nothing to repair after a fault.
        let runs = run_counts(database_url).await?;
        let unfinished: i64 = runs
            .values()
            .flat_map(|by_status| by_status.iter())
            .filter(|(status, _)| UNFINISHED.contains(&status.as_str()))
            .map(|(_, n)| n)
            .sum();
        if unfinished == 0 || started.elapsed() > limit {
            return Ok(Drained {
                runs,
                unfinished,
                took: started.elapsed(),
                offers_declined: declined,
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn decline_open_offers(api: &Api, world: &World) -> u64 {
    let mut declined = 0;
    for bearer in &world.buyers {
        for id in open_offers(api, bearer).await.unwrap_or_default() {
            if api
                .call(
                    Method::POST,
                    &format!("/waitlist/{id}/decline"),
                    bearer,
                    None,
                    None,
                )
                .await
                .is_some_and(|a| a.is_success())
            {
                declined += 1;
            }
        }
    }
    declined
}

async fn run_counts(database_url: &str) -> anyhow::Result<BTreeMap<String, BTreeMap<String, i64>>> {
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    let rows: Vec<Count> = diesel::sql_query(
        "SELECT kind, status, count(*) AS n FROM workflow_runs GROUP BY kind, status",
    )
    .load(&mut conn)
    .await?;
    let mut runs: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for row in rows {
        runs.entry(row.kind).or_default().insert(row.status, row.n);
    }
    Ok(runs)
}

/// The ledger audit of every event, and the books against the provider.
pub async fn audit(
    database_url: &str,
    provider_base: &str,
    provider_key: &str,
) -> anyhow::Result<Vec<Violation>> {
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    let mut violations = ledger_audit::audit(&mut conn, None).await?;
    let books = ledger_audit::payment_records(&mut conn, None).await?;
    let (intents, refunds) =
        crate::commands::audit::provider_records(provider_base, provider_key).await?;
    violations.extend(provider::compare(&books, &intents, &refunds, false));
    Ok(violations)
}
