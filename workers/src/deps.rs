//! What a job handler gets besides its arguments.

use std::sync::Arc;

use boxoffice_models::DbPool;
use boxoffice_models::ticket_codes::TicketSigner;

use crate::adapters::mailer::Mailer;
use crate::adapters::payments::PaymentProvider;
use crate::mail::LinkSettings;

#[derive(Clone)]
pub struct JobDeps {
    pub db: DbPool,
    /// Signs the QR payload of every ticket issued.
    pub ticket_signer: Arc<TicketSigner>,
    /// The payment provider, behind its circuit breaker.
    pub payments: Arc<dyn PaymentProvider>,
    /// Sends notifications (SMTP behind its circuit breaker, or `.eml` files).
    pub mailer: Arc<dyn Mailer>,
    /// What links in emails are built from: the public URL, the unsubscribe key.
    pub mail_links: Arc<LinkSettings>,
    /// Holds a hot ticket type for many runs at once (the group commit of holds).
    pub holds: crate::engine::HoldBatcher,
    /// Wakes this process's outbox relay after a commit that queued messages.
    pub relay_nudge: Arc<tokio::sync::Notify>,
    /// A `running`/`compensating` run not updated for this long is taken for
    /// stalled and re-driven by the sweep (`BOXOFFICE_STALLED_AFTER_SECS`).
    pub stalled_after: std::time::Duration,
    /// How long the first waitlist entry that does not fit in the free units
    /// keeps them for itself before smaller entries behind it are served
    /// (`BOXOFFICE_WAITLIST_HEAD_WAIT_SECS`; see `jobs::dispatch_waitlists`).
    pub waitlist_head_wait: std::time::Duration,
}

impl JobDeps {
    /// What carrying out a run's remote command takes, from this process's parts.
    pub fn remote_calls(&self) -> crate::engine::RemoteCalls {
        crate::engine::RemoteCalls {
            db: self.db.clone(),
            ticket_signer: self.ticket_signer.clone(),
            payments: self.payments.clone(),
            relay_nudge: self.relay_nudge.clone(),
        }
    }
}
