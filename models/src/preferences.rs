//! What each participant wants to receive besides transactional email
//! (`users.notify_reminders`, `users.notify_messages`). Confirmations, refunds
//! and waitlist offers are always sent.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::users;
use crate::unsubscribe::MailingList;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct MailPreferences {
    pub notify_reminders: bool,
    pub notify_messages: bool,
}

/// A change to some of them; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct PreferenceChanges {
    pub notify_reminders: Option<bool>,
    pub notify_messages: Option<bool>,
}

impl PreferenceChanges {
    pub fn is_empty(&self) -> bool {
        self.notify_reminders.is_none() && self.notify_messages.is_none()
    }

    /// Leaving `list`.
    pub fn leave(list: MailingList) -> Self {
        match list {
            MailingList::Reminders => PreferenceChanges {
                notify_reminders: Some(false),
                ..Default::default()
            },
            MailingList::Messages => PreferenceChanges {
                notify_messages: Some(false),
                ..Default::default()
            },
        }
    }
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Option<MailPreferences>> {
    users::table
        .find(user_id)
        .select(MailPreferences::as_select())
        .first(conn)
        .await
        .optional()
}

/// Applies `changes`; `None` when there is no such user.
pub async fn update(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    changes: PreferenceChanges,
) -> QueryResult<Option<MailPreferences>> {
    if changes.is_empty() {
        return find(conn, user_id).await;
    }
    diesel::update(users::table.find(user_id))
        .set((changes, users::updated_at.eq(diesel::dsl::now)))
        .returning(MailPreferences::as_returning())
        .get_result(conn)
        .await
        .optional()
}
