//! `GET /v1/venues`: page through venues by name.

use axum::extract::State;
use boxoffice_models::venues;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::VenueView;
use crate::error::{AppResult, Problem};
use crate::extract::{Json, Query};
use crate::routes::events::cursor;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListVenuesParams {
    /// Only venues in this city (case-insensitive).
    pub city: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VenuePage {
    pub items: Vec<VenueView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Lists venues by name, optionally in one city.
#[utoipa::path(get, path = "/venues", tag = "venues",
    params(ListVenuesParams),
    responses(
        (status = 200, description = "One page of venues", body = VenuePage),
        (status = 400, description = "`invalid_query` or `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_venues(
    State(state): State<AppState>,
    Query(params): Query<ListVenuesParams>,
) -> AppResult<Json<VenuePage>> {
    let limit = cursor::page_limit(params.limit)?;
    let city = params
        .city
        .as_deref()
        .map(|c| super::city(c).map_err(|_| bad_city()))
        .transpose()?;
    let after = match params.cursor.as_deref() {
        None => None,
        Some(raw) => {
            let parts = cursor::decode(raw, 2).ok_or_else(cursor::invalid_cursor)?;
            let id: Uuid = parts[1].parse().map_err(|_| cursor::invalid_cursor())?;
            Some((parts[0].clone(), id))
        }
    };

    let mut conn = state.conn().await?;
    let mut rows = venues::list(
        &mut conn,
        city.as_deref(),
        after.as_ref().map(|(name, id)| (name.as_str(), *id)),
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last()
            .map(|v| cursor::encode(&[&v.name, &v.id.to_string()]))
    } else {
        None
    };
    Ok(Json(VenuePage {
        items: rows.iter().map(VenueView::from).collect(),
        next_cursor,
    }))
}

fn bad_city() -> crate::error::AppError {
    crate::error::AppError::bad_request(
        "invalid_query",
        "city must be 1 to 100 printable characters",
    )
    .with("field", "city")
}
