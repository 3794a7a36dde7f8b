//! Opaque refresh tokens and the cookie that carries them.
//!
//! A token is 32 random bytes, base64url; only its SHA-256 is stored, so a
//! leaked table yields no usable token. Rotation and reuse detection live in
//! `boxoffice_models::sessions::rotate_refresh_token`.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const COOKIE_NAME: &str = "boxoffice_refresh";
/// The cookie goes only to the auth routes that read it (refresh, logout).
pub const COOKIE_PATH: &str = "/v1/auth";

/// A new refresh token and the digest to store.
pub struct NewRefreshToken {
    pub token: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> NewRefreshToken {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = digest(&token);
    NewRefreshToken { token, hash }
}

/// The stored form of a presented token. Any string hashes; one we never issued
/// simply matches no row.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// `Set-Cookie` carrying a refresh token: unreadable by scripts, HTTPS only,
/// never sent cross-site.
pub fn set_cookie(token: &str, ttl: Duration) -> HeaderValue {
    let value = format!(
        "{COOKIE_NAME}={token}; HttpOnly; Secure; SameSite=Strict; Path={COOKIE_PATH}; Max-Age={}",
        ttl.as_secs()
    );
    // The token is base64url, always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| clear_cookie())
}

/// `Set-Cookie` that deletes the refresh cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "boxoffice_refresh=; HttpOnly; Secure; SameSite=Strict; Path=/v1/auth; Max-Age=0",
    )
}

/// The refresh token from the request's cookies, if any.
pub fn from_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_random_bytes_in_base64url() {
        let a = generate();
        let b = generate();
        assert_ne!(a.token, b.token);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a.token).unwrap().len(), 32);
        assert_eq!(a.hash, digest(&a.token));
        assert_eq!(a.hash.len(), 32);
    }

    #[test]
    fn the_cookie_has_every_protective_attribute() {
        let c = set_cookie("tok", Duration::from_secs(60));
        let c = c.to_str().unwrap();
        for attr in [
            "boxoffice_refresh=tok",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/v1/auth",
            "Max-Age=60",
        ] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
    }

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; boxoffice_refresh=xyz; b=2"),
        );
        assert_eq!(from_cookie(&h).as_deref(), Some("xyz"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("boxoffice_refresh="),
        );
        assert_eq!(from_cookie(&h), None);
        assert_eq!(from_cookie(&HeaderMap::new()), None);
    }
}
