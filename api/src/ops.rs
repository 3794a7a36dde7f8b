//! The operator's tools as the API sees them: a trait object in [`crate::AppState`].
//! The implementation lives with the workers' engine (built by `ops`), so the
//! API keeps its layering (it may not import `workers`).

use boxoffice_workflows::operator::{
    ActionOutcome, Actor, DeadJob, Fate, OperatorError, QueuesReport, RunDetail, RunSummary,
};
use futures::future::BoxFuture;
use uuid::Uuid;

pub type OpsResult<'a, T> = BoxFuture<'a, Result<T, OperatorError>>;

pub trait OpsBackend: Send + Sync {
    fn dead_jobs(&self, queue: Option<String>) -> OpsResult<'_, Vec<DeadJob>>;
    fn dead_job(&self, id: String) -> OpsResult<'_, DeadJob>;
    fn retry_dead(&self, id: String, actor: Actor) -> OpsResult<'_, ActionOutcome>;
    fn retry_all_dead(&self, queue: Option<String>, actor: Actor) -> OpsResult<'_, ActionOutcome>;
    fn discard_dead(&self, id: String, fate: Fate, actor: Actor) -> OpsResult<'_, ActionOutcome>;
    fn list_runs(
        &self,
        status: Option<String>,
        kind: Option<String>,
        limit: i64,
    ) -> OpsResult<'_, Vec<RunSummary>>;
    fn show_run(&self, id: Uuid) -> OpsResult<'_, RunDetail>;
    fn retry_run(&self, id: Uuid, actor: Actor) -> OpsResult<'_, ActionOutcome>;
    fn cancel_run(&self, id: Uuid, actor: Actor) -> OpsResult<'_, ActionOutcome>;
    fn queues(&self) -> OpsResult<'_, QueuesReport>;
}
