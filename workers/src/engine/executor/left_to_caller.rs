//! What an advance whose writes are left to its caller (a batch that
//! inserts or sends them with other runs') leaves, and answers.

use boxoffice_models::workflow_runs::Run;
use chrono::{DateTime, Utc};

use super::super::advance_io::Advanced;
use super::{Current, count_move};
use crate::kinds::Effects;

/// Leaves a run's `writes` in the caller's `slot`.
pub(super) fn leave<T>(slot: &std::sync::Mutex<Option<T>>, writes: T) -> anyhow::Result<()> {
    *slot
        .lock()
        .map_err(|_| anyhow::anyhow!("the slot of a run's writes was poisoned"))? = Some(writes);
    Ok(())
}

/// The answer of an advance whose writes are left to its caller, its move
/// counted now.
pub(super) fn left_to_caller<W: Effects>(
    run: &Run,
    cur: &Current<W::State, W::Remote>,
    view: serde_json::Value,
    version: Option<i32>,
    now: DateTime<Utc>,
) -> Advanced {
    count_move::<W>(run, &cur.step, cur.status, now);
    Advanced {
        found: true,
        changed: true,
        queued: false,
        status: Some(cur.status.as_str().into()),
        step: Some(cur.step.clone()),
        view: Some(view),
        version,
        issued: None,
    }
}
