//! The raw single-row rate of the same Postgres, with no Boxoffice in between:
//! many connections doing the engine's hold statement, auto-committed, on one
//! row. This is the ceiling a hot ticket type can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// What one baseline run measured.
#[derive(Debug, Clone, Copy)]
pub struct RawRate {
    pub holds: u64,
    pub elapsed: Duration,
    pub connections: usize,
}

impl RawRate {
    pub fn per_sec(&self) -> f64 {
        self.holds as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

const HOLD_ONE: &str =
    "UPDATE ticket_types SET held = held + 1 WHERE id = $1 AND capacity - sold - held >= 1";

/// `connections` tasks, each on its own connection, hold one seat at a time on
/// `ticket_type` for `duration`; then every seat is released in one statement.
/// The row's capacity must be large enough never to run out.
pub async fn measure(
    database_url: &str,
    ticket_type: Uuid,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<RawRate> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(
            AsyncPgConnection::establish(database_url)
                .await
                .context("connecting for the raw baseline")?,
        );
    }
    let holds = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let holds = holds.clone();
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let n = diesel::sql_query(HOLD_ONE)
                    .bind::<SqlUuid, _>(ticket_type)
                    .execute(&mut conn)
                    .await?;
                holds.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(conn)
        });
    }
    let mut last = None;
    while let Some(joined) = tasks.join_next().await {
        last = Some(joined.context("a baseline task panicked")??);
    }
    let elapsed = started.elapsed();
    if let Some(mut conn) = last {
        diesel::sql_query("UPDATE ticket_types SET held = 0 WHERE id = $1")
            .bind::<SqlUuid, _>(ticket_type)
            .execute(&mut conn)
            .await
            .context("releasing the baseline's seats")?;
    }
    Ok(RawRate {
        holds: AtomicU64::load(&holds, Ordering::Relaxed),
        elapsed,
        connections,
    })
}
