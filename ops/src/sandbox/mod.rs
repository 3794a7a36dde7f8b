//! The sandbox payment provider: a local HTTP server speaking the subset of
//! Stripe's API that Boxoffice uses, so development, tests and benchmarks need
//! no outside account.
//!
//! # What it speaks
//! - Stripe's API (form-encoded, `Authorization: Bearer <key>`, `Idempotency-Key`
//!   honoured: the same key with the same parameters replays the first response
//!   and never makes a second intent or refund; with other parameters it is
//!   Stripe's `idempotency_error`): `POST /v1/payment_intents`,
//!   `GET /v1/payment_intents/{id}`, `POST /v1/payment_intents/{id}/cancel`
//!   (a succeeded or cancelled intent → 400 `payment_intent_unexpected_state`,
//!   with the intent in the error, as Stripe does), `POST /v1/refunds`
//!   (`payment_intent`, `amount`, `reason`, `metadata[…]`; more than is left
//!   of the charge → 400 `amount_too_large`, nothing left →
//!   `charge_already_refunded`; a refund's answer may be `pending` or
//!   `failed`, see the switches) and `GET /v1/refunds/{id}`.
//! - Controls for tests and people (no key needed):
//!   - `POST /sandbox/payment_intents/{id}/succeed` (`?force=true` also pays a
//!     cancelled intent, standing in for a payment that was in flight while we
//!     cancelled) and `/fail` (the card is declined; the intent stays payable,
//!     as at Stripe) → the signed `payment_intent.succeeded` /
//!     `payment_intent.payment_failed` webhook;
//!   - `GET|POST /sandbox/config`: the fault switches ([`Switches`]; a POST
//!     changes only the fields it names);
//!   - `GET /sandbox/stats`: counters — intents created, charges per
//!     idempotency key, per intent and per `metadata.run_id` (an intent that
//!     succeeded is one charge: every count must stay ≤ 1), the amount charged
//!     per intent, refunds per intent (succeeded: count and sum; pending: count
//!     and sum; failed; refused for asking more than was left), API calls
//!     received (also during outages), webhook deliveries;
//!   - `GET /sandbox/events`: every event sent, oldest first (`dropped` when
//!     `drop_refund_webhooks` kept it from being delivered).
//!
//! # Webhooks
//! Each event (`payment_intent.succeeded`, `.payment_failed`, `.canceled`;
//! `charge.refunded` when a refund is made, its charge listing its refunds;
//! `refund.updated` when a pending refund settles, with `refund.failed` when it
//! failed, and `refund.failed` alone for a refund answered `failed`) is posted
//! to the webhook URL with a `Stripe-Signature`
//! made by [`boxoffice_api::webhooks::stripe_signature::sign`], signed afresh at
//! every attempt. Deliveries run in the background and concurrently (Stripe
//! does not promise an order either); a delivery that gets no 2xx is retried
//! with doubling delays, `webhook_max_attempts` times in all.
//!
//! Objects and events have the shapes of the Stripe API version Boxoffice's
//! client pins (`STRIPE_API_VERSION`). State lives in memory and is lost when
//! the sandbox stops.

mod routes;
mod state;
mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use state::{OutageMode, Switches};

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where webhooks go, e.g. `http://127.0.0.1:8080/v1/webhooks/stripe`.
    pub webhook_url: String,
    /// The endpoint secret webhooks are signed with.
    pub webhook_secret: String,
    /// The API key clients must present; `None` accepts any bearer key.
    pub secret_key: Option<String>,
    /// The switches to start with (all off by default).
    pub switches: Switches,
}

impl SandboxConfig {
    pub fn new(webhook_url: impl Into<String>, webhook_secret: impl Into<String>) -> Self {
        SandboxConfig {
            webhook_url: webhook_url.into(),
            webhook_secret: webhook_secret.into(),
            secret_key: None,
            switches: Switches::default(),
        }
    }

    pub fn with_secret_key(mut self, key: impl Into<String>) -> Self {
        self.secret_key = Some(key.into());
        self
    }
}

/// What the handlers and the webhook sender share.
pub(crate) struct Shared {
    store: state::Store,
    traffic: state::Traffic,
    switches: RwLock<Switches>,
    secret_key: Option<String>,
    webhook_url: String,
    webhook_secret: String,
    outgoing: mpsc::UnboundedSender<serde_json::Value>,
    shutdown: CancellationToken,
}

impl Shared {
    fn switches(&self) -> Switches {
        self.switches
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// A sandbox running in this process.
#[derive(Debug)]
pub struct Sandbox {
    pub addr: SocketAddr,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Sandbox {
    /// The API base URL to give a `StripeClient`, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the sandbox has stopped (after its shutdown token fired).
    pub async fn stopped(self) -> anyhow::Result<()> {
        self.task.await.context("the sandbox task panicked")?
    }
}

/// Starts the sandbox on `listener` in a background task; it stops when
/// `shutdown` is cancelled.
pub async fn spawn(
    config: SandboxConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Sandbox> {
    let addr = listener
        .local_addr()
        .context("reading the sandbox's address")?;
    let task = tokio::spawn(serve(config, listener, shutdown));
    Ok(Sandbox { addr, task })
}

/// Runs the sandbox on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: SandboxConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (outgoing, queue) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        store: state::Store::default(),
        traffic: state::Traffic::default(),
        switches: RwLock::new(config.switches),
        secret_key: config.secret_key,
        webhook_url: config.webhook_url,
        webhook_secret: config.webhook_secret,
        outgoing,
        shutdown: shutdown.clone(),
    });
    tracing::info!(
        sandbox.addr = %listener.local_addr()?,
        sandbox.webhook_url = %shared.webhook_url,
        "sandbox payment provider listening"
    );
    let sender = tokio::spawn(webhooks::deliver_all(shared.clone(), queue));
    axum::serve(listener, routes::router(shared))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serving the sandbox")?;
    // Pending deliveries end with the shutdown token too.
    let _ = sender.await;
    Ok(())
}
