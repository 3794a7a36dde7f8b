//! Stripe's webhook signature scheme, as Stripe documents it
//! (<https://docs.stripe.com/webhooks#verify-manually>).
//!
//! The `Stripe-Signature` header is a list `t=<unix time>,v1=<hex>,v1=<hex>,v0=<hex>`.
//! A `v1` is HMAC-SHA256, keyed with the endpoint secret (the whole `whsec_…`
//! string, as bytes), over `"{t}.{raw body}"`. The request is genuine when any
//! `v1` matches for any of our secrets (several during a rotation) and `t` is
//! within the tolerance of now. Other schemes (`v0` is the test-mode scheme)
//! are ignored, as Stripe's libraries do.
//!
//! Verification works on the raw bytes, before any JSON parsing: re-serialised
//! JSON would not hash the same.
//!
//! One difference from Stripe's libraries: they reject only timestamps too far
//! in the *past*; here a timestamp more than the tolerance in the future is
//! refused too (`|now - t| <= tolerance`), so a leaked signature cannot be
//! pre-dated to live longer.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The request header carrying the signature.
pub const HEADER: &str = "stripe-signature";

/// Stripe's default tolerance: five minutes.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The deployment has no webhook secret: nothing can be verified.
    #[error("no webhook secret is configured")]
    NoSecrets,
    #[error("the signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the signature header has no v1 signature")]
    NoSignature,
    #[error("no v1 signature matches the body for any configured secret")]
    Mismatch,
    #[error(
        "the signature's timestamp {timestamp} is more than {tolerance_secs} s away from now ({now})"
    )]
    Stale {
        timestamp: i64,
        now: i64,
        tolerance_secs: i64,
    },
}

/// Checks a webhook request. Returns the signed timestamp.
///
/// Every secret is tried against every `v1` value; each comparison is
/// constant-time (`Mac::verify_slice`), so timing reveals nothing about how
/// much of a forged signature was right.
pub fn verify(
    header: &str,
    raw_body: &[u8],
    secrets: &[String],
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    let parsed = parse(header)?;
    if parsed.v1.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    let matched = secrets.iter().any(|secret| {
        let mac = keyed_mac(secret, parsed.timestamp_text, raw_body);
        parsed
            .v1
            .iter()
            .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    if now.abs_diff(parsed.timestamp) > tolerance {
        return Err(SignatureError::Stale {
            timestamp: parsed.timestamp,
            now,
            tolerance_secs,
        });
    }
    Ok(parsed.timestamp)
}

/// The header value Stripe would send for `body` signed at `timestamp`
/// (`t=…,v1=…`). The sandbox provider and the tests sign with this.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        signature_hex(secret, timestamp, body)
    )
}

/// Only the `v1` value, hex (for building headers with several signatures).
pub fn signature_hex(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(
        keyed_mac(secret, &timestamp.to_string(), body)
            .finalize()
            .into_bytes(),
    )
}

/// The MAC over `"{t}.{body}"`, with `t` exactly as it appears in the header.
fn keyed_mac(secret: &str, timestamp_text: &str, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

struct ParsedHeader<'a> {
    timestamp: i64,
    /// The timestamp as sent: it is what was signed.
    timestamp_text: &'a str,
    /// Decoded `v1` values; values that are not hex cannot match and are dropped.
    v1: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<ParsedHeader<'_>, SignatureError> {
    let mut timestamp: Option<&str> = None;
    let mut v1 = Vec::new();
    for item in header.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((scheme, value)) = item.split_once('=') else {
            return Err(SignatureError::Malformed("an element is not key=value"));
        };
        match scheme.trim() {
            "t" if timestamp.is_some() => {
                return Err(SignatureError::Malformed("more than one timestamp"));
            }
            "t" => timestamp = Some(value.trim()),
            "v1" => {
                if let Ok(bytes) = hex::decode(value.trim()) {
                    v1.push(bytes);
                }
            }
            // v0 (test mode) and any future scheme.
            _ => {}
        }
    }
    let timestamp_text = timestamp.ok_or(SignatureError::Malformed("no timestamp"))?;
    let timestamp = timestamp_text
        .parse::<i64>()
        .map_err(|_| SignatureError::Malformed("the timestamp is not an integer"))?;
    Ok(ParsedHeader {
        timestamp,
        timestamp_text,
        v1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    const T: i64 = 1_700_000_000;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matches_an_independent_implementation_of_the_scheme() {
        // python3: hmac.new(b"whsec_test_secret", b"1700000000." + BODY, sha256).hexdigest()
        assert_eq!(
            signature_hex(SECRET, T, BODY),
            "22d8dc182f5c588077683bd378368e29765bfe5df2560112b4f28fef120f0e31"
        );
        let header =
            "t=1700000000,v1=22d8dc182f5c588077683bd378368e29765bfe5df2560112b4f28fef120f0e31";
        assert_eq!(verify(header, BODY, &secrets(&[SECRET]), T, 300), Ok(T));
    }

    #[test]
    fn a_signed_body_verifies_and_returns_its_timestamp() {
        let header = sign(SECRET, T, BODY);
        assert_eq!(
            verify(&header, BODY, &secrets(&[SECRET]), T + 10, 300),
            Ok(T)
        );
    }

    #[test]
    fn a_changed_body_does_not_verify() {
        let header = sign(SECRET, T, BODY);
        let tampered = br#"{"id":"evt_1","type":"payment_intent.succeeded" }"#;
        assert_eq!(
            verify(&header, tampered, &secrets(&[SECRET]), T, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn another_secret_does_not_verify() {
        let header = sign("whsec_someone_else", T, BODY);
        assert_eq!(
            verify(&header, BODY, &secrets(&[SECRET]), T, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_timestamp_is_part_of_what_is_signed() {
        let v1 = signature_hex(SECRET, T, BODY);
        let replayed = format!("t={},v1={v1}", T + 60);
        assert_eq!(
            verify(&replayed, BODY, &secrets(&[SECRET]), T + 60, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_of_several_v1_values_may_match() {
        let good = signature_hex(SECRET, T, BODY);
        let header = format!("t={T},v1={},v1=not-hex,v1={good}", "ab".repeat(32));
        assert_eq!(verify(&header, BODY, &secrets(&[SECRET]), T, 300), Ok(T));
    }

    #[test]
    fn any_of_several_secrets_may_match_during_a_rotation() {
        let both = secrets(&["whsec_old", "whsec_new"]);
        for secret in ["whsec_old", "whsec_new"] {
            let header = sign(secret, T, BODY);
            assert_eq!(verify(&header, BODY, &both, T, 300), Ok(T), "{secret}");
        }
        let header = sign("whsec_retired", T, BODY);
        assert_eq!(
            verify(&header, BODY, &both, T, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn other_schemes_are_ignored() {
        let good = signature_hex(SECRET, T, BODY);
        let header = format!("t={T}, v0={good}, v2=abcd, v1={good}, x=y");
        assert_eq!(verify(&header, BODY, &secrets(&[SECRET]), T, 300), Ok(T));
        // A v0 alone is not a v1: test-mode signatures are not accepted.
        let only_v0 = format!("t={T},v0={good}");
        assert_eq!(
            verify(&only_v0, BODY, &secrets(&[SECRET]), T, 300),
            Err(SignatureError::NoSignature)
        );
    }

    #[test]
    fn the_timestamp_must_be_within_the_tolerance_either_way() {
        let header = sign(SECRET, T, BODY);
        let secrets = secrets(&[SECRET]);
        assert_eq!(verify(&header, BODY, &secrets, T + 300, 300), Ok(T));
        assert_eq!(verify(&header, BODY, &secrets, T - 300, 300), Ok(T));
        assert_eq!(
            verify(&header, BODY, &secrets, T + 301, 300),
            Err(SignatureError::Stale {
                timestamp: T,
                now: T + 301,
                tolerance_secs: 300
            })
        );
        assert!(matches!(
            verify(&header, BODY, &secrets, T - 301, 300),
            Err(SignatureError::Stale { .. })
        ));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = signature_hex(SECRET, T, BODY);
        let secrets = secrets(&[SECRET]);
        for header in [
            String::new(),
            format!("v1={good}"),
            format!("t=yesterday,v1={good}"),
            format!("t={T},t={T},v1={good}"),
            format!("t={T},{good}"),
            format!("t={},v1={good}", i64::MAX as i128 + 1),
        ] {
            assert!(
                matches!(
                    verify(&header, BODY, &secrets, T, 300),
                    Err(SignatureError::Malformed(_))
                ),
                "{header:?}"
            );
        }
        assert_eq!(
            verify(&format!("t={T}"), BODY, &secrets, T, 300),
            Err(SignatureError::NoSignature)
        );
    }

    #[test]
    fn nothing_verifies_without_a_secret() {
        let header = sign(SECRET, T, BODY);
        assert_eq!(
            verify(&header, BODY, &[], T, 300),
            Err(SignatureError::NoSecrets)
        );
    }

    #[test]
    fn an_extreme_timestamp_is_stale_not_a_panic() {
        let header = sign(SECRET, i64::MIN, BODY);
        assert!(matches!(
            verify(&header, BODY, &secrets(&[SECRET]), i64::MAX, 300),
            Err(SignatureError::Stale { .. })
        ));
    }
}
