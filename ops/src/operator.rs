//! The API's [`OpsBackend`] over the workers' operator tools, so `/v1/ops` and
//! `boxoffice dlq|runs|queues` run the same code.

use std::sync::Arc;

use boxoffice_api::ops::{OpsBackend, OpsResult};
use boxoffice_workers::operator::Operator;
use boxoffice_workflows::operator::{
    ActionOutcome, Actor, DeadJob, Fate, QueuesReport, RunDetail, RunSummary,
};
use uuid::Uuid;

use crate::config::Settings;
use crate::runtime::Connections;

pub struct OperatorBackend(pub Operator);

/// The operator's tools on a process's connections.
pub fn operator(settings: &Settings, conns: &Connections) -> anyhow::Result<Operator> {
    Ok(operator_with(
        conns,
        &settings.redis_prefix,
        settings.ticket_signer()?,
    ))
}

pub fn operator_with(
    conns: &Connections,
    prefix: &str,
    signer: boxoffice_models::ticket_codes::TicketSigner,
) -> Operator {
    Operator {
        db: conns.db.clone(),
        redis: conns.redis_patient.clone(),
        prefix: prefix.to_owned(),
        ticket_signer: Arc::new(signer),
    }
}

impl OpsBackend for OperatorBackend {
    fn dead_jobs(&self, queue: Option<String>) -> OpsResult<'_, Vec<DeadJob>> {
        Box::pin(async move { self.0.dead_jobs(queue.as_deref()).await })
    }
    fn dead_job(&self, id: String) -> OpsResult<'_, DeadJob> {
        Box::pin(async move { self.0.dead_job(&id).await })
    }
    fn retry_dead(&self, id: String, actor: Actor) -> OpsResult<'_, ActionOutcome> {
        Box::pin(async move { self.0.retry_dead(&id, &actor).await })
    }
    fn retry_all_dead(&self, queue: Option<String>, actor: Actor) -> OpsResult<'_, ActionOutcome> {
        Box::pin(async move { self.0.retry_all_dead(queue.as_deref(), &actor).await })
    }
    fn discard_dead(&self, id: String, fate: Fate, actor: Actor) -> OpsResult<'_, ActionOutcome> {
        Box::pin(async move { self.0.discard_dead(&id, fate, &actor).await })
    }
    fn list_runs(
        &self,
        status: Option<String>,
        kind: Option<String>,
        limit: i64,
    ) -> OpsResult<'_, Vec<RunSummary>> {
        Box::pin(async move {
            self.0
                .list_runs(status.as_deref(), kind.as_deref(), limit)
                .await
        })
    }
    fn show_run(&self, id: Uuid) -> OpsResult<'_, RunDetail> {
        Box::pin(async move { self.0.show_run(id).await })
    }
    fn retry_run(&self, id: Uuid, actor: Actor) -> OpsResult<'_, ActionOutcome> {
        Box::pin(async move { self.0.retry_run(id, &actor).await })
    }
    fn cancel_run(&self, id: Uuid, actor: Actor) -> OpsResult<'_, ActionOutcome> {
        Box::pin(async move { self.0.cancel_run(id, &actor).await })
    }
    fn queues(&self) -> OpsResult<'_, QueuesReport> {
        Box::pin(async move { self.0.queues().await })
    }
}
