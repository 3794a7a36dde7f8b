//! `venues`: where events happen.
//!
//! Venues are shared: any organizer's event may take place at any venue. The
//! creator (and admins) may edit one. The time zone must be an IANA name the
//! server knows; the table's CHECK (`venues_timezone_check`) refuses anything else.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{events, venues};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = venues, check_for_backend(diesel::pg::Pg))]
pub struct Venue {
    pub id: Uuid,
    pub created_by: Uuid,
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
    pub timezone: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = venues)]
pub struct NewVenue {
    pub id: Uuid,
    pub created_by: Uuid,
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
    pub timezone: String,
}

/// A partial update: `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = venues)]
pub struct VenueChanges {
    pub name: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub timezone: Option<String>,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewVenue) -> QueryResult<Venue> {
    diesel::insert_into(venues::table)
        .values(new)
        .returning(Venue::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Venue>> {
    venues::table
        .find(id)
        .select(Venue::as_select())
        .first(conn)
        .await
        .optional()
}

/// A page of venues ordered by (name, id), optionally in one city (case-insensitive).
pub async fn list(
    conn: &mut AsyncPgConnection,
    city: Option<&str>,
    after: Option<(&str, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<Venue>> {
    let mut query = venues::table.select(Venue::as_select()).into_boxed();
    if let Some(city) = city {
        query = query.filter(lower(venues::city).eq(city.to_lowercase()));
    }
    if let Some((name, id)) = after {
        query = query.filter(
            venues::name
                .gt(name.to_owned())
                .or(venues::name.eq(name.to_owned()).and(venues::id.gt(id))),
        );
    }
    query
        .order((venues::name.asc(), venues::id.asc()))
        .limit(limit)
        .load(conn)
        .await
}

/// Applies `changes`; `None` when the venue does not exist.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &VenueChanges,
) -> QueryResult<Option<Venue>> {
    diesel::update(venues::table.find(id))
        .set((changes, venues::updated_at.eq(diesel::dsl::now)))
        .returning(Venue::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Deletes a venue; `false` when it did not exist. A venue that an event still
/// uses fails with the foreign-key violation `events_venue_id_fkey`.
pub async fn delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    let deleted = diesel::delete(venues::table.find(id)).execute(conn).await?;
    Ok(deleted == 1)
}

/// The events held at a venue: their cached views embed the venue.
pub async fn event_ids(conn: &mut AsyncPgConnection, venue_id: Uuid) -> QueryResult<Vec<Uuid>> {
    events::table
        .filter(events::venue_id.eq(venue_id))
        .select(events::id)
        .load(conn)
        .await
}

diesel::define_sql_function! {
    /// Postgres `lower(text)`.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
