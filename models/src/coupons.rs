//! `coupons` and `coupon_ticket_types`: discount codes of an event.
//!
//! A code is unique per event regardless of case (`coupons_event_code_key` on
//! `lower(code)`). A coupon is `percent` (1–100) or `fixed` (minor units of the
//! event's currency, enforced by a foreign key to `events (id, currency)`).
//! `used` never exceeds `max_uses` (a CHECK); the checkout workflow increments it.
//! With rows in `coupon_ticket_types` a coupon applies only to those ticket types;
//! with none, to all of the event's.
//!
//! [`evaluate`] is the pricing rule, a pure function the checkout reuses.

use std::io::Write;

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{coupon_ticket_types, coupons, ticket_types};
use crate::ticket_types::{WriteRefusal, lock_editable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub enum CouponKind {
    /// `value` percent off (1–100).
    Percent,
    /// `value` minor units off, once per order, in the event's currency.
    Fixed,
}

impl CouponKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CouponKind::Percent => "percent",
            CouponKind::Fixed => "fixed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [CouponKind::Percent, CouponKind::Fixed]
            .into_iter()
            .find(|kind| kind.as_str() == s)
    }
}

impl ToSql<Text, Pg> for CouponKind {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.as_str().as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Pg> for CouponKind {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let text = std::str::from_utf8(value.as_bytes())?;
        CouponKind::parse(text).ok_or_else(|| format!("unknown coupon kind {text:?}").into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = coupons, check_for_backend(diesel::pg::Pg))]
pub struct Coupon {
    pub id: Uuid,
    pub event_id: Uuid,
    pub code: String,
    pub kind: CouponKind,
    pub value: i64,
    /// Set exactly for fixed coupons.
    pub currency: Option<String>,
    /// `None`: unlimited.
    pub max_uses: Option<i32>,
    pub used: i32,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Moves on every organizer's change (not on uses).
    pub version: i32,
}

/// A coupon with the ticket types it is restricted to (empty: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponWithScope {
    pub coupon: Coupon,
    pub ticket_type_ids: Vec<Uuid>,
}

/// A new coupon; the currency of a fixed coupon is taken from the event.
#[derive(Debug, Clone)]
pub struct NewCoupon {
    pub id: Uuid,
    pub event_id: Uuid,
    pub code: String,
    pub kind: CouponKind,
    pub value: i64,
    pub max_uses: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub ticket_type_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = coupons)]
struct CouponRow<'a> {
    id: Uuid,
    event_id: Uuid,
    code: &'a str,
    kind: CouponKind,
    value: i64,
    currency: Option<&'a str>,
    max_uses: Option<i32>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
}

/// A partial update; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct CouponPatch {
    pub code: Option<String>,
    pub kind: Option<CouponKind>,
    pub value: Option<i64>,
    pub max_uses: Option<Option<i32>>,
    pub valid_from: Option<Option<DateTime<Utc>>>,
    pub valid_until: Option<Option<DateTime<Utc>>>,
    /// Replaces the restriction (empty: all ticket types).
    pub ticket_type_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = coupons)]
struct CouponChanges<'a> {
    code: Option<&'a str>,
    kind: Option<CouponKind>,
    value: Option<i64>,
    currency: Option<Option<&'a str>>,
    max_uses: Option<Option<i32>>,
    valid_from: Option<Option<DateTime<Utc>>>,
    valid_until: Option<Option<DateTime<Utc>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponWrite {
    Done(CouponWithScope),
    Refused(WriteRefusal),
    /// Some restriction ids are not ticket types of this event.
    UnknownTicketTypes(Vec<Uuid>),
    /// A fixed coupon needs the event's currency, which no ticket type has fixed yet.
    EventHasNoCurrency,
    /// `max_uses` would drop below the uses already made.
    MaxUsesBelowUsed {
        used: i32,
    },
    /// The coupon is at none of the versions the change was made against.
    VersionMismatch {
        current: i32,
    },
}

pub async fn create(conn: &mut AsyncPgConnection, new: &NewCoupon) -> QueryResult<CouponWrite> {
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        let event = match lock_editable(c, new.event_id).await? {
            Ok(event) => event,
            Err(refusal) => return Ok(CouponWrite::Refused(refusal)),
        };
        let currency = match (new.kind, event.currency.as_deref()) {
            (CouponKind::Percent, _) => None,
            (CouponKind::Fixed, Some(currency)) => Some(currency),
            (CouponKind::Fixed, None) => return Ok(CouponWrite::EventHasNoCurrency),
        };
        let unknown = unknown_ticket_types(c, new.event_id, &new.ticket_type_ids).await?;
        if !unknown.is_empty() {
            return Ok(CouponWrite::UnknownTicketTypes(unknown));
        }
        let coupon = diesel::insert_into(coupons::table)
            .values(CouponRow {
                id: new.id,
                event_id: new.event_id,
                code: &new.code,
                kind: new.kind,
                value: new.value,
                currency,
                max_uses: new.max_uses,
                valid_from: new.valid_from,
                valid_until: new.valid_until,
            })
            .returning(Coupon::as_returning())
            .get_result(c)
            .await?;
        let ticket_type_ids = replace_scope(c, &coupon, &new.ticket_type_ids).await?;
        Ok(CouponWrite::Done(CouponWithScope {
            coupon,
            ticket_type_ids,
        }))
    })
    .await
}

/// Applies `patch`. Lowering `max_uses` is guarded in the UPDATE itself, so a
/// concurrent redemption can't push `used` past the new limit unnoticed.
/// Applies `patch`; with `expected_versions`, only while the coupon is at one
/// of them (every organizer's write locks the event first, so the version
/// cannot move between the check and the write).
pub async fn update(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    id: Uuid,
    patch: &CouponPatch,
    expected_versions: Option<&[i32]>,
) -> QueryResult<CouponWrite> {
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        let event = match lock_editable(c, event_id).await? {
            Ok(event) => event,
            Err(refusal) => return Ok(CouponWrite::Refused(refusal)),
        };
        if let Some(expected) = expected_versions {
            match find(c, event_id, id).await? {
                None => return Ok(CouponWrite::Refused(WriteRefusal::NotFound)),
                Some(current) if !expected.contains(&current.coupon.version) => {
                    return Ok(CouponWrite::VersionMismatch {
                        current: current.coupon.version,
                    });
                }
                Some(_) => {}
            }
        }
        let currency = match (patch.kind, event.currency.as_deref()) {
            (None, _) => None,
            (Some(CouponKind::Percent), _) => Some(None),
            (Some(CouponKind::Fixed), Some(currency)) => Some(Some(currency)),
            (Some(CouponKind::Fixed), None) => return Ok(CouponWrite::EventHasNoCurrency),
        };
        if let Some(ids) = &patch.ticket_type_ids {
            let unknown = unknown_ticket_types(c, event_id, ids).await?;
            if !unknown.is_empty() {
                return Ok(CouponWrite::UnknownTicketTypes(unknown));
            }
        }
        let changes = CouponChanges {
            code: patch.code.as_deref(),
            kind: patch.kind,
            value: patch.value,
            currency,
            max_uses: patch.max_uses,
            valid_from: patch.valid_from,
            valid_until: patch.valid_until,
        };
        let target = coupons::table
            .filter(coupons::id.eq(id))
            .filter(coupons::event_id.eq(event_id));
        let moved = (
            coupons::version.eq(coupons::version + 1),
            coupons::updated_at.eq(diesel::dsl::now),
        );
        let updated = match patch.max_uses {
            Some(Some(max_uses)) => diesel::update(target.filter(coupons::used.le(max_uses)))
                .set((&changes, moved))
                .returning(Coupon::as_returning())
                .get_result(c)
                .await
                .optional()?,
            _ => diesel::update(target)
                .set((&changes, moved))
                .returning(Coupon::as_returning())
                .get_result(c)
                .await
                .optional()?,
        };
        let Some(coupon) = updated else {
            return Ok(match find(c, event_id, id).await? {
                None => CouponWrite::Refused(WriteRefusal::NotFound),
                Some(current) => CouponWrite::MaxUsesBelowUsed {
                    used: current.coupon.used,
                },
            });
        };
        let ticket_type_ids = match &patch.ticket_type_ids {
            Some(ids) => replace_scope(c, &coupon, ids).await?,
            None => scope_of(c, coupon.id).await?,
        };
        Ok(CouponWrite::Done(CouponWithScope {
            coupon,
            ticket_type_ids,
        }))
    })
    .await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponDelete {
    Deleted,
    Refused(WriteRefusal),
    /// Orders used it; expire it (`valid_until`) instead.
    AlreadyUsed {
        used: i32,
    },
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    id: Uuid,
) -> QueryResult<CouponDelete> {
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        if let Err(refusal) = lock_editable(c, event_id).await? {
            return Ok(CouponDelete::Refused(refusal));
        }
        let deleted = diesel::delete(
            coupons::table
                .filter(coupons::id.eq(id))
                .filter(coupons::event_id.eq(event_id))
                .filter(coupons::used.eq(0)),
        )
        .execute(c)
        .await?;
        if deleted == 1 {
            return Ok(CouponDelete::Deleted);
        }
        Ok(match find(c, event_id, id).await? {
            None => CouponDelete::Refused(WriteRefusal::NotFound),
            Some(current) => CouponDelete::AlreadyUsed {
                used: current.coupon.used,
            },
        })
    })
    .await
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<CouponWithScope>> {
    let coupon = coupons::table
        .filter(coupons::id.eq(id))
        .filter(coupons::event_id.eq(event_id))
        .select(Coupon::as_select())
        .first(conn)
        .await
        .optional()?;
    with_scope(conn, coupon).await
}

/// The coupon with this code, compared case-insensitively.
pub async fn find_by_code(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    code: &str,
) -> QueryResult<Option<CouponWithScope>> {
    let coupon = coupons::table
        .filter(coupons::event_id.eq(event_id))
        .filter(crate::venues::lower(coupons::code).eq(code.to_lowercase()))
        .select(Coupon::as_select())
        .first(conn)
        .await
        .optional()?;
    with_scope(conn, coupon).await
}

pub async fn for_event(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> QueryResult<Vec<CouponWithScope>> {
    let list: Vec<Coupon> = coupons::table
        .filter(coupons::event_id.eq(event_id))
        .select(Coupon::as_select())
        .order((coupons::code.asc(), coupons::id.asc()))
        .load(conn)
        .await?;
    let scopes: Vec<(Uuid, Uuid)> = coupon_ticket_types::table
        .filter(coupon_ticket_types::event_id.eq(event_id))
        .select((
            coupon_ticket_types::coupon_id,
            coupon_ticket_types::ticket_type_id,
        ))
        .order((
            coupon_ticket_types::coupon_id,
            coupon_ticket_types::ticket_type_id,
        ))
        .load(conn)
        .await?;
    Ok(list
        .into_iter()
        .map(|coupon| CouponWithScope {
            ticket_type_ids: scopes
                .iter()
                .filter(|(coupon_id, _)| *coupon_id == coupon.id)
                .map(|(_, ticket_type_id)| *ticket_type_id)
                .collect(),
            coupon,
        })
        .collect())
}

async fn with_scope(
    conn: &mut AsyncPgConnection,
    coupon: Option<Coupon>,
) -> QueryResult<Option<CouponWithScope>> {
    let Some(coupon) = coupon else {
        return Ok(None);
    };
    let ticket_type_ids = scope_of(conn, coupon.id).await?;
    Ok(Some(CouponWithScope {
        coupon,
        ticket_type_ids,
    }))
}

async fn scope_of(conn: &mut AsyncPgConnection, coupon_id: Uuid) -> QueryResult<Vec<Uuid>> {
    coupon_ticket_types::table
        .filter(coupon_ticket_types::coupon_id.eq(coupon_id))
        .select(coupon_ticket_types::ticket_type_id)
        .order(coupon_ticket_types::ticket_type_id)
        .load(conn)
        .await
}

async fn unknown_ticket_types(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    ids: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let known: Vec<Uuid> = ticket_types::table
        .filter(ticket_types::event_id.eq(event_id))
        .filter(ticket_types::id.eq_any(ids))
        .select(ticket_types::id)
        .load(conn)
        .await?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !known.contains(id))
        .collect())
}

async fn replace_scope(
    conn: &mut AsyncPgConnection,
    coupon: &Coupon,
    ticket_type_ids: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    diesel::delete(coupon_ticket_types::table.filter(coupon_ticket_types::coupon_id.eq(coupon.id)))
        .execute(conn)
        .await?;
    let mut ids = ticket_type_ids.to_vec();
    ids.sort();
    ids.dedup();
    let rows: Vec<_> = ids
        .iter()
        .map(|ticket_type_id| {
            (
                coupon_ticket_types::coupon_id.eq(coupon.id),
                coupon_ticket_types::ticket_type_id.eq(*ticket_type_id),
                coupon_ticket_types::event_id.eq(coupon.event_id),
            )
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(coupon_ticket_types::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok(ids)
}

// ---------------------------------------------------------------------------
// Pricing
// ---------------------------------------------------------------------------

/// One line of a prospective order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricedLine {
    pub ticket_type_id: Uuid,
    pub unit_price_minor: i64,
    pub quantity: i64,
}

/// Why a coupon gives nothing for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponRejection {
    NotYetValid,
    Expired,
    UsedUp,
    /// None of the order's ticket types is one the coupon is restricted to.
    NotApplicable,
}

impl CouponRejection {
    pub fn code(self) -> &'static str {
        match self {
            CouponRejection::NotYetValid => "not_yet_valid",
            CouponRejection::Expired => "expired",
            CouponRejection::UsedUp => "used_up",
            CouponRejection::NotApplicable => "not_applicable",
        }
    }
}

/// What a coupon takes off an order; all amounts in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discount {
    /// Every line.
    pub subtotal_minor: i64,
    /// The lines the coupon applies to.
    pub eligible_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
    pub applies_to: Vec<Uuid>,
}

/// The discount `coupon` gives on `lines` at `now`. Percentages round down to
/// the minor unit (the buyer never gets more than the stated percentage); a fixed
/// amount applies once per order and never exceeds the eligible lines.
pub fn evaluate(
    scoped: &CouponWithScope,
    lines: &[PricedLine],
    now: DateTime<Utc>,
) -> Result<Discount, CouponRejection> {
    let coupon = &scoped.coupon;
    if coupon.valid_from.is_some_and(|from| now < from) {
        return Err(CouponRejection::NotYetValid);
    }
    if coupon.valid_until.is_some_and(|until| now >= until) {
        return Err(CouponRejection::Expired);
    }
    if coupon.max_uses.is_some_and(|max| coupon.used >= max) {
        return Err(CouponRejection::UsedUp);
    }
    let line_total =
        |line: &PricedLine| i128::from(line.unit_price_minor) * i128::from(line.quantity);
    let eligible: Vec<&PricedLine> = lines
        .iter()
        .filter(|line| {
            scoped.ticket_type_ids.is_empty()
                || scoped.ticket_type_ids.contains(&line.ticket_type_id)
        })
        .collect();
    if eligible.is_empty() {
        return Err(CouponRejection::NotApplicable);
    }
    let subtotal: i128 = lines.iter().map(line_total).sum();
    let eligible_minor: i128 = eligible.iter().map(|line| line_total(line)).sum();
    let discount = match coupon.kind {
        CouponKind::Percent => eligible_minor * i128::from(coupon.value) / 100,
        CouponKind::Fixed => i128::from(coupon.value).min(eligible_minor),
    };
    let mut applies_to: Vec<Uuid> = eligible.iter().map(|line| line.ticket_type_id).collect();
    applies_to.sort();
    applies_to.dedup();
    // Inputs are bounded (prices ≤ 10^12, a handful of lines), so these fit; saturate anyway.
    let narrow = |amount: i128| i64::try_from(amount).unwrap_or(i64::MAX);
    Ok(Discount {
        subtotal_minor: narrow(subtotal),
        eligible_minor: narrow(eligible_minor),
        discount_minor: narrow(discount),
        total_minor: narrow(subtotal - discount),
        applies_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coupon(kind: CouponKind, value: i64) -> CouponWithScope {
        let now = Utc::now();
        CouponWithScope {
            coupon: Coupon {
                id: Uuid::now_v7(),
                event_id: Uuid::now_v7(),
                code: "SAVE".into(),
                kind,
                value,
                currency: (kind == CouponKind::Fixed).then(|| "EUR".into()),
                max_uses: Some(10),
                used: 0,
                valid_from: None,
                valid_until: None,
                created_at: now,
                updated_at: now,
                version: 1,
            },
            ticket_type_ids: Vec::new(),
        }
    }

    fn line(id: Uuid, price: i64, quantity: i64) -> PricedLine {
        PricedLine {
            ticket_type_id: id,
            unit_price_minor: price,
            quantity,
        }
    }

    #[test]
    fn percent_rounds_down_to_the_minor_unit() {
        let general = Uuid::now_v7();
        let discount = evaluate(
            &coupon(CouponKind::Percent, 10),
            &[line(general, 4599, 3)],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(discount.subtotal_minor, 13797);
        assert_eq!(discount.discount_minor, 1379);
        assert_eq!(discount.total_minor, 12418);
    }

    #[test]
    fn fixed_never_exceeds_the_eligible_amount() {
        let cheap = Uuid::now_v7();
        let discount = evaluate(
            &coupon(CouponKind::Fixed, 5000),
            &[line(cheap, 1000, 2)],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(discount.discount_minor, 2000);
        assert_eq!(discount.total_minor, 0);
    }

    #[test]
    fn a_restricted_coupon_only_discounts_its_ticket_types() {
        let (general, vip) = (Uuid::now_v7(), Uuid::now_v7());
        let mut scoped = coupon(CouponKind::Percent, 50);
        scoped.ticket_type_ids = vec![vip];
        let discount = evaluate(
            &scoped,
            &[line(general, 4500, 2), line(vip, 12000, 1)],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(discount.subtotal_minor, 21000);
        assert_eq!(discount.eligible_minor, 12000);
        assert_eq!(discount.discount_minor, 6000);
        assert_eq!(discount.applies_to, vec![vip]);
        assert_eq!(
            evaluate(&scoped, &[line(general, 4500, 2)], Utc::now()),
            Err(CouponRejection::NotApplicable)
        );
    }

    #[test]
    fn validity_window_and_uses_are_checked() {
        let id = Uuid::now_v7();
        let now = Utc::now();
        let mut scoped = coupon(CouponKind::Percent, 10);
        scoped.coupon.valid_until = Some(now);
        assert_eq!(
            evaluate(&scoped, &[line(id, 100, 1)], now),
            Err(CouponRejection::Expired)
        );
        scoped.coupon.valid_until = None;
        scoped.coupon.valid_from = Some(now + chrono::Duration::seconds(1));
        assert_eq!(
            evaluate(&scoped, &[line(id, 100, 1)], now),
            Err(CouponRejection::NotYetValid)
        );
        scoped.coupon.valid_from = None;
        scoped.coupon.used = 10;
        assert_eq!(
            evaluate(&scoped, &[line(id, 100, 1)], now),
            Err(CouponRejection::UsedUp)
        );
    }
}
