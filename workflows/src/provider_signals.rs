//! The signals the payment provider's webhooks become: the webhook route
//! records them, the workflows wait for them. One name per kind of news, so a
//! workflow never needs to know the provider's event types.

/// A refund was made, settled or failed at the provider. Sent to the run named
/// by the refund's `metadata.run_id`, once per provider event. Payload:
/// `{"refund_id", "status", "amount_minor", "currency", "payment_intent",
/// "failure_reason"}`, where `status` is the provider's (`pending`,
/// `requires_action`, `succeeded`, `failed`, `canceled`), `currency` is ISO 4217
/// upper case, and `failure_reason` is null unless the refund failed. Events
/// come late, twice or out of order: a settled refund stays settled.
pub const SIGNAL_REFUND_UPDATED: &str = "refund_updated";
