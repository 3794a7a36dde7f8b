//! Carries out the payment provider's commands ([`PaymentCommand`]) for every
//! kind that moves money. The provider's idempotency key is
//! `"{run_id}:{command key}"`, so a redelivered or duplicated job makes the
//! same call with the same result.

use std::collections::BTreeMap;

use boxoffice_workflows::engine::RemoteEffect;
use boxoffice_workflows::payments::{PaymentCommand, PaymentOutcome, RefundReport, RefundStatus};
use uuid::Uuid;

use crate::adapters::payments::{
    self, CancelOutcome, CreateIntent, CreateRefund, PaymentProvider, ProviderError, Refund,
};

pub async fn call(
    payments: &dyn PaymentProvider,
    run_id: Uuid,
    command: &PaymentCommand,
) -> Result<PaymentOutcome, ProviderError> {
    let idempotency_key = format!("{run_id}:{}", command.key());
    match command {
        PaymentCommand::CreatePaymentIntent {
            amount_minor,
            currency,
            ..
        } => {
            let intent = payments
                .create_intent(CreateIntent {
                    amount_minor: *amount_minor,
                    currency: currency.clone(),
                    idempotency_key,
                    metadata: BTreeMap::from([("run_id".to_owned(), run_id.to_string())]),
                })
                .await?;
            Ok(PaymentOutcome::IntentCreated {
                intent_id: intent.id,
                client_secret: intent.client_secret.unwrap_or_default(),
            })
        }
        PaymentCommand::CancelPaymentIntent { intent_id, .. } => Ok(
            match payments.cancel_intent(intent_id, &idempotency_key).await? {
                CancelOutcome::Cancelled => PaymentOutcome::IntentCancelled,
                CancelOutcome::AlreadySucceeded => PaymentOutcome::IntentAlreadySucceeded,
            },
        ),
        PaymentCommand::RefundPayment {
            intent_id,
            amount_minor,
            ..
        } => {
            let refund = payments
                .refund(CreateRefund {
                    intent_id: intent_id.clone(),
                    amount_minor: Some(*amount_minor),
                    run_id: run_id.to_string(),
                    reason: None,
                    idempotency_key,
                })
                .await?;
            metrics::counter!("payments_refunds_created_total").increment(1);
            Ok(PaymentOutcome::Refund(report(refund)))
        }
        PaymentCommand::RetrieveRefund { refund_id, .. } => {
            let refund = payments.retrieve_refund(refund_id).await?;
            Ok(PaymentOutcome::Refund(report(refund)))
        }
    }
}

fn report(refund: Refund) -> RefundReport {
    RefundReport {
        refund_id: refund.id,
        status: match refund.status {
            payments::RefundStatus::Succeeded => RefundStatus::Succeeded,
            payments::RefundStatus::Pending => RefundStatus::Pending,
            payments::RefundStatus::RequiresAction => RefundStatus::RequiresAction,
            payments::RefundStatus::Failed => RefundStatus::Failed,
            payments::RefundStatus::Canceled => RefundStatus::Canceled,
        },
        amount_minor: refund.amount_minor,
        failure_reason: refund.failure_reason,
    }
}
