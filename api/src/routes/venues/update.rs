//! `PATCH /v1/venues/{id}`: change a venue.

use axum::extract::State;
use boxoffice_models::venues::{self, VenueChanges};
use serde::Deserialize;
use uuid::Uuid;

use super::VenueView;
use crate::cache;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Path};
use crate::routes::events::support::{Organizer, db_error};
use crate::state::AppState;

/// Only the fields present change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVenueRequest {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 500)]
    pub address: Option<String>,
    #[schema(max_length = 100)]
    pub city: Option<String>,
    pub country: Option<String>,
    pub timezone: Option<String>,
}

/// Changes a venue (its creator or an admin). The events held there show the
/// change at once.
#[utoipa::path(patch, path = "/venues/{id}", tag = "venues",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Venue id")),
    request_body = UpdateVenueRequest,
    responses(
        (status = 200, description = "The updated venue", body = VenueView),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not the venue's creator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, `invalid_body`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_venue(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateVenueRequest>,
) -> AppResult<Json<VenueView>> {
    let changes = VenueChanges {
        name: body.name.as_deref().map(super::name).transpose()?,
        address: body.address.as_deref().map(super::address).transpose()?,
        city: body.city.as_deref().map(super::city).transpose()?,
        country: body.country.as_deref().map(super::country).transpose()?,
        timezone: body.timezone.as_deref().map(super::timezone).transpose()?,
    };
    let mut conn = state.conn().await?;
    let venue = venues::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found("venue"))?;
    super::ensure_may_edit(&user, &venue)?;
    let updated = venues::update(&mut conn, id, &changes)
        .await
        .map_err(db_error)?
        .ok_or_else(|| AppError::not_found("venue"))?;
    // Event details embed the venue; listings show its city.
    let event_ids = venues::event_ids(&mut conn, id).await?;
    drop(conn);
    cache::invalidate_events(&state, &event_ids).await;
    Ok(Json(VenueView::from(&updated)))
}
