//! Opaque keyset-pagination cursors and page limits.
//!
//! A cursor is the `(created_at, id)` of the last row of a page, base64url
//! encoded. Clients must treat it as opaque; the encoding may change.
//! Timestamps are kept to the microsecond, PostgreSQL's precision, so a
//! cursor names a row exactly.

use std::fmt::Display;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use crate::error::AppError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;
/// Far longer than any cursor we issue; longer input is refused unread.
const CURSOR_MAX: usize = 200;

pub fn encode<I: Display>(created_at: DateTime<Utc>, id: I) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", created_at.timestamp_micros()))
}

pub fn decode<I: FromStr>(cursor: &str) -> Option<(DateTime<Utc>, I)> {
    if cursor.len() > CURSOR_MAX {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (micros, id) = text.split_once('|')?;
    let created_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((created_at, id.parse().ok()?))
}

/// Decodes an optional `cursor` query parameter; 400 `invalid_cursor` when it
/// is not one we issued.
pub fn decode_param<I: FromStr>(
    cursor: Option<&str>,
) -> Result<Option<(DateTime<Utc>, I)>, AppError> {
    match cursor {
        None => Ok(None),
        Some(c) => decode(c).map(Some).ok_or_else(|| {
            AppError::bad_request(
                "invalid_cursor",
                "the cursor is not valid; start from the first page",
            )
            .with("field", "cursor")
        }),
    }
}

/// The `limit` query parameter: 1 to 100, default 50.
pub fn page_limit(limit: Option<u32>) -> Result<u32, AppError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(
            AppError::bad_request("invalid_query", "limit must be between 1 and 100")
                .with("field", "limit"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_cursor_round_trips_to_the_microsecond() {
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        let c = encode(at, id);
        assert_eq!(decode::<Uuid>(&c), Some((at, id)));
        let c = encode(at, 42_i64);
        assert_eq!(decode::<i64>(&c), Some((at, 42)));
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for bad in [
            "",
            "!!!",
            "bm9waXBl",
            &URL_SAFE_NO_PAD.encode("x|1"),
            &"A".repeat(500),
        ] {
            assert_eq!(decode::<i64>(bad), None, "{bad:?}");
        }
        // Well-formed, but the id is of the wrong kind.
        let c = encode(Utc::now(), 42_i64);
        assert_eq!(decode::<Uuid>(&c), None);
        assert!(decode_param::<i64>(Some("nope")).is_err());
        assert_eq!(decode_param::<i64>(None).unwrap(), None);
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), 50);
        assert_eq!(page_limit(Some(1)).unwrap(), 1);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
    }
}
