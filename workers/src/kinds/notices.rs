//! What every email a workflow queues needs to know: where it goes and what
//! event it is about.

use boxoffice_models::schema::{events, users};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The participant's email address and the event's title.
pub async fn recipient_and_event(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    event_id: Uuid,
) -> QueryResult<(String, String)> {
    let email: String = users::table
        .find(user_id)
        .select(users::email)
        .first(conn)
        .await?;
    let title: String = events::table
        .find(event_id)
        .select(events::title)
        .first(conn)
        .await?;
    Ok((email, title))
}
