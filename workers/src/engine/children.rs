//! Child runs, inside the parent's or the child's transaction: a parent
//! starts a child, and a child's end reaches its parent as a signal.

use boxoffice_models::workflow_runs::{self, Run};
use boxoffice_models::workflow_signals;
use boxoffice_workflows::engine::{ChildEnd, ChildStart, RunStatus};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::messages::CHILD_ENDED_SIGNAL;

/// Starts a child run in the parent's transaction; false when it was started before.
pub(super) async fn start(
    conn: &mut AsyncPgConnection,
    parent: &Run,
    child: &ChildStart,
) -> anyhow::Result<bool> {
    let new = workflow_runs::NewRun {
        id: Uuid::now_v7(),
        kind: child.kind.to_owned(),
        status: RunStatus::Running.as_str().into(),
        step: child.step.to_owned(),
        state: child.state.clone(),
        correlation_id: parent.correlation_id.clone(),
        owner_id: child.owner_id,
        idempotency_key: None,
        request_hash: None,
        view: child.view.clone(),
        parent_id: Some(parent.id),
        child_key: Some(child.key.clone()),
    };
    let started = workflow_runs::start_child(conn, &new).await?.is_some();
    if started {
        metrics::counter!("workflows_started_total", "kind" => child.kind).increment(1);
    }
    Ok(started)
}

/// Tells the parent that a child ended: a signal (deduplicated per child),
/// delivered through the outbox like any other.
pub(super) async fn tell_parent(
    conn: &mut AsyncPgConnection,
    parent_id: Uuid,
    end: &ChildEnd,
) -> anyhow::Result<()> {
    workflow_signals::record(
        conn,
        workflow_signals::NewSignal {
            run_id: parent_id,
            name: CHILD_ENDED_SIGNAL.into(),
            dedupe_key: format!("child_ended:{}", end.run_id),
            payload: serde_json::to_value(end)?,
        },
    )
    .await?;
    Ok(())
}
