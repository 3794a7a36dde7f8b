//! `/v1/venues`: places where events happen.
//!
//! Anyone may list and read venues. Organizers create them; the creator and
//! admins may change or delete one (a venue still used by an event can't be
//! deleted). Venues are shared: any organizer's event may take place at any venue.

pub mod create;
pub mod delete;
pub mod list;
pub mod show;
pub mod update;

use boxoffice_models::venues::Venue;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::routes::events::support;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list::list_venues, create::create_venue))
        .routes(routes!(
            show::show_venue,
            update::update_venue,
            delete::delete_venue
        ))
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct VenueView {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[schema(example = "DE")]
    pub country: String,
    /// IANA time zone name; event times are shown in it.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Venue> for VenueView {
    fn from(venue: &Venue) -> Self {
        VenueView {
            id: venue.id,
            name: venue.name.clone(),
            address: venue.address.clone(),
            city: venue.city.clone(),
            country: venue.country.clone(),
            timezone: venue.timezone.clone(),
            created_by: venue.created_by,
            created_at: venue.created_at,
            updated_at: venue.updated_at,
        }
    }
}

/// The creator and admins may change a venue; other organizers see it (it is
/// public) but get 403.
pub(crate) fn ensure_may_edit(user: &AuthUser, venue: &Venue) -> AppResult<()> {
    if user.is_admin() || venue.created_by == user.user_id {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "only the venue's creator or an admin may change it",
        ))
    }
}

pub(crate) fn name(raw: &str) -> AppResult<String> {
    support::line("name", raw, 200)
}

pub(crate) fn address(raw: &str) -> AppResult<String> {
    support::line("address", raw, 500)
}

pub(crate) fn city(raw: &str) -> AppResult<String> {
    support::line("city", raw, 100)
}

/// ISO 3166-1 alpha-2, upper-cased.
pub(crate) fn country(raw: &str) -> AppResult<String> {
    let value = raw.trim();
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(AppError::validation(
            "country",
            "country must be an ISO 3166-1 alpha-2 code such as DE",
        ))
    }
}

/// Shape only; whether the zone exists is the table's CHECK (mapped to 422).
pub(crate) fn timezone(raw: &str) -> AppResult<String> {
    let value = raw.trim();
    let plausible = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
    if plausible {
        Ok(value.to_owned())
    } else {
        Err(AppError::validation(
            "timezone",
            "timezone must be an IANA time zone name such as Europe/Berlin",
        ))
    }
}
