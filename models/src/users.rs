//! `users`: accounts, their roles and whether they are disabled.
//!
//! Emails are stored normalised (trimmed, lower-cased) by the caller; the table's
//! CHECK constraint refuses anything else, so uniqueness is case-insensitive.
//! Roles are stored as `text[]` of [`Role::as_str`] names.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schema::users;

/// A role a user may hold; a user may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Participant,
    Organizer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Participant, Role::Organizer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Participant => "participant",
            Role::Organizer => "organizer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Role names as stored in `users.roles`, sorted and without duplicates.
pub fn role_names(roles: &[Role]) -> Vec<String> {
    let mut sorted = roles.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted.into_iter().map(|r| r.as_str().to_owned()).collect()
}

/// Parses stored role names. The table's CHECK admits only known names, so an
/// unknown one can only come from a newer schema: it is skipped, never granted.
pub fn parse_roles(names: &[String]) -> Vec<Role> {
    names.iter().filter_map(|n| Role::parse(n)).collect()
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Receives event reminders (see `preferences`).
    pub notify_reminders: bool,
    /// Receives organizers' messages.
    pub notify_messages: bool,
}

impl User {
    pub fn roles(&self) -> Vec<Role> {
        parse_roles(&self.roles)
    }
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: Uuid,
    /// Already normalised: trimmed and lower-cased.
    pub email: String,
    pub display_name: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub roles: Vec<String>,
}

impl NewUser {
    pub fn new(email: String, display_name: String, password_hash: String, roles: &[Role]) -> Self {
        NewUser {
            id: Uuid::now_v7(),
            email,
            display_name,
            password_hash,
            roles: role_names(roles),
        }
    }
}

/// Inserts a user; `None` when the email is already taken.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewUser) -> QueryResult<Option<User>> {
    diesel::insert_into(users::table)
        .values(new)
        .on_conflict(users::email)
        .do_nothing()
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// As [`find`], locking the row until the transaction ends.
pub async fn find_for_update(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Looks a user up by an already normalised email.
pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// Replaces the user's roles; `None` when there is no such user.
pub async fn set_roles(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    roles: &[Role],
) -> QueryResult<Option<User>> {
    diesel::update(users::table.find(id))
        .set((
            users::roles.eq(role_names(roles)),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Marks the user disabled, keeping the first time it was disabled (disabling
/// twice is harmless); `None` when there is no such user. Their sessions are
/// revoked separately, in the same transaction, by
/// [`crate::sessions::revoke_all_for_user`].
pub async fn disable(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Option<User>> {
    let updated = diesel::update(users::table.find(id).filter(users::disabled_at.is_null()))
        .set((users::disabled_at.eq(now), users::updated_at.eq(now)))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match updated {
        Some(user) => Ok(Some(user)),
        None => find(conn, id).await,
    }
}

pub async fn set_display_name(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    display_name: &str,
) -> QueryResult<User> {
    diesel::update(users::table.find(id))
        .set((
            users::display_name.eq(display_name),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_password_hash(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    password_hash: &str,
) -> QueryResult<User> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// Escapes `%`, `_` and `\` so user input matches literally in a LIKE pattern
/// (backslash is PostgreSQL's default LIKE escape character).
pub fn escape_like(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + 2);
    for c in input.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One page of users ordered by `(created_at, id)`, oldest first, optionally
/// filtered by a case-insensitive substring of the email or display name.
/// `after` is the `(created_at, id)` of the last row of the previous page.
pub async fn search(
    conn: &mut AsyncPgConnection,
    query: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<User>> {
    let mut q = users::table.select(User::as_select()).into_boxed();
    if let Some(text) = query.filter(|t| !t.is_empty()) {
        let pattern = format!("%{}%", escape_like(text));
        q = q.filter(
            users::email
                .ilike(pattern.clone())
                .or(users::display_name.ilike(pattern)),
        );
    }
    if let Some((created_at, id)) = after {
        q = q.filter(
            users::created_at
                .gt(created_at)
                .or(users::created_at.eq(created_at).and(users::id.gt(id))),
        );
    }
    q.order((users::created_at.asc(), users::id.asc()))
        .limit(limit)
        .load(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_like_escapes_wildcards_and_backslash() {
        assert_eq!(escape_like("a%b_c\\d"), "a\\%b\\_c\\\\d");
        assert_eq!(escape_like("plain"), "plain");
        assert_eq!(escape_like(""), "");
    }

    #[test]
    fn role_names_are_sorted_and_unique() {
        assert_eq!(
            role_names(&[Role::Admin, Role::Participant, Role::Admin]),
            vec!["participant".to_owned(), "admin".to_owned()]
        );
    }

    #[test]
    fn parse_roles_skips_unknown_names() {
        let names = vec!["organizer".to_owned(), "root".to_owned()];
        assert_eq!(parse_roles(&names), vec![Role::Organizer]);
    }

    #[test]
    fn role_round_trips_through_its_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Admin"), None);
    }
}
