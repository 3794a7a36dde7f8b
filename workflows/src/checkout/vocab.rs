//! The checkout's own vocabulary: its order lines and its local commands
//! and their outcomes (changes to our own tables, applied by its effects
//! module in `workers` inside the run's transaction).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub ticket_type_id: Uuid,
    pub quantity: i32,
}

/// A held line with the unit price it was held at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedItem {
    pub ticket_type_id: Uuid,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// Everything needed to write the booking of a confirmed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingDraft {
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub items: Vec<Item>,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub coupon_id: Option<Uuid>,
    pub payment_intent_id: Option<String>,
    /// The lines at the prices they were held at: what each ticket cost.
    #[serde(default)]
    pub lines: Vec<PricedItem>,
}

/// Changes to our own tables, applied in the transaction of the transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalCommand {
    /// Hold capacity for every item (row locks in ticket type id order), until `expires_at`.
    HoldCapacity {
        items: Vec<Item>,
        expires_at: DateTime<Utc>,
    },
    /// Take over the units a waitlist offer holds for these items (moved to
    /// this run when the offer was accepted): never new units. Answered like
    /// a hold (`Held`, or `HoldRefused` when the run holds no such units).
    AdoptOfferHold {
        items: Vec<Item>,
        expires_at: DateTime<Utc>,
    },
    /// Reserve one use of the event's coupon `code` for these priced lines.
    ReserveCoupon {
        event_id: Uuid,
        code: String,
        lines: Vec<PricedItem>,
    },
    /// Release the run's holds and its coupon reservation.
    ReleaseReservations,
    /// Convert the run's holds to sold, redeem the coupon, create the booking and
    /// its tickets, queue the confirmation email.
    ConfirmBooking { booking: BookingDraft },
    /// A payment arrived after the holds were released: sell again if capacity
    /// is still free (then as `ConfirmBooking`), or report that it is not.
    ConfirmLatePayment { booking: BookingDraft },
}

/// What a local command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalOutcome {
    Held {
        expires_at: DateTime<Utc>,
        currency: String,
        lines: Vec<PricedItem>,
    },
    HoldRefused {
        ticket_type_id: Uuid,
        requested: i32,
        available: i32,
    },
    CouponReserved {
        coupon_id: Uuid,
        discount_minor: i64,
    },
    CouponRefused {
        reason: String,
    },
    Released,
    Confirmed {
        booking_id: Uuid,
        ticket_ids: Vec<Uuid>,
    },
    LateNoCapacity,
    /// A payment arrived after the holds were released, and its coupon has no
    /// use left to take again: nothing was sold.
    LateCouponUsedUp,
    /// The event was cancelled: nothing was sold (the holds are released).
    EventCancelled,
}
