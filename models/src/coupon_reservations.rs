//! `coupon_reservations`: one use of a coupon taken by a run, given back exactly
//! once if the run compensates.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::coupons::{self, CouponRejection, PricedLine};
use crate::schema::{coupon_reservations, coupons as coupons_table};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    Reserved {
        coupon_id: Uuid,
        discount_minor: i64,
    },
    Refused {
        reason: String,
    },
}

/// Evaluates the event's coupon `code` for `lines` and takes one use, under the
/// coupon's row lock so `used` never passes `max_uses`.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    event_id: Uuid,
    code: &str,
    lines: &[PricedLine],
    now: DateTime<Utc>,
) -> QueryResult<Reservation> {
    let Some(found) = coupons::find_by_code(conn, event_id, code).await? else {
        return Ok(Reservation::Refused {
            reason: "not_found".into(),
        });
    };
    // Lock, then evaluate on the locked row's numbers.
    let used: i32 = coupons_table::table
        .find(found.coupon.id)
        .for_update()
        .select(coupons_table::used)
        .first(conn)
        .await?;
    let mut scoped = found;
    scoped.coupon.used = used;
    let discount = match coupons::evaluate(&scoped, lines, now) {
        Ok(d) => d,
        Err(rejection) => {
            return Ok(Reservation::Refused {
                reason: reason(rejection).into(),
            });
        }
    };
    diesel::update(coupons_table::table.find(scoped.coupon.id))
        .set(coupons_table::used.eq(coupons_table::used + 1))
        .execute(conn)
        .await?;
    diesel::insert_into(coupon_reservations::table)
        .values((
            coupon_reservations::run_id.eq(run_id),
            coupon_reservations::coupon_id.eq(scoped.coupon.id),
        ))
        .execute(conn)
        .await?;
    Ok(Reservation::Reserved {
        coupon_id: scoped.coupon.id,
        discount_minor: discount.discount_minor,
    })
}

fn reason(r: CouponRejection) -> &'static str {
    r.code()
}

/// Gives the run's coupon use back. Idempotent.
pub async fn release(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<bool> {
    close(conn, run_id, "released").await
}

/// Makes the run's coupon use final. Idempotent.
pub async fn redeem(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<bool> {
    close(conn, run_id, "redeemed").await
}

async fn close(conn: &mut AsyncPgConnection, run_id: Uuid, to: &str) -> QueryResult<bool> {
    let closed: Option<Uuid> = diesel::update(
        coupon_reservations::table
            .find(run_id)
            .filter(coupon_reservations::status.eq("reserved")),
    )
    .set((
        coupon_reservations::status.eq(to),
        coupon_reservations::closed_at.eq(diesel::dsl::now),
    ))
    .returning(coupon_reservations::coupon_id)
    .get_result(conn)
    .await
    .optional()?;
    if let (Some(coupon_id), "released") = (closed, to) {
        diesel::update(coupons_table::table.find(coupon_id))
            .set(coupons_table::used.eq(coupons_table::used - 1))
            .execute(conn)
            .await?;
    }
    Ok(closed.is_some())
}

/// Takes one use of `coupon_id` again for a run whose reservation was given
/// back (its payment arrived after the run let go of everything), and makes it
/// final at once. One guarded statement under the coupon's row lock, so `used`
/// never passes `max_uses`; `false` (nothing changed) when no use is left or
/// the coupon is gone.
pub async fn redeem_again(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    coupon_id: Uuid,
) -> QueryResult<bool> {
    use diesel::sql_types::Uuid as SqlUuid;
    let taken = diesel::sql_query(
        "UPDATE coupons SET used = used + 1
          WHERE id = $1 AND (max_uses IS NULL OR used < max_uses)",
    )
    .bind::<SqlUuid, _>(coupon_id)
    .execute(conn)
    .await?;
    if taken == 0 {
        return Ok(false);
    }
    diesel::insert_into(coupon_reservations::table)
        .values((
            coupon_reservations::run_id.eq(run_id),
            coupon_reservations::coupon_id.eq(coupon_id),
            coupon_reservations::status.eq("redeemed"),
            coupon_reservations::closed_at.eq(diesel::dsl::now),
        ))
        .on_conflict(coupon_reservations::run_id)
        .do_update()
        .set((
            coupon_reservations::coupon_id.eq(coupon_id),
            coupon_reservations::status.eq("redeemed"),
            coupon_reservations::closed_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(true)
}
