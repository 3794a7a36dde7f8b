//! `If-Match` (RFC 9110 §13.1.1) on updates of versioned catalog data.
//!
//! A resource's ETag is its version in quotes (`"3"`). The header is `*` or a
//! list of entity tags; it matches when it is `*` (the resource exists) or
//! when any of its tags is the current ETag by strong comparison, so a weak
//! tag (`W/"3"`) never matches. A well-formed header that does not match is
//! 412 `version_mismatch`; a malformed one is 400 `invalid_if_match`.
//!
//! [`IfMatch`] is the extractor of routes that require the header (428
//! `precondition_required` without it); `Option<IfMatch>` that of routes
//! where it is optional.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};

use crate::error::{AppError, AppResult};

/// A parsed `If-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current representation.
    Any,
    /// The entity tags listed, in order.
    Tags(Vec<EntityTag>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    /// Between the quotes.
    pub opaque: String,
}

impl IfMatch {
    /// The versions this header accepts the write at: `None` for any, else
    /// those named by a strong tag (possibly none, when no tag names a
    /// version: nothing matches).
    pub fn versions(&self) -> Option<Vec<i32>> {
        match self {
            IfMatch::Any => None,
            IfMatch::Tags(tags) => Some(
                tags.iter()
                    .filter(|t| !t.weak)
                    .filter_map(|t| version_of(&t.opaque))
                    .collect(),
            ),
        }
    }

    /// Whether the header matches a resource at `version`.
    pub fn matches(&self, version: i32) -> bool {
        self.versions().is_none_or(|v| v.contains(&version))
    }

    /// Parses the header's field lines (several read as one list).
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a HeaderValue>) -> Option<IfMatch> {
        let mut any = false;
        let mut tags = Vec::new();
        let mut seen_line = false;
        for line in lines {
            seen_line = true;
            let mut rest = line.as_bytes();
            loop {
                rest = rest.trim_ascii_start();
                // Empty list elements are allowed (RFC 9110 §5.6.1).
                if let Some(after) = rest.strip_prefix(b",") {
                    rest = after;
                    continue;
                }
                if rest.is_empty() {
                    break;
                }
                if let Some(after) = rest.strip_prefix(b"*") {
                    any = true;
                    rest = after;
                } else {
                    let (tag, after) = entity_tag(rest)?;
                    tags.push(tag);
                    rest = after;
                }
                rest = rest.trim_ascii_start();
                match rest.first() {
                    None => break,
                    Some(b',') => rest = &rest[1..],
                    Some(_) => return None,
                }
            }
        }
        match (seen_line, any, tags.is_empty()) {
            (true, true, true) => Some(IfMatch::Any),
            (true, false, false) => Some(IfMatch::Tags(tags)),
            // Nothing listed, or `*` mixed with tags.
            _ => None,
        }
    }

    /// The versions to write at, or 412 when the resource, now at `current`,
    /// does not match.
    pub fn check(&self, current: i32, what: &str) -> AppResult<Option<Vec<i32>>> {
        if self.matches(current) {
            Ok(self.versions())
        } else {
            Err(version_mismatch(current, what))
        }
    }
}

/// `[W/]"…"` at the start of `input`, and what follows it.
fn entity_tag(input: &[u8]) -> Option<(EntityTag, &[u8])> {
    let (weak, rest) = match input.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let opaque = &rest[..end];
    // etagc = %x21 / %x23-7E / obs-text
    if !opaque.iter().all(|&b| b == 0x21 || b >= 0x23 && b != 0x7f) {
        return None;
    }
    let tag = EntityTag {
        weak,
        opaque: String::from_utf8_lossy(opaque).into_owned(),
    };
    Some((tag, &rest[end + 1..]))
}

/// The version an opaque tag names: the ETags we send are positive decimal
/// versions. Any other tag is well-formed but names no version.
fn version_of(opaque: &str) -> Option<i32> {
    let digits = !opaque.is_empty() && opaque.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| opaque.parse::<i32>().ok())
        .flatten()
        .filter(|v| *v >= 1)
}

fn invalid_if_match() -> AppError {
    AppError::bad_request(
        "invalid_if_match",
        "If-Match must be * or a list of quoted entity tags, e.g. If-Match: \"3\"",
    )
    .with("field", "If-Match")
}

fn from_parts(parts: &Parts) -> Result<Option<IfMatch>, AppError> {
    let mut lines = parts.headers.get_all(header::IF_MATCH).iter().peekable();
    if lines.peek().is_none() {
        return Ok(None);
    }
    IfMatch::parse(lines).map(Some).ok_or_else(invalid_if_match)
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> AppResult<Self> {
        from_parts(parts)?.ok_or_else(|| {
            AppError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "send If-Match with the version you last read (the `version` field or the ETag)",
            )
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for IfMatch {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> AppResult<Option<Self>> {
        from_parts(parts)
    }
}

/// The strong ETag of a version, as `If-Match` accepts it back.
pub fn etag(version: i32) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header value")
}

/// 412: `what` (e.g. "event") is at `current`, which the header did not name.
pub fn version_mismatch(current: i32, what: &str) -> AppError {
    AppError::new(
        StatusCode::PRECONDITION_FAILED,
        "version_mismatch",
        format!(
            "the {what} changed since you read it (now at version {current}); reload and retry"
        ),
    )
    .with("current_version", current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Option<IfMatch> {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_bytes(l.as_bytes()).unwrap())
            .collect();
        IfMatch::parse(&values)
    }

    fn strong(opaque: &str) -> EntityTag {
        EntityTag {
            weak: false,
            opaque: opaque.into(),
        }
    }

    #[test]
    fn well_formed_headers() {
        assert_eq!(parse(&["*"]), Some(IfMatch::Any));
        assert_eq!(parse(&[" * "]), Some(IfMatch::Any));
        assert_eq!(parse(&["\"3\""]), Some(IfMatch::Tags(vec![strong("3")])));
        assert_eq!(
            parse(&["\"1\", W/\"2\",,\"a,b\""]),
            Some(IfMatch::Tags(vec![
                strong("1"),
                EntityTag {
                    weak: true,
                    opaque: "2".into()
                },
                strong("a,b"),
            ]))
        );
        assert_eq!(
            parse(&["\"1\"", "\"2\""]),
            Some(IfMatch::Tags(vec![strong("1"), strong("2")]))
        );
        assert_eq!(parse(&["\"\""]), Some(IfMatch::Tags(vec![strong("")])));
    }

    #[test]
    fn malformed_headers() {
        for bad in [
            "",
            " ",
            ",",
            "3",
            "abc",
            "\"3",
            "3\"",
            "\"3\" \"4\"",
            "\"3\"x",
            "*, \"3\"",
            "* *",
            "w/\"3\"",
            "W/3",
            "\"a\"b\"",
        ] {
            assert_eq!(parse(&[bad]), None, "{bad:?}");
        }
    }

    #[test]
    fn strong_comparison_against_the_version() {
        let m = |h: &str, v: i32| parse(&[h]).unwrap().matches(v);
        assert!(m("\"3\"", 3));
        assert!(!m("\"3\"", 4));
        assert!(!m("\"0\"", 1));
        assert!(!m("W/\"3\"", 3), "weak tags never match");
        assert!(m("\"1\", \"3\"", 3));
        assert!(!m("\"1\", \"2\"", 3));
        assert!(m("*", 7));
        assert!(!m("\"abc\"", 1));
        assert!(!m("\"99999999999\"", 1));
        assert_eq!(
            parse(&["\"2\", W/\"3\", \"x\""]).unwrap().versions(),
            Some(vec![2])
        );
        assert_eq!(parse(&["*"]).unwrap().versions(), None);
    }
}
