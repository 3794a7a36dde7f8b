//! What the database recorded about the sale: holds, hold decisions, the
//! gaps between a run's jobs, webhook → completed, and the capacity counters.

use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::stats::Samples;

/// What the database recorded about the sale.
pub struct DatabaseFigures {
    pub holds: i64,
    /// From the first hold's transaction to the last hold's commit (or, where
    /// Postgres keeps no commit times, to the last hold's transaction).
    pub holds_span_secs: f64,
    /// Whether `holds_span_secs` ends at the last hold's commit.
    pub holds_span_to_commit: bool,
    pub decisions: i64,
    pub decisions_span_secs: f64,
    pub step_gaps: Samples,
    /// The same gaps by the steps of their two jobs, most gaps first.
    pub step_gaps_by_step: Vec<StepGaps>,
    pub first_step_waits: Samples,
    pub webhook_to_completed: Samples,
    pub capacity: i32,
    pub sold: i32,
    pub held: i32,
    pub tickets: i64,
}

#[derive(diesel::QueryableByName)]
struct CountSpan {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Double)]
    span: f64,
}

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = Bool)]
    enabled: bool,
}

#[derive(diesel::QueryableByName)]
struct Millis {
    #[diesel(sql_type = Double)]
    ms: f64,
}

/// The gaps between the jobs of one pair of steps.
pub struct StepGaps {
    /// `start → creating_payment_intent`: the first step each of the two
    /// jobs recorded.
    pub steps: String,
    pub gaps: Samples,
}

#[derive(diesel::QueryableByName)]
struct Gap {
    #[diesel(sql_type = Double)]
    ms: f64,
    /// The gap from the run's creation to its first job.
    #[diesel(sql_type = Bool)]
    first: bool,
    /// The first step each of the two jobs recorded (`created` for the
    /// run's creation).
    #[diesel(sql_type = Text)]
    from_step: String,
    #[diesel(sql_type = Text)]
    to_step: String,
}

#[derive(diesel::QueryableByName)]
struct Counters {
    #[diesel(sql_type = Integer)]
    capacity: i32,
    #[diesel(sql_type = Integer)]
    sold: i32,
    #[diesel(sql_type = Integer)]
    held: i32,
    #[diesel(sql_type = BigInt)]
    tickets: i64,
}

pub async fn read(
    conn: &mut diesel_async::AsyncPgConnection,
    runs: &[Uuid],
    ticket_type: Uuid,
) -> anyhow::Result<DatabaseFigures> {
    // A hold's row carries its transaction's start: the holds of a batch all
    // carry one time, and the last batch's would count with none of its own
    // time. A hold counts as taken when the step of its run that took it
    // commits (step records are never updated, so their row version is the
    // one that transaction wrote).
    let commit_times =
        diesel::sql_query("SELECT current_setting('track_commit_timestamp') = 'on' AS enabled")
            .get_result::<Setting>(conn)
            .await?
            .enabled;
    let holds: CountSpan = diesel::sql_query(if commit_times {
        "SELECT count(*)::bigint AS n,
                COALESCE(EXTRACT(EPOCH FROM max(taken.at) - min(h.created_at)), 0)::float8 AS span
           FROM holds h
           LEFT JOIN LATERAL (
                SELECT max(pg_xact_commit_timestamp(s.xmin)) AS at
                  FROM workflow_steps s WHERE s.run_id = h.run_id AND s.step = 'holding'
           ) taken ON true
          WHERE h.ticket_type_id = $1"
    } else {
        "SELECT count(*)::bigint AS n,
                COALESCE(EXTRACT(EPOCH FROM max(created_at) - min(created_at)), 0)::float8 AS span
           FROM holds WHERE ticket_type_id = $1"
    })
    .bind::<SqlUuid, _>(ticket_type)
    .get_result(conn)
    .await?;
    // Every run that reached the hold, whether it got a seat or was sold out.
    let decisions: CountSpan = diesel::sql_query(
        "SELECT count(DISTINCT run_id)::bigint AS n,
                COALESCE(EXTRACT(EPOCH FROM max(started_at) - min(started_at)), 0)::float8 AS span
           FROM workflow_steps WHERE run_id = ANY($1) AND step = 'holding'",
    )
    .bind::<Array<SqlUuid>, _>(runs)
    .get_result(conn)
    .await?;
    // One job of a run = its step records with one start time. A gap is from
    // one job to the next, except the wait for the buyer's payment (a gap that
    // ends in a signal). The gap from the run's creation to its first job is the
    // queue wait of a new run, reported on its own line.
    let gaps: Vec<Gap> = diesel::sql_query(
        "WITH jobs AS (
              SELECT run_id, started_at AS at, (array_agg(step ORDER BY id))[1] AS step,
                     bool_or(input LIKE 'signal:%') AS by_signal, false AS created
                FROM workflow_steps WHERE run_id = ANY($1) GROUP BY run_id, started_at
              UNION ALL
              SELECT id, created_at, 'created', false, true FROM workflow_runs WHERE id = ANY($1)
          ), gaps AS (
              SELECT by_signal,
                     lag(created) OVER w AS after_creation,
                     lag(step) OVER w AS from_step, step AS to_step,
                     EXTRACT(EPOCH FROM at - lag(at) OVER w) * 1000 AS gap
                FROM jobs WINDOW w AS (PARTITION BY run_id ORDER BY at)
          )
          SELECT gap::float8 AS ms, after_creation AS first, from_step, to_step
            FROM gaps WHERE gap IS NOT NULL AND NOT by_signal",
    )
    .bind::<Array<SqlUuid>, _>(runs)
    .load(conn)
    .await?;
    let webhooks: Vec<Millis> = diesel::sql_query(
        "SELECT (EXTRACT(EPOCH FROM r.finished_at - s.received_at) * 1000)::float8 AS ms
           FROM workflow_runs r
           JOIN LATERAL (SELECT min(received_at) AS received_at FROM workflow_signals WHERE run_id = r.id) s ON true
          WHERE r.id = ANY($1) AND r.status = 'completed' AND s.received_at IS NOT NULL AND r.finished_at IS NOT NULL",
    )
    .bind::<Array<SqlUuid>, _>(runs)
    .load(conn)
    .await?;
    let counters: Counters = diesel::sql_query(
        "SELECT capacity, sold, held,
                (SELECT count(*) FROM tickets WHERE ticket_type_id = $1)::bigint AS tickets
           FROM ticket_types WHERE id = $1",
    )
    .bind::<SqlUuid, _>(ticket_type)
    .get_result(conn)
    .await?;
    let (mut step_gaps, mut first_step_waits) = (Samples::default(), Samples::default());
    let mut step_gaps_by_step: Vec<StepGaps> = Vec::new();
    for g in gaps {
        if g.first {
            first_step_waits.push_millis(g.ms);
            continue;
        }
        step_gaps.push_millis(g.ms);
        let steps = format!("{} → {}", g.from_step, g.to_step);
        let at = match step_gaps_by_step.iter().position(|s| s.steps == steps) {
            Some(at) => at,
            None => {
                step_gaps_by_step.push(StepGaps {
                    steps,
                    gaps: Samples::default(),
                });
                step_gaps_by_step.len() - 1
            }
        };
        step_gaps_by_step[at].gaps.push_millis(g.ms);
    }
    step_gaps_by_step.sort_by(|a, b| b.gaps.len().cmp(&a.gaps.len()).then(a.steps.cmp(&b.steps)));
    let mut webhook_to_completed = Samples::default();
    webhooks
        .iter()
        .for_each(|w| webhook_to_completed.push_millis(w.ms));
    Ok(DatabaseFigures {
        holds: holds.n,
        holds_span_secs: holds.span,
        holds_span_to_commit: commit_times,
        decisions: decisions.n,
        decisions_span_secs: decisions.span,
        step_gaps,
        step_gaps_by_step,
        first_step_waits,
        webhook_to_completed,
        capacity: counters.capacity,
        sold: counters.sold,
        held: counters.held,
        tickets: counters.tickets,
    })
}
