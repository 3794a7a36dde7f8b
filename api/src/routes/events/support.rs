//! What every catalog route shares: who may manage an event, input parsing,
//! and the mapping of the catalog's constraint
//! violations to 409/422 problems (so a state the API did not anticipate is
//! still refused with a 4xx, never a 500).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use boxoffice_models::events::{self, Event};
use boxoffice_models::users::Role;
use chrono::{DateTime, Datelike, Utc};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

// ---------------------------------------------------------------- who may act

/// A caller who may manage catalog data: 401 without a valid session, 403
/// without the organizer (or admin) role. Management handlers take this first.
#[derive(Debug, Clone)]
pub struct Organizer(pub AuthUser);

impl FromRequestParts<AppState> for Organizer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        user.require(Role::Organizer)?;
        Ok(Organizer(user))
    }
}

/// The caller if the request carries credentials (which must then be valid),
/// `None` for an anonymous request.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(MaybeAuthUser(None));
        }
        Ok(MaybeAuthUser(Some(
            AuthUser::from_request_parts(parts, state).await?,
        )))
    }
}

/// Organizers manage their own events, admins every event.
pub fn can_manage(user: &AuthUser, event: &Event) -> bool {
    user.is_admin() || (user.has_role(Role::Organizer) && event.is_managed_by(user.user_id))
}

/// The event if the caller may manage it. Someone else's event is a 404, not a
/// 403: its existence (it may be a draft) is none of the caller's business.
pub async fn managed_event(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    id: Uuid,
) -> AppResult<Event> {
    match events::find(conn, id).await? {
        Some(event) if can_manage(user, &event) => Ok(event),
        _ => Err(AppError::not_found("event")),
    }
}

// ---------------------------------------------------------------- input

/// For `PATCH` bodies: absent → `None` (leave as is), `null` → `Some(None)` (clear).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// One line of text: trimmed, 1 to `max` characters, no control characters.
pub fn line(field: &str, raw: &str, max: usize) -> AppResult<String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(AppError::validation(
            field,
            format!("{field} must not be blank"),
        ));
    }
    if value.chars().count() > max {
        return Err(AppError::validation(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Free text (may be empty, may span lines): at most `max` characters, no
/// control characters but line breaks and tabs.
pub fn text(field: &str, raw: &str, max: usize) -> AppResult<String> {
    let value = raw.trim();
    if value.chars().count() > max {
        return Err(AppError::validation(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(AppError::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An ISO 4217 code: three letters, upper-cased.
pub fn currency(field: &str, raw: &str) -> AppResult<String> {
    let value = raw.trim();
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(AppError::validation(
            field,
            format!("{field} must be an ISO 4217 code such as EUR"),
        ))
    }
}

/// A category slug: lower-case letters, digits and single dashes, at most 50.
pub fn category(field: &str, raw: &str) -> AppResult<String> {
    let value = raw.trim().to_ascii_lowercase();
    let well_formed = !value.is_empty()
        && value.len() <= 50
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if well_formed {
        Ok(value)
    } else {
        Err(AppError::validation(
            field,
            format!(
                "{field} must be a slug of letters, digits and dashes (e.g. \"stand-up\"), at most 50"
            ),
        ))
    }
}

pub fn in_range<T>(field: &str, value: T, min: T, max: T) -> AppResult<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if value < min || value > max {
        return Err(AppError::validation(
            field,
            format!("{field} must be between {min} and {max}"),
        ));
    }
    Ok(value)
}

/// Largest price or fixed discount: ten billion in major units.
pub const MONEY_MAX: i64 = 1_000_000_000_000;

/// A timestamp Postgres and every client can hold: years 2000 to 9999.
pub fn timestamp(field: &str, value: DateTime<Utc>) -> AppResult<DateTime<Utc>> {
    let year = value.year();
    if (2000..=9999).contains(&year) {
        Ok(value)
    } else {
        Err(AppError::validation(
            field,
            format!("{field} must be between the years 2000 and 9999"),
        ))
    }
}

/// Optional `timestamp`.
pub fn maybe_timestamp(
    field: &str,
    value: Option<DateTime<Utc>>,
) -> AppResult<Option<DateTime<Utc>>> {
    value.map(|v| timestamp(field, v)).transpose()
}

/// `start < end` when both are known, else 422 on `end_field`.
pub fn ordered(
    end_field: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    what: &str,
) -> AppResult<()> {
    match (start, end) {
        (Some(start), Some(end)) if start >= end => {
            Err(AppError::validation(end_field, what.to_owned()))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------- database errors

/// Maps a failed catalog write to a problem. Constraint violations the handlers
/// did not catch first (races, combinations of old and new values) become
/// 409/422 naming the field; everything else keeps the default mapping.
pub fn db_error(err: diesel::result::Error) -> AppError {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    let Error::DatabaseError(kind, info) = &err else {
        return err.into();
    };
    let constraint = info.constraint_name().unwrap_or_default();
    // "insert or update on table X violates ..." vs "update or delete on table Y ...":
    // tells a missing referenced row from a row that is still referenced.
    let still_referenced = info.message().starts_with("update or delete");
    let field = |name: &str, detail: &str| AppError::validation(name, detail.to_owned());
    match kind {
        Kind::CheckViolation => match constraint {
            "venues_name_check" => field("name", "name must be 1 to 200 characters"),
            "venues_address_check" => field("address", "address must be 1 to 500 characters"),
            "venues_city_check" => field("city", "city must be 1 to 100 characters"),
            "venues_country_check" => field(
                "country",
                "country must be an ISO 3166-1 alpha-2 code such as DE",
            ),
            "venues_timezone_check" => field(
                "timezone",
                "timezone must be an IANA time zone name such as Europe/Berlin",
            ),
            "events_title_check" => field("title", "title must be 1 to 200 characters"),
            "events_description_check" => field(
                "description",
                "description must be at most 10000 characters",
            ),
            "events_category_check" => {
                field("category", "category must be a slug such as \"music\"")
            }
            "events_currency_check" => field("currency", "currency must be an ISO 4217 code"),
            "events_schedule_check" => field("ends_at", "ends_at must be after starts_at"),
            "events_sales_window_check" => {
                field("sales_end_at", "sales_end_at must be after sales_start_at")
            }
            "events_sales_end_check" => {
                field("sales_end_at", "sales must end by the end of the event")
            }
            "events_location_check" => field(
                "venue_id",
                "a published event needs a venue or online: true",
            ),
            "events_hold_minutes_check" => {
                field("hold_minutes", "hold_minutes must be between 1 and 120")
            }
            "events_max_tickets_per_order_check" => field(
                "max_tickets_per_order",
                "max_tickets_per_order must be between 1 and 100",
            ),
            "events_max_tickets_per_participant_check" => field(
                "max_tickets_per_participant",
                "max_tickets_per_participant must be between 1 and 1000, or null",
            ),
            "events_refund_policy_check" => field(
                "refundable_until_hours_before",
                "refundable_until_hours_before must be between 0 and 8760, or null",
            ),
            "ticket_types_capacity_check" => AppError::conflict(
                "capacity_below_committed",
                "capacity can't drop below the tickets sold and held",
            ),
            "ticket_types_sales_window_check" => {
                field("sales_end_at", "sales_end_at must be after sales_start_at")
            }
            "ticket_types_price_check" => {
                field("price_minor", "price_minor must be between 0 and 10^12")
            }
            "coupons_used_check" => AppError::conflict(
                "max_uses_below_used",
                "max_uses can't drop below the uses so far",
            ),
            "coupons_value_check" => field(
                "value",
                "value must be 1-100 for percent, 1-10^12 minor units for fixed",
            ),
            "coupons_validity_check" => {
                field("valid_until", "valid_until must be after valid_from")
            }
            "coupons_code_check" => {
                field("code", "code must be 3 to 40 letters, digits, '-' or '_'")
            }
            other => AppError::validation("body", format!("the request breaks the rule {other}"))
                .with("constraint", other),
        },
        Kind::UniqueViolation => match constraint {
            "ticket_types_event_name_key" => AppError::conflict(
                "duplicate_ticket_type_name",
                "the event already has a ticket type with this name",
            )
            .with("field", "name"),
            "coupons_event_code_key" => AppError::conflict(
                "duplicate_coupon_code",
                "the event already has a coupon with this code (codes ignore case)",
            )
            .with("field", "code"),
            other => AppError::conflict("conflict", "a conflicting record exists")
                .with("constraint", other),
        },
        Kind::ForeignKeyViolation => match (constraint, still_referenced) {
            ("events_venue_id_fkey", false) => field("venue_id", "no such venue"),
            ("events_venue_id_fkey", true) => {
                AppError::conflict("venue_in_use", "events still take place at this venue")
            }
            ("ticket_types_event_currency_fkey" | "coupons_event_currency_fkey", true) => {
                AppError::conflict(
                    "currency_locked",
                    "the currency can't change once ticket types or fixed coupons use it",
                )
                .with("field", "currency")
            }
            ("ticket_types_event_currency_fkey" | "coupons_event_currency_fkey", false) => field(
                "currency",
                "every price of an event is in the event's currency",
            ),
            ("coupon_ticket_types_ticket_type_fkey", true) => AppError::conflict(
                "ticket_type_in_use",
                "coupons are restricted to this ticket type",
            ),
            ("coupon_ticket_types_ticket_type_fkey", false) => {
                field("ticket_type_ids", "not ticket types of this event")
            }
            (other, _) => {
                AppError::conflict("conflict", "a referenced record is missing or still in use")
                    .with("constraint", other)
            }
        },
        Kind::NotNullViolation => AppError::validation(
            info.column_name().unwrap_or("body"),
            "a required value is missing",
        ),
        _ => err.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_trimmed_bounded_and_printable() {
        assert_eq!(line("title", "  Jazz  ", 10).unwrap(), "Jazz");
        assert!(line("title", "   ", 10).is_err());
        assert!(line("title", &"x".repeat(11), 10).is_err());
        assert!(line("title", "a\u{0}b", 10).is_err());
        assert!(line("title", "a\nb", 10).is_err());
        // Characters, not bytes, as Postgres' length() counts them.
        assert_eq!(line("title", "ééééé", 5).unwrap(), "ééééé");
    }

    #[test]
    fn text_keeps_line_breaks_but_not_nul() {
        assert_eq!(text("description", "a\nb\tc", 10).unwrap(), "a\nb\tc");
        assert_eq!(text("description", "", 10).unwrap(), "");
        assert!(text("description", "a\u{0}", 10).is_err());
    }

    #[test]
    fn currencies_and_categories_are_normalised() {
        assert_eq!(currency("currency", "eur").unwrap(), "EUR");
        for bad in ["EU", "EURO", "E1R", "€€€", ""] {
            assert!(currency("currency", bad).is_err(), "{bad:?}");
        }
        assert_eq!(category("category", " Stand-Up ").unwrap(), "stand-up");
        for bad in [
            "",
            "-music",
            "music-",
            "a--b",
            "rock&roll",
            "mü",
            &"a".repeat(51),
        ] {
            assert!(category("category", bad).is_err(), "{bad:?}");
        }
    }
}
