//! A run as its owner sees it: the fields every kind shares, and the kind's
//! own status view (written by the engine with every transition), so this
//! route never needs to know a kind.

use boxoffice_models::workflow_runs::Run;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::change_feed::RunView;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    pub id: Uuid,
    /// `checkout`, `refund`, `event_cancellation`, ...
    pub kind: String,
    /// running | waiting | compensating | completed | compensated | failed | cancelled
    pub status: String,
    pub step: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The run that started this one (a cancellation's refunds), if any.
    pub parent_id: Option<Uuid>,
    /// The kind's own fields, side by side with the common ones: for a
    /// checkout `expires_at`, `payment` (while paying: `intent_id`,
    /// `client_secret`, `amount_minor`, `currency`), `booking_id`,
    /// `ticket_ids`, `amount_minor`, `currency`, `error` (`code`, `detail`);
    /// for a refund `booking_id`, `ticket_ids`, `amount_minor`, `currency`,
    /// `refund_id`, `state`, `error`; for an event cancellation its progress.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl WorkflowView {
    /// The view as the status route sends it: JSON rendered once, kept with
    /// what the route checks (the owner, the version).
    pub fn rendered(run: &Run) -> RunView {
        RunView {
            owner_id: run.owner_id,
            version: run.version,
            // A map of strings to JSON values always serialises.
            body: serde_json::to_vec(&WorkflowView::of(run))
                .unwrap_or_default()
                .into(),
        }
    }

    pub fn of(run: &Run) -> Self {
        WorkflowView {
            id: run.id,
            kind: run.kind.clone(),
            status: run.status.clone(),
            step: run.step.clone(),
            version: run.version,
            created_at: run.created_at,
            updated_at: run.updated_at,
            finished_at: run.finished_at,
            parent_id: run.parent_id,
            detail: run.view.as_object().cloned().unwrap_or_default(),
        }
    }
}
