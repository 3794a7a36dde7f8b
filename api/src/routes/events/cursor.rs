//! Opaque keyset cursors for the catalog's lists, and page limits.
//!
//! A cursor is the sort key of the last row of a page plus its id, base64url
//! encoded; clients must treat it as opaque. The public listing's cursor also
//! names its sort and a fingerprint of its filters, so a cursor can't be
//! replayed against a different query (400 `invalid_cursor` instead of a page
//! that skips or repeats rows).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use crate::error::AppError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// Longer than any cursor we issue (a 200-character venue name, base64'd); longer
/// input is refused unread.
const CURSOR_MAX: usize = 1200;
const SEPARATOR: char = '|';

/// Joins `parts`. Only the first part may contain the separator: [`decode`]
/// splits from the right, so a free-text sort key (a venue name) goes first.
pub fn encode(parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join(&SEPARATOR.to_string()))
}

/// Splits a cursor into exactly `n` parts; the first part may contain the separator.
pub fn decode(cursor: &str, n: usize) -> Option<Vec<String>> {
    if cursor.len() > CURSOR_MAX || n == 0 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts: Vec<String> = text.rsplitn(n, SEPARATOR).map(str::to_owned).collect();
    if parts.len() != n {
        return None;
    }
    parts.reverse();
    Some(parts)
}

pub fn invalid_cursor() -> AppError {
    AppError::bad_request(
        "invalid_cursor",
        "the cursor is not valid for this query; start from the first page",
    )
    .with("field", "cursor")
}

/// A timestamp to the microsecond (Postgres' precision), so a cursor names a row exactly.
pub fn encode_time(at: DateTime<Utc>) -> String {
    at.timestamp_micros().to_string()
}

pub fn decode_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(raw.parse().ok()?)
}

/// The `limit` query parameter: 1 to 100, default 20.
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
    use super::*;

    #[test]
    fn parts_round_trip_even_with_separators_in_the_first() {
        let c = encode(&["Club | Bar", "0190d6e0-0000-7000-8000-000000000000"]);
        assert_eq!(
            decode(&c, 2).unwrap(),
            vec![
                "Club | Bar".to_owned(),
                "0190d6e0-0000-7000-8000-000000000000".to_owned()
            ]
        );
        assert_eq!(decode(&encode(&["a"]), 2), None);
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for bad in ["!!!", "%%", &"A".repeat(5000)] {
            assert_eq!(decode(bad, 2), None, "{bad:?}");
        }
        assert_eq!(decode_time("soon"), None);
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        assert_eq!(decode_time(&encode_time(at)), Some(at));
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
    }
}
