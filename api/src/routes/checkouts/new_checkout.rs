//! A checkout about to start, as both ways of starting it (gathered with
//! others, or alone) hold it: the order's few fields, from which the run's
//! state and row are built when it is written.

use boxoffice_models::workflow_runs::NewRun;
use boxoffice_workflows::checkout::{Checkout, CheckoutState, Item};
use boxoffice_workflows::engine::Workflow;
use uuid::Uuid;

use super::start::CheckoutRequest;
use super::validate::ValidCheckout;
use crate::error::{AppError, AppResult};

/// A checkout about to start: what its run is made of, before its state
/// and its row are built.
pub struct NewCheckout {
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub items: Vec<Item>,
    pub coupon_code: Option<String>,
    pub hold_minutes: i64,
    pub correlation_id: Option<String>,
    pub key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
}

impl NewCheckout {
    /// The checkout a valid request starts, with a new run id.
    pub fn of(
        user_id: Uuid,
        req: &CheckoutRequest,
        valid: ValidCheckout,
        correlation_id: Option<String>,
        key: &Option<String>,
        request_hash: &Option<Vec<u8>>,
    ) -> Self {
        NewCheckout {
            id: Uuid::now_v7(),
            user_id,
            event_id: req.event_id,
            items: valid.items,
            coupon_code: valid.coupon_code,
            hold_minutes: valid.hold_minutes,
            correlation_id,
            key: key.clone(),
            request_hash: request_hash.clone(),
        }
    }

    /// Its tickets in all.
    pub fn requested(&self) -> i64 {
        self.items.iter().map(|i| i64::from(i.quantity)).sum()
    }

    /// The run's row to insert.
    pub fn new_run(&self) -> AppResult<NewRun> {
        let checkout = &CheckoutState::new(
            self.user_id,
            self.event_id,
            self.items.clone(),
            self.coupon_code.clone(),
            self.hold_minutes,
        );
        Ok(NewRun {
            id: self.id,
            kind: Checkout::KIND.into(),
            status: "running".into(),
            step: Checkout::initial_step().into(),
            state: serde_json::to_value(checkout).map_err(AppError::internal)?,
            correlation_id: self.correlation_id.clone(),
            owner_id: Some(self.user_id),
            idempotency_key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            view: serde_json::to_value(Checkout::view(checkout)).map_err(AppError::internal)?,
            parent_id: None,
            child_key: None,
        })
    }
}
