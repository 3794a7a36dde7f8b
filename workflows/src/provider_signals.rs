//! Names of the signals the payment provider's webhooks become.

/// A refund changed at the provider (`charge.refunded`, `refund.updated`,
/// `refund.failed`): payload `{refund_id, status, amount_minor, currency,
/// payment_intent, failure_reason}`.
pub const SIGNAL_REFUND_UPDATED: &str = "refund_updated";
