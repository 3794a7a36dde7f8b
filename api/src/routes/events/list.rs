//! `GET /v1/events`: the public listing, with full-text search and filters.

use axum::extract::State;
use boxoffice_models::events::{self, ListedEvent, SearchAfter, SearchFilters, SearchSort};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::cursor;
use super::support;
use crate::cache::{self, Scope};
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{Json, Query};
use crate::state::AppState;

const Q_MAX: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListSort {
    /// Soonest first (the default without `q`).
    StartsAt,
    /// Best match first (the default with `q`; needs `q`).
    Relevance,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListEventsParams {
    /// Full-text search in web-search syntax (`jazz "big band" -brunch`), at
    /// most 200 characters. Title matches rank above description, category and
    /// venue (name, city) matches.
    pub q: Option<String>,
    /// A category slug, e.g. `music`.
    pub category: Option<String>,
    /// The venue's city, case-insensitive.
    pub city: Option<String>,
    /// Only events starting at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only events starting before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Only events with a ticket type at this price or less (minor units).
    pub price_max: Option<i64>,
    /// `true`: only events with tickets left (with `price_max`: tickets left at that price).
    pub available: Option<bool>,
    // Inline: a parameter's schema is not collected into the document's
    // components, so a reference to it would point nowhere.
    #[param(inline)]
    pub sort: Option<ListSort>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, with the same filters and sort.
    pub cursor: Option<String>,
}

/// An event in the listing.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventSummary {
    pub id: Uuid,
    pub title: String,
    pub category: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub online: bool,
    pub venue: Option<VenueSummary>,
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    /// The cheapest ticket type's price, minor units.
    pub min_price_minor: Option<i64>,
    /// Tickets left over all ticket types (a few seconds old at most).
    pub available: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VenueSummary {
    pub id: Uuid,
    pub name: String,
    pub city: String,
    pub country: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventPage {
    pub items: Vec<EventSummary>,
    /// Pass as `cursor` (with the same filters) for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Published events that have not ended, filtered, searched and paged.
///
/// Pages are keyset-paginated: rows inserted or removed between requests never
/// make a page repeat or skip an event that was there all along.
#[utoipa::path(get, path = "/events", tag = "events",
    params(ListEventsParams),
    responses(
        (status = 200, description = "One page of events", body = EventPage),
        (status = 400, description = "`invalid_query` (with `field`) or `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_events(
    State(state): State<AppState>,
    Query(params): Query<ListEventsParams>,
) -> AppResult<Json<EventPage>> {
    let query = ListQuery::parse(params)?;
    let page = cache::get_or_load(&state, Scope::Listing, &query.cache_variant(), || async {
        let mut conn = state.conn().await?;
        let mut rows = events::search_published(
            &mut conn,
            &query.filters,
            query.sort,
            query.after,
            i64::from(query.limit) + 1,
        )
        .await?;
        // The extra row only says whether there is a next page.
        let next_cursor = if rows.len() > query.limit as usize {
            rows.truncate(query.limit as usize);
            rows.last().map(|row| query.cursor_after(row))
        } else {
            None
        };
        Ok(EventPage {
            items: rows.into_iter().map(EventSummary::from).collect(),
            next_cursor,
        })
    })
    .await?;
    Ok(Json(page))
}

impl From<ListedEvent> for EventSummary {
    fn from(row: ListedEvent) -> Self {
        let venue = match (
            row.venue_id,
            row.venue_name,
            row.venue_city,
            row.venue_country,
        ) {
            (Some(id), Some(name), Some(city), Some(country)) => Some(VenueSummary {
                id,
                name,
                city,
                country,
            }),
            _ => None,
        };
        EventSummary {
            id: row.id,
            title: row.title,
            category: row.category,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            online: row.online,
            venue,
            currency: row.currency,
            min_price_minor: row.min_price_minor,
            available: row.available,
        }
    }
}

/// A validated listing request.
#[derive(Debug, Clone, PartialEq)]
struct ListQuery {
    filters: SearchFilters,
    sort: SearchSort,
    after: Option<SearchAfter>,
    limit: u32,
}

fn invalid(field: &str, detail: impl Into<String>) -> AppError {
    AppError::bad_request("invalid_query", detail).with("field", field)
}

impl ListQuery {
    fn parse(params: ListEventsParams) -> AppResult<ListQuery> {
        let q = match params.q.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(q) if q.chars().count() > Q_MAX => {
                return Err(invalid(
                    "q",
                    format!("q must be at most {Q_MAX} characters"),
                ));
            }
            Some(q) if q.chars().any(char::is_control) => {
                return Err(invalid("q", "q must not contain control characters"));
            }
            Some(q) => Some(q.to_owned()),
        };
        let category = params
            .category
            .as_deref()
            .map(|c| {
                support::category("category", c)
                    .map_err(|_| invalid("category", "category must be a slug such as music"))
            })
            .transpose()?;
        let city = params
            .city
            .as_deref()
            .map(|c| {
                support::line("city", c, 100)
                    .map_err(|_| invalid("city", "city must be 1 to 100 printable characters"))
            })
            .transpose()?;
        let from = params
            .from
            .map(|at| {
                support::timestamp("from", at)
                    .map_err(|_| invalid("from", "from must be between the years 2000 and 9999"))
            })
            .transpose()?;
        let to = params
            .to
            .map(|at| {
                support::timestamp("to", at)
                    .map_err(|_| invalid("to", "to must be between the years 2000 and 9999"))
            })
            .transpose()?;
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(invalid("to", "to must be after from"));
        }
        let price_max = match params.price_max {
            Some(p) if !(0..=support::MONEY_MAX).contains(&p) => {
                return Err(invalid(
                    "price_max",
                    "price_max must be between 0 and 10^12 minor units",
                ));
            }
            other => other,
        };
        let sort = match (params.sort, &q) {
            (Some(ListSort::Relevance), None) => {
                return Err(invalid("sort", "sort=relevance needs a search query q"));
            }
            (Some(ListSort::Relevance), Some(_)) | (None, Some(_)) => SearchSort::Relevance,
            (Some(ListSort::StartsAt), _) | (None, None) => SearchSort::StartsAt,
        };
        let limit = cursor::page_limit(params.limit)?;
        let mut query = ListQuery {
            filters: SearchFilters {
                q,
                category,
                city,
                from,
                to,
                price_max,
                available_only: params.available.unwrap_or(false),
            },
            sort,
            after: None,
            limit,
        };
        if let Some(raw) = params.cursor.as_deref() {
            query.after = Some(
                query
                    .decode_cursor(raw)
                    .ok_or_else(cursor::invalid_cursor)?,
            );
        }
        Ok(query)
    }

    fn sort_name(&self) -> &'static str {
        match self.sort {
            SearchSort::StartsAt => "starts_at",
            SearchSort::Relevance => "relevance",
        }
    }

    /// Identifies the filters and sort a cursor belongs to.
    fn fingerprint(&self) -> String {
        let f = &self.filters;
        let canonical = format!(
            "{}\u{1f}{:?}\u{1f}{:?}\u{1f}{:?}\u{1f}{:?}\u{1f}{:?}\u{1f}{:?}\u{1f}{}",
            self.sort_name(),
            f.q,
            f.category,
            f.city.as_deref().map(str::to_lowercase),
            f.from.map(|t| t.timestamp_micros()),
            f.to.map(|t| t.timestamp_micros()),
            f.price_max,
            f.available_only,
        );
        hex::encode(&Sha256::digest(canonical.as_bytes())[..8])
    }

    fn cursor_after(&self, row: &ListedEvent) -> String {
        let key = match row.search_after(self.sort) {
            SearchAfter::StartsAt { starts_at, .. } => cursor::encode_time(starts_at),
            // The exact bits: the next page compares ranks for equality.
            SearchAfter::Relevance { rank, .. } => format!("{:08x}", rank.to_bits()),
        };
        cursor::encode(&[
            &key,
            &row.id.to_string(),
            self.sort_name(),
            &self.fingerprint(),
        ])
    }

    fn decode_cursor(&self, raw: &str) -> Option<SearchAfter> {
        let parts = cursor::decode(raw, 4)?;
        if parts[2] != self.sort_name() || parts[3] != self.fingerprint() {
            return None;
        }
        let id: Uuid = parts[1].parse().ok()?;
        match self.sort {
            SearchSort::StartsAt => Some(SearchAfter::StartsAt {
                starts_at: cursor::decode_time(&parts[0])?,
                id,
            }),
            SearchSort::Relevance => {
                if parts[0].len() != 8 {
                    return None;
                }
                let rank = f32::from_bits(u32::from_str_radix(&parts[0], 16).ok()?);
                rank.is_finite()
                    .then_some(SearchAfter::Relevance { rank, id })
            }
        }
    }

    /// The cache key part: everything that shapes the page.
    fn cache_variant(&self) -> String {
        let after = match self.after {
            None => String::new(),
            Some(SearchAfter::StartsAt { starts_at, id }) => {
                format!("{}:{id}", starts_at.timestamp_micros())
            }
            Some(SearchAfter::Relevance { rank, id }) => format!("{:08x}:{id}", rank.to_bits()),
        };
        format!("{}:{}:{after}", self.fingerprint(), self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ListEventsParams {
        ListEventsParams {
            q: None,
            category: None,
            city: None,
            from: None,
            to: None,
            price_max: None,
            available: None,
            sort: None,
            limit: None,
            cursor: None,
        }
    }

    fn row(rank: f32) -> ListedEvent {
        ListedEvent {
            id: Uuid::now_v7(),
            title: "t".into(),
            category: "music".into(),
            starts_at: DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
            ends_at: DateTime::from_timestamp_micros(1_800_000_100_000_000).unwrap(),
            online: true,
            currency: Some("EUR".into()),
            venue_id: None,
            venue_name: None,
            venue_city: None,
            venue_country: None,
            min_price_minor: Some(100),
            available: 3,
            rank,
        }
    }

    #[test]
    fn relevance_is_the_default_with_q_and_needs_q() {
        let q = ListQuery::parse(ListEventsParams {
            q: Some(" jazz ".into()),
            ..params()
        })
        .unwrap();
        assert_eq!(q.sort, SearchSort::Relevance);
        assert_eq!(q.filters.q.as_deref(), Some("jazz"));
        assert_eq!(
            ListQuery::parse(params()).unwrap().sort,
            SearchSort::StartsAt
        );
        assert!(
            ListQuery::parse(ListEventsParams {
                sort: Some(ListSort::Relevance),
                ..params()
            })
            .is_err()
        );
        // A blank q is no q.
        assert_eq!(
            ListQuery::parse(ListEventsParams {
                q: Some("  ".into()),
                ..params()
            })
            .unwrap()
            .filters
            .q,
            None
        );
    }

    #[test]
    fn cursors_round_trip_exactly_for_both_sorts() {
        let by_start = ListQuery::parse(params()).unwrap();
        let r = row(0.0);
        let c = by_start.cursor_after(&r);
        assert_eq!(
            by_start.decode_cursor(&c),
            Some(SearchAfter::StartsAt {
                starts_at: r.starts_at,
                id: r.id
            })
        );
        let by_rank = ListQuery::parse(ListEventsParams {
            q: Some("jazz".into()),
            ..params()
        })
        .unwrap();
        let r = row(0.060_792_7);
        let c = by_rank.cursor_after(&r);
        assert_eq!(
            by_rank.decode_cursor(&c),
            Some(SearchAfter::Relevance {
                rank: r.rank,
                id: r.id
            })
        );
    }

    #[test]
    fn a_cursor_only_fits_its_own_query() {
        let jazz = ListQuery::parse(ListEventsParams {
            q: Some("jazz".into()),
            ..params()
        })
        .unwrap();
        let rock = ListQuery::parse(ListEventsParams {
            q: Some("rock".into()),
            ..params()
        })
        .unwrap();
        let by_start = ListQuery::parse(ListEventsParams {
            q: Some("jazz".into()),
            sort: Some(ListSort::StartsAt),
            ..params()
        })
        .unwrap();
        let c = jazz.cursor_after(&row(0.5));
        assert!(rock.decode_cursor(&c).is_none());
        assert!(by_start.decode_cursor(&c).is_none());
        assert!(jazz.decode_cursor("garbage").is_none());
    }

    #[test]
    fn bad_filters_are_400s_naming_the_field() {
        let cases = [
            ListEventsParams {
                q: Some("x".repeat(201)),
                ..params()
            },
            ListEventsParams {
                q: Some("a\u{0}b".into()),
                ..params()
            },
            ListEventsParams {
                category: Some("Rock & Roll".into()),
                ..params()
            },
            ListEventsParams {
                price_max: Some(-1),
                ..params()
            },
            ListEventsParams {
                limit: Some(0),
                ..params()
            },
            ListEventsParams {
                limit: Some(101),
                ..params()
            },
            ListEventsParams {
                from: DateTime::from_timestamp(1_900_000_000, 0),
                to: DateTime::from_timestamp(1_800_000_000, 0),
                ..params()
            },
            ListEventsParams {
                from: DateTime::from_timestamp(-100_000_000_000, 0),
                ..params()
            },
            ListEventsParams {
                cursor: Some("nope".into()),
                ..params()
            },
        ];
        for case in cases {
            let debug = format!("{case:?}");
            assert!(ListQuery::parse(case).is_err(), "{debug}");
        }
    }
}
