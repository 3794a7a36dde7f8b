//! `sessions` and `refresh_tokens`.
//!
//! A session is one login. Its refresh tokens form a family: every refresh marks
//! the presented token used and issues the next one in the same transaction.
//! Presenting a token that was already used means two parties hold the family
//! (a stolen token, or a replay): the whole session is revoked.
//!
//! Access tokens name their session; the API checks the session row on every
//! request, so revoking a session ends its access tokens at once on every replica.
//! Only SHA-256 digests of refresh tokens are stored.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{refresh_tokens, sessions, users};

/// Why a session was revoked, as stored in `sessions.revoked_reason`.
pub mod reasons {
    pub const LOGOUT: &str = "logout";
    pub const REFRESH_TOKEN_REUSE: &str = "refresh_token_reuse";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const USER_DISABLED: &str = "user_disabled";
}

/// How long a dead session is kept before [`purge_expired`] deletes it: the
/// lifetime of an access token, so a purge never races a token still in flight
/// (which the missing row would reject anyway) and recent revocations stay
/// visible to operators for a while.
pub const PURGE_GRACE: chrono::Duration = chrono::Duration::minutes(15);

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshToken {
    pub id: Uuid,
    pub session_id: Uuid,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = refresh_tokens)]
struct NewRefreshToken<'a> {
    id: Uuid,
    session_id: Uuid,
    token_hash: &'a [u8],
    expires_at: DateTime<Utc>,
}

/// Creates a session and its first refresh token, together.
pub async fn start(
    conn: &mut AsyncPgConnection,
    new: &NewSession,
    refresh_token_hash: &[u8],
) -> QueryResult<Session> {
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        let session = diesel::insert_into(sessions::table)
            .values(new)
            .returning(Session::as_returning())
            .get_result(c)
            .await?;
        insert_refresh_token(c, session.id, refresh_token_hash, new.expires_at).await?;
        Ok(session)
    })
    .await
}

async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(NewRefreshToken {
            id: Uuid::now_v7(),
            session_id,
            token_hash,
            expires_at,
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// A session that may be used right now, with its user's current roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub roles: Vec<String>,
    /// Until when the session may be used (a refresh moves it).
    pub expires_at: DateTime<Utc>,
}

/// The session `session_id` of user `user_id` if it is neither revoked nor
/// expired and its user is not disabled; one query, so every authenticated
/// request costs one round trip.
pub async fn find_live(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Option<LiveSession>> {
    let found = find_live_many(conn, &[session_id], now).await?;
    Ok(found.into_iter().find(|s| s.user_id == user_id))
}

/// Those of the sessions `session_ids` that are neither revoked nor expired
/// and whose user is not disabled, in one query (a session not there is not
/// live).
pub async fn find_live_many(
    conn: &mut AsyncPgConnection,
    session_ids: &[Uuid],
    now: DateTime<Utc>,
) -> QueryResult<Vec<LiveSession>> {
    let rows = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq_any(session_ids))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(users::disabled_at.is_null())
        .select((sessions::id, users::id, users::roles, sessions::expires_at))
        .load::<(Uuid, Uuid, Vec<String>, DateTime<Utc>)>(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(session_id, user_id, roles, expires_at)| LiveSession {
            session_id,
            user_id,
            roles,
            expires_at,
        })
        .collect())
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Session>> {
    sessions::table
        .find(id)
        .select(Session::as_select())
        .first(conn)
        .await
        .optional()
}

/// Revokes one session; `false` if it was already revoked or does not exist.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let n = diesel::update(
        sessions::table
            .find(session_id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Revokes every live session of a user except `keep` (the caller's own, when
/// changing a password); returns how many were revoked.
pub async fn revoke_all_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let mut target = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .into_boxed();
    if let Some(keep) = keep {
        target = target.filter(sessions::id.ne(keep));
    }
    // Boxed selects cannot be update targets; select the ids, then update them.
    let ids: Vec<Uuid> = target.select(sessions::id).load(conn).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(
        sessions::table
            .filter(sessions::id.eq_any(&ids))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .await
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now used, and the new one is stored.
    Rotated(LiveSession),
    /// The token had been used before: its session is now revoked.
    Reused { session_id: Uuid },
    /// Unknown, expired, or its session or user is no longer live.
    Invalid,
}

/// Consumes the refresh token whose digest is `presented` and stores `next` in
/// its place, valid until `now + ttl` (the session's expiry slides with it).
///
/// Marking the token used is one conditional UPDATE, so of two concurrent
/// refreshes with the same token exactly one wins; the other sees a used token
/// and revokes the family. The revocation is committed even though the caller
/// answers 401.
pub async fn rotate_refresh_token(
    conn: &mut AsyncPgConnection,
    presented: &[u8],
    next: &[u8],
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> QueryResult<Rotation> {
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        let consumed: Option<Uuid> = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(presented))
                .filter(refresh_tokens::used_at.is_null())
                .filter(refresh_tokens::expires_at.gt(now)),
        )
        .set(refresh_tokens::used_at.eq(now))
        .returning(refresh_tokens::session_id)
        .get_result(c)
        .await
        .optional()?;

        let Some(session_id) = consumed else {
            let known: Option<RefreshToken> = refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(presented))
                .select(RefreshToken::as_select())
                .first(c)
                .await
                .optional()?;
            return match known {
                Some(token) if token.used_at.is_some() => {
                    revoke(c, token.session_id, reasons::REFRESH_TOKEN_REUSE, now).await?;
                    Ok(Rotation::Reused {
                        session_id: token.session_id,
                    })
                }
                _ => Ok(Rotation::Invalid),
            };
        };

        // Extend the session only if it is still live. A conditional UPDATE waits
        // for a concurrent logout or revocation and then re-checks its WHERE, so
        // a session revoked meanwhile gets no new token.
        let expires_at = now + ttl;
        let extended: Option<Uuid> = diesel::update(
            sessions::table
                .find(session_id)
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(now)),
        )
        .set((
            sessions::last_used_at.eq(now),
            sessions::expires_at.eq(expires_at),
        ))
        .returning(sessions::user_id)
        .get_result(c)
        .await
        .optional()?;
        let Some(user_id) = extended else {
            return Ok(Rotation::Invalid);
        };
        let roles: Option<Vec<String>> = users::table
            .find(user_id)
            .filter(users::disabled_at.is_null())
            .select(users::roles)
            .first(c)
            .await
            .optional()?;
        let Some(roles) = roles else {
            return Ok(Rotation::Invalid);
        };
        insert_refresh_token(c, session_id, next, expires_at).await?;
        Ok(Rotation::Rotated(LiveSession {
            session_id,
            user_id,
            roles,
            expires_at,
        }))
    })
    .await
}

/// Deletes sessions (and, by cascade, their refresh tokens) that expired or were
/// revoked more than [`PURGE_GRACE`] before `now`. Idempotent: safe to run from
/// several workers at once.
pub async fn purge_expired(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    let cutoff = now - PURGE_GRACE;
    diesel::delete(
        sessions::table.filter(
            sessions::expires_at
                .lt(cutoff)
                .or(sessions::revoked_at.lt(cutoff)),
        ),
    )
    .execute(conn)
    .await
}
