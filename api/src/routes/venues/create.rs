//! `POST /v1/venues`: add a venue.

use axum::extract::State;
use axum::http::StatusCode;
use boxoffice_models::venues::{self, NewVenue};
use serde::Deserialize;
use uuid::Uuid;

use super::VenueView;
use crate::error::{AppResult, Problem};
use crate::extract::Json;
use crate::routes::events::support::{Organizer, db_error};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVenueRequest {
    #[schema(example = "Tempodrom", max_length = 200)]
    pub name: String,
    #[schema(example = "Möckernstraße 10, 10963 Berlin", max_length = 500)]
    pub address: String,
    #[schema(example = "Berlin", max_length = 100)]
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[schema(example = "DE")]
    pub country: String,
    /// An IANA time zone name.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
}

/// Creates a venue; the caller becomes the one who may edit it.
#[utoipa::path(post, path = "/venues", tag = "venues",
    security(("bearer" = [])),
    request_body = CreateVenueRequest,
    responses(
        (status = 201, description = "The new venue", body = VenueView),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (e.g. an unknown time zone) or `invalid_body`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_venue(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Json(body): Json<CreateVenueRequest>,
) -> AppResult<(StatusCode, Json<VenueView>)> {
    let new = NewVenue {
        id: Uuid::now_v7(),
        created_by: user.user_id,
        name: super::name(&body.name)?,
        address: super::address(&body.address)?,
        city: super::city(&body.city)?,
        country: super::country(&body.country)?,
        timezone: super::timezone(&body.timezone)?,
    };
    let mut conn = state.conn().await?;
    let venue = venues::insert(&mut conn, &new).await.map_err(db_error)?;
    Ok((StatusCode::CREATED, Json(VenueView::from(&venue))))
}
