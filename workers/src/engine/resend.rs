//! What a run waits for, sent again outside an advance: a failed remote
//! command's next attempt, and a stalled run's message (lost, perhaps, with
//! Redis's data). Both lock the run and send nothing once it has moved on.

use boxoffice_models::DbPool;
use boxoffice_models::outbox;
use boxoffice_models::workflow_runs;
use boxoffice_models::workflow_steps::{self, NewStepRecord};
use chrono::Utc;
use diesel_async::AsyncConnection;
use uuid::Uuid;

use super::messages::{ADVANCE_QUEUE, AdvanceRun, EFFECT_QUEUE, RunEffect};

/// A remote command failed and will be tried again after `delay`: counts the
/// attempt on the run and queues the retry, if the run still waits on it.
/// The command's backstop message `dropping`, if it has one, is deleted in
/// the same transaction: the retry's own message carries the command from
/// there (and a run that moved on needs neither).
pub async fn schedule_retry(
    db: &DbPool,
    effect: &RunEffect,
    delay: std::time::Duration,
    error: &str,
    dropping: Option<i64>,
) -> anyhow::Result<bool> {
    let mut conn = db.get().await?;
    let now = Utc::now();
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        if let Some(id) = dropping {
            outbox::delete_one(conn, id).await?;
        }
        let Some(run) = workflow_runs::lock(conn, effect.run_id).await? else {
            return Ok(false);
        };
        if run.pending_effect.as_ref() != Some(&effect.command) {
            return Ok(false); // stale: the run moved on
        }
        let err =
            serde_json::json!({ "effect": effect.key, "attempt": effect.attempt, "error": error });
        let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        workflow_runs::record_attempt_failure(conn, run.id, &err, at).await?;
        workflow_steps::record(
            conn,
            &NewStepRecord {
                run_id: run.id,
                step: run.step.clone(),
                attempt: effect.attempt as i32,
                input: format!("remote:{}", effect.key),
                outcome: "retrying".into(),
                error: Some(error.to_owned()),
                version: run.version,
                started_at: now,
            },
        )
        .await?;
        let next = RunEffect {
            attempt: effect.attempt + 1,
            ..effect.clone()
        };
        outbox::push(conn, EFFECT_QUEUE, &next, Some(at)).await?;
        Ok(true)
    })
    .await
}

/// Re-sends what a stalled run is waiting for (its message may have been lost
/// with Redis's data). Harmless when the original message is still around.
pub async fn redrive(db: &DbPool, run_id: Uuid) -> anyhow::Result<bool> {
    let mut conn = db.get().await?;
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        let Some(run) = workflow_runs::lock(conn, run_id).await? else {
            return Ok(false);
        };
        if !matches!(run.status.as_str(), "running" | "compensating") {
            return Ok(false);
        }
        match RunEffect::pending_of(&run)? {
            Some(effect) => outbox::push(conn, EFFECT_QUEUE, &effect, None).await?,
            None => outbox::push(conn, ADVANCE_QUEUE, &AdvanceRun::look_at(run_id), None).await?,
        };
        workflow_runs::touch(conn, run_id).await?;
        Ok(true)
    })
    .await
}
