//! A new run's first step, taken by the process that started the run.
//!
//! A checkout's first step is its hold. Taken by the API process right after
//! the run is committed, the buyer's `POST` answers with the decision (seats
//! held until a deadline, or sold out) instead of a run to poll until a worker
//! gets to it, and the run's start costs no trip through the outbox, Redis and
//! a worker. The step is the engine's own advance: the same hold taken ahead
//! (through the process's [`HoldBatcher`]), the same transaction, the same
//! history. Its remote command leaves through the outbox ([`Dispatch::Queue`]):
//! the starting process does not call the payment provider.
//!
//! The run's start message is written with the run, due only after
//! [`FIRST_STEP_GRACE`]: the backstop. It is deleted once the step is taken. If
//! the step fails, a start message due at once takes its place; if the process
//! dies before either, the backstop comes due and a worker takes the step. A
//! worker that takes it as well finds the run past its start and does nothing.

use boxoffice_models::DbPool;
use boxoffice_models::outbox;
use boxoffice_models::ticket_codes::TicketSigner;
use uuid::Uuid;

use super::executor::{Advanced, Dispatch, Trigger, advance_holding};
use super::hold_batcher::HoldBatcher;
use super::messages::{ADVANCE_QUEUE, AdvanceRun};

/// How long a run started with its first step taken by its starter waits
/// before a worker takes the step instead: longer than a step takes under a
/// flood, so that the backstop is deleted unused in the normal case.
pub const FIRST_STEP_GRACE: chrono::Duration = chrono::Duration::seconds(20);

/// Takes the first step of `run_id`, created with its start message
/// `backstop_id` due after [`FIRST_STEP_GRACE`], and drops that message
/// (`None`: a retry of the request that created the run, which does not know
/// the message; it finds nothing to do when it comes due). On a failure the
/// run is handed to the workers at once and the error returned.
pub async fn take(
    db: &DbPool,
    signer: &TicketSigner,
    batcher: &HoldBatcher,
    run_id: Uuid,
    backstop_id: Option<i64>,
) -> anyhow::Result<Advanced> {
    match advance_holding(
        db,
        signer,
        Some(batcher),
        run_id,
        Trigger::Poke,
        Dispatch::Queue,
    )
    .await
    {
        Ok(advanced) => {
            let Some(backstop_id) = backstop_id else {
                return Ok(advanced);
            };
            // A failed delete leaves a backstop that finds nothing to do.
            if let Err(e) = async {
                outbox::delete(&mut *db.get().await?, &[backstop_id]).await?;
                anyhow::Ok(())
            }
            .await
            {
                tracing::warn!(run_id = %run_id, error = %format!("{e:#}"), "could not drop a first step's backstop");
            }
            Ok(advanced)
        }
        Err(e) => {
            // Inserted, not updated: an insert due at once wakes the relay.
            let handed = async {
                let mut conn = db.get().await?;
                outbox::push(&mut conn, ADVANCE_QUEUE, &AdvanceRun { run_id }, None).await?;
                anyhow::Ok(())
            }
            .await;
            if let Err(h) = handed {
                tracing::warn!(run_id = %run_id, error = %format!("{h:#}"), "the first step failed and the run waits for its backstop");
            }
            Err(e)
        }
    }
}
