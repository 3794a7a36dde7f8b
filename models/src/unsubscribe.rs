//! One-click unsubscribe links (RFC 8058): a signed token naming a participant
//! and a mailing list, so the link works without signing in and cannot be
//! made for somebody else.
//!
//! The token is an HS256 JWT signed with the server's JWT secret, under an
//! audience of its own ([`AUDIENCE`]): an access token is never accepted as an
//! unsubscribe token, nor the reverse (an access token also needs a session).
//! The workers sign when they build the email; the API verifies when the link
//! is used. Pure: no IO, shared by both.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The `aud` of every unsubscribe token, and only of them.
pub const AUDIENCE: &str = "boxoffice-unsubscribe";
/// The `iss` of every unsubscribe token.
pub const ISSUER: &str = "boxoffice";
/// How long a link in an email keeps working: long enough for a reminder read
/// weeks later, short enough that old mail stops being a key.
pub const VALID_FOR_SECS: u64 = 180 * 24 * 3600;

/// The lists a participant can leave; transactional email has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailingList {
    /// Reminders before an event (`users.notify_reminders`).
    Reminders,
    /// Organizers' messages (`users.notify_messages`).
    Messages,
}

impl MailingList {
    pub fn as_str(self) -> &'static str {
        match self {
            MailingList::Reminders => "reminders",
            MailingList::Messages => "messages",
        }
    }

    /// The list an email of `kind` can be left through, if any.
    pub fn for_kind(kind: &str) -> Option<MailingList> {
        match kind {
            "reminder" => Some(MailingList::Reminders),
            "organizer_message" => Some(MailingList::Messages),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    /// The participant's id.
    sub: Uuid,
    list: MailingList,
    iat: u64,
    exp: u64,
    iss: String,
    aud: String,
}

/// Who leaves which list, as a verified token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe {
    pub user_id: Uuid,
    pub list: MailingList,
}

#[derive(Debug, thiserror::Error)]
#[error("not a valid unsubscribe token: {0}")]
pub struct InvalidToken(#[from] jsonwebtoken::errors::Error);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token for `user_id` to leave `list`, valid for [`VALID_FOR_SECS`].
pub fn sign(secret: &[u8], user_id: Uuid, list: MailingList) -> String {
    sign_at(secret, user_id, list, now_secs())
}

/// [`sign`] as if issued at `iat` (seconds since the epoch): tests make
/// expired tokens with it.
pub fn sign_at(secret: &[u8], user_id: Uuid, list: MailingList, iat: u64) -> String {
    let claims = Claims {
        sub: user_id,
        list,
        iat,
        exp: iat + VALID_FOR_SECS,
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    // HS256 over a serialisable struct cannot fail.
    .expect("an HS256 token encodes")
}

/// Checks the signature (HS256 only), expiry, issuer and audience.
pub fn verify(secret: &[u8], token: &str) -> Result<Unsubscribe, InvalidToken> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)?;
    Ok(Unsubscribe {
        user_id: data.claims.sub,
        list: data.claims.list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"unit-test-secret-0123456789-abcdefghij";

    #[test]
    fn a_token_names_its_user_and_list_and_nothing_else_passes() {
        let user = Uuid::new_v4();
        let token = sign(KEY, user, MailingList::Messages);
        assert_eq!(
            verify(KEY, &token).unwrap(),
            Unsubscribe {
                user_id: user,
                list: MailingList::Messages
            }
        );
        assert!(verify(b"another-secret-0123456789-abcdefghijkl", &token).is_err());
        // One character of the payload changed: the signature no longer matches.
        let (head, rest) = token.split_once('.').unwrap();
        let mut payload: Vec<u8> = rest.as_bytes().to_vec();
        payload[3] = if payload[3] == b'A' { b'B' } else { b'A' };
        let altered = format!("{head}.{}", String::from_utf8(payload).unwrap());
        assert!(verify(KEY, &altered).is_err());
        let expired = sign_at(KEY, user, MailingList::Reminders, 1_000_000);
        assert!(verify(KEY, &expired).is_err());
    }
}
