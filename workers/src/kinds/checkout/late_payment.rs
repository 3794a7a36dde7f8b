//! A payment that arrived after the run let go of its seats and its coupon use
//! (`LocalCommand::ConfirmLatePayment`): it is sold only if the seats are still
//! free and, for an order with a coupon, a use of the coupon can be taken again
//! (its discount was priced in). Otherwise nothing is sold and the workflow
//! refunds the payment.

use boxoffice_models::coupon_reservations;
use boxoffice_models::holds::{self, HoldOutcome};
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_workflows::checkout::{BookingDraft, LocalOutcome};
use diesel::result::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::{confirm, lines};

/// Why a late payment cannot be sold.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("no capacity left")]
    NoCapacity,
    #[error("the coupon has no use left")]
    CouponUsedUp,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

pub async fn confirm_late_payment(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run_id: Uuid,
    booking: &BookingDraft,
) -> QueryResult<LocalOutcome> {
    // A savepoint: seats sold and then no coupon use to take are given back.
    let taken = conn
        .transaction::<_, Refusal, _>(async |conn| {
            if let HoldOutcome::Refused { .. } =
                holds::sell_directly(conn, &lines(&booking.items)).await?
            {
                return Err(Refusal::NoCapacity);
            }
            if let Some(coupon_id) = booking.coupon_id
                && !coupon_reservations::redeem_again(conn, run_id, coupon_id).await?
            {
                return Err(Refusal::CouponUsedUp);
            }
            Ok(())
        })
        .await;
    match taken {
        Ok(()) => confirm(conn, signer, run_id, booking).await,
        Err(Refusal::NoCapacity) => Ok(LocalOutcome::LateNoCapacity),
        Err(Refusal::CouponUsedUp) => Ok(LocalOutcome::LateCouponUsedUp),
        Err(Refusal::Db(e)) => Err(e),
    }
}
