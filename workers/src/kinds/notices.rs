//! What every email a workflow queues says about its event. Where the email
//! goes is read by the notification's insert itself
//! (`notifications::Recipient::Account`).

use boxoffice_models::schema::events;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The event's title.
pub async fn event_title(conn: &mut AsyncPgConnection, event_id: Uuid) -> QueryResult<String> {
    events::table
        .find(event_id)
        .select(events::title)
        .first(conn)
        .await
}
