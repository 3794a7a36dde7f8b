//! The raw single-row rate of the same Postgres, with no Boxoffice in between:
//! many connections doing the bare hold `UPDATE`, auto-committed, on one row.
//! This is the ceiling a hot ticket type can reach.
//!
//! Then the same with Boxoffice's own hold ([`holds::hold`]: the guarded
//! `UPDATE` and the hold row in one statement, per run): how much of that
//! ceiling the hold itself keeps, apart from the rest of a checkout. And its
//! sale of a hold ([`holds::convert_for_run`], one transaction each): what a
//! type's counters let its confirmations reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use boxoffice_models::holds::{self, HoldOutcome, Line};
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

/// The schema of the system measured: a `--baseline-bin` build may predate
/// migration 000017, whose ticket type's row keeps `taken` (sold + held)
/// instead of `sold` and `held`. Each is measured by its own bare hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    Taken,
    SoldAndHeld,
}

impl Schema {
    async fn of(conn: &mut AsyncPgConnection) -> anyhow::Result<Self> {
        #[derive(diesel::QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            taken: bool,
        }
        let found: Found =
            diesel::sql_query("SELECT to_regclass('ticket_type_rows') IS NOT NULL AS taken")
                .get_result(conn)
                .await
                .context("reading which schema the system has")?;
        Ok(if found.taken {
            Self::Taken
        } else {
            Self::SoldAndHeld
        })
    }

    fn hold_one(self) -> &'static str {
        match self {
            Self::Taken => {
                "UPDATE ticket_type_rows SET taken = taken + 1 WHERE id = $1 AND capacity - taken >= 1"
            }
            Self::SoldAndHeld => {
                "UPDATE ticket_types SET held = held + 1 WHERE id = $1 AND capacity - sold - held >= 1"
            }
        }
    }

    /// Counts `$2` more units held, for hold rows written without the hold.
    fn held_more(self) -> &'static str {
        match self {
            Self::Taken => "UPDATE ticket_type_rows SET taken = taken + $2 WHERE id = $1",
            Self::SoldAndHeld => "UPDATE ticket_types SET held = held + $2 WHERE id = $1",
        }
    }

    /// Nothing held or sold any more.
    fn release_all(self) -> &'static str {
        match self {
            Self::Taken => {
                "WITH counted AS (DELETE FROM ticket_type_sales WHERE ticket_type_id = $1)
                 UPDATE ticket_type_rows SET taken = 0 WHERE id = $1"
            }
            Self::SoldAndHeld => "UPDATE ticket_types SET held = 0, sold = 0 WHERE id = $1",
        }
    }
}

async fn connect(database_url: &str, connections: usize) -> anyhow::Result<Vec<AsyncPgConnection>> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(
            AsyncPgConnection::establish(database_url)
                .await
                .context("connecting for the raw baseline")?,
        );
    }
    Ok(conns)
}

/// `connections` tasks, each on its own connection, hold one seat at a time on
/// `ticket_type` for `duration`; then every seat is released in one statement.
/// The row's capacity must be large enough never to run out.
pub async fn measure(
    database_url: &str,
    ticket_type: Uuid,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<RawRate> {
    let mut conns = connect(database_url, connections).await?;
    let schema = Schema::of(&mut conns[0]).await?;
    let holds = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let holds = holds.clone();
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let n = diesel::sql_query(schema.hold_one())
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
        release_seats(&mut conn, schema, ticket_type).await?;
    }
    Ok(RawRate {
        holds: AtomicU64::load(&holds, Ordering::Relaxed),
        elapsed,
        connections,
    })
}

/// Runs made for [`measure_hold`] (a hold row names its run): more than
/// the holds a few seconds can take.
const HOLD_RUNS: i64 = 20_000;

/// Like [`measure`], with Boxoffice's hold (`holds::hold`) for a fresh
/// run each time instead of the bare `UPDATE`. The runs, their holds and the
/// seats are removed afterwards. `None` on a schema older than this build's
/// hold (a `--baseline-bin` before migration 000017).
pub async fn measure_hold(
    database_url: &str,
    ticket_type: Uuid,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Option<RawRate>> {
    let mut setup = AsyncPgConnection::establish(database_url).await?;
    let schema = Schema::of(&mut setup).await?;
    if schema != Schema::Taken {
        return Ok(None);
    }
    // Runs that no message names and no sweep touches within seconds: only
    // the hold rows point at them.
    let run_ids: Vec<RunId> = diesel::sql_query(
        "INSERT INTO workflow_runs (id, kind, status, step, state)
         SELECT gen_random_uuid(), 'reminder', 'running', 'bench_baseline', '{}'::jsonb
           FROM generate_series(1, $1)
         RETURNING id",
    )
    .bind::<diesel::sql_types::BigInt, _>(HOLD_RUNS)
    .load(&mut setup)
    .await
    .context("making runs for the hold baseline")?;
    let line = Line {
        ticket_type_id: ticket_type,
        quantity: 1,
    };
    let expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let rate = per_run(
        database_url,
        run_ids.into_iter().map(|r| r.id).collect(),
        connections,
        duration,
        Once::Hold { line, expires_at },
    )
    .await;
    remove_runs(&mut setup, schema, ticket_type).await?;
    rate.map(Some)
}

/// Holds written for [`measure_sales`] per second measured: more than it
/// sells on this machine, and not many more, since they stay as dead rows of
/// `holds` until a vacuum.
const SALE_HOLDS_PER_SEC: f64 = 5_000.0;

/// Like [`measure`], with Boxoffice's sale of a hold (`holds::convert_for_run`
/// in a transaction of its own, committed) instead of the bare `UPDATE`: the
/// part of a confirmation that moves the type's counters. Before migration
/// 000017 each sale's commit updated the type's row, so a type's sales
/// followed each other as the bare holds do; now they are counted on the
/// type's sales rows. The holds are written beforehand and removed after.
pub async fn measure_sales(
    database_url: &str,
    ticket_type: Uuid,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<RawRate> {
    let mut setup = AsyncPgConnection::establish(database_url).await?;
    let schema = Schema::of(&mut setup).await?;
    let run_ids: Vec<RunId> = diesel::sql_query(
        "WITH runs AS (
              INSERT INTO workflow_runs (id, kind, status, step, state)
              SELECT gen_random_uuid(), 'reminder', 'running', 'bench_baseline', '{}'::jsonb
                FROM generate_series(1, $1)
              RETURNING id
          )
          INSERT INTO holds (id, run_id, ticket_type_id, quantity, expires_at)
          SELECT gen_random_uuid(), id, $2, 1, now() + interval '1 hour' FROM runs
          RETURNING run_id AS id",
    )
    .bind::<diesel::sql_types::BigInt, _>(
        (duration.as_secs_f64() * SALE_HOLDS_PER_SEC).ceil() as i64
    )
    .bind::<SqlUuid, _>(ticket_type)
    .load(&mut setup)
    .await
    .context("holding seats for the sales baseline")?;
    diesel::sql_query(schema.held_more())
        .bind::<SqlUuid, _>(ticket_type)
        .bind::<diesel::sql_types::Integer, _>(run_ids.len() as i32)
        .execute(&mut setup)
        .await
        .context("counting the sales baseline's seats held")?;
    let rate = per_run(
        database_url,
        run_ids.into_iter().map(|r| r.id).collect(),
        connections,
        duration,
        Once::Sale,
    )
    .await;
    remove_runs(&mut setup, schema, ticket_type).await?;
    rate
}

/// What a baseline does once per run.
#[derive(Debug, Clone, Copy)]
enum Once {
    /// Holds the line for the run (`holds::hold`).
    Hold {
        line: Line,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// Sells the run's hold, in a transaction of its own.
    Sale,
}

impl Once {
    /// The units it took.
    async fn run(self, conn: &mut AsyncPgConnection, run_id: Uuid) -> anyhow::Result<u64> {
        Ok(match self {
            Self::Hold { line, expires_at } => {
                match holds::hold(conn, run_id, &[line], expires_at).await? {
                    HoldOutcome::Held(_) => 1,
                    _ => 0,
                }
            }
            Self::Sale => {
                conn.transaction::<_, diesel::result::Error, _>(async |c| {
                    holds::convert_for_run(c, run_id).await
                })
                .await? as u64
            }
        })
    }
}

/// `connections` tasks, each on its own connection, do `once` for one run at
/// a time, taken from `runs`, until `duration` is over or the runs are.
async fn per_run(
    database_url: &str,
    runs: Vec<Uuid>,
    connections: usize,
    duration: Duration,
    once: Once,
) -> anyhow::Result<RawRate> {
    let runs = Arc::new(std::sync::Mutex::new(runs));
    let conns = connect(database_url, connections).await?;
    let units = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let (units, runs) = (units.clone(), runs.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let Some(run_id) = runs.lock().ok().and_then(|mut r| r.pop()) else {
                    break;
                };
                units.fetch_add(once.run(&mut conn, run_id).await?, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a baseline task panicked")??;
    }
    Ok(RawRate {
        holds: AtomicU64::load(&units, Ordering::Relaxed),
        elapsed: started.elapsed(),
        connections,
    })
}

/// Removes a baseline's runs (their holds go with them, ON DELETE CASCADE)
/// and gives back its seats.
async fn remove_runs(
    setup: &mut AsyncPgConnection,
    schema: Schema,
    ticket_type: Uuid,
) -> anyhow::Result<()> {
    diesel::sql_query("DELETE FROM workflow_runs WHERE step = 'bench_baseline'")
        .execute(setup)
        .await
        .context("removing a baseline's runs")?;
    release_seats(setup, schema, ticket_type).await
}

/// Gives back every seat a baseline held or sold on its own ticket type.
async fn release_seats(
    conn: &mut AsyncPgConnection,
    schema: Schema,
    ticket_type: Uuid,
) -> anyhow::Result<()> {
    diesel::sql_query(schema.release_all())
        .bind::<SqlUuid, _>(ticket_type)
        .execute(conn)
        .await
        .context("releasing the baseline's seats")?;
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct RunId {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}
