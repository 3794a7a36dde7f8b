//! What one advance writes for its own run, sent together: its history, its
//! transition and its outbox messages (the remote command, the timer).

use boxoffice_models::outbox;
use boxoffice_models::workflow_runs::{self, Transition};
use boxoffice_models::workflow_steps::{self, NewStepRecord};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::messages::{ADVANCE_QUEUE, AdvanceRun, EFFECT_QUEUE, RunEffect};

/// What an advance writes for its own run: the history, the transition,
/// the remote command's message and the timer.
pub(super) struct StepWrites<'a> {
    pub(super) run_id: Uuid,
    pub(super) history: &'a [NewStepRecord],
    pub(super) transition: &'a Transition,
    /// The command and when its message is due (`None`: at once).
    pub(super) effect: Option<(&'a RunEffect, Option<DateTime<Utc>>)>,
    /// When the waiting run is to be looked at again.
    pub(super) timer: Option<DateTime<Utc>>,
}

impl StepWrites<'_> {
    /// Sends the writes together, one round trip instead of one per statement
    /// (diesel-async pipelines the statements of a connection awaited at
    /// once); inside the step's transaction they stand or fall together, in
    /// any order, as none reads what another writes. Returns the command's
    /// message id.
    pub(super) async fn send(&self, conn: &AsyncPgConnection) -> diesel::QueryResult<Option<i64>> {
        let effect = async {
            match self.effect {
                Some((effect, due)) => outbox::push(conn, EFFECT_QUEUE, effect, due)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        // The timer: a delayed "look at run R" (the sweep is the backstop).
        let timer = async {
            match self.timer {
                Some(deadline) => {
                    let message = AdvanceRun {
                        run_id: self.run_id,
                    };
                    outbox::push(conn, ADVANCE_QUEUE, &message, Some(deadline))
                        .await
                        .map(drop)
                }
                None => Ok(()),
            }
        };
        let ((), _version, backstop_id, ()) = futures::try_join!(
            workflow_steps::record_all(conn, self.history),
            workflow_runs::apply(conn, self.run_id, self.transition),
            effect,
            timer,
        )?;
        Ok(backstop_id)
    }
}
