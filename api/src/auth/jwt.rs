//! Access tokens: HS256 JWTs, short-lived, naming their session.
//!
//! Validation pins the algorithm to HS256 (the `alg` header is never trusted:
//! `none` and asymmetric algorithms are refused before any signature check),
//! requires `exp`, `iss`, `aud` and `sub`, and checks issuer and audience. A
//! valid signature is not enough to get in: [`super::AuthUser`] also checks
//! that the session is live, so logout and disabling end the token's use.

use std::time::{SystemTime, UNIX_EPOCH};

use boxoffice_models::users::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::JwtConfig;

/// Clock skew tolerated between replicas, in seconds.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// Unique per token, for logs and future deny-lists.
    pub jti: String,
    /// Roles when the token was issued. Informative only: the API authorises
    /// with the roles in the database, so a role change applies at once.
    pub roles: Vec<String>,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
}

/// A freshly issued access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn issue(
    config: &JwtConfig,
    user_id: Uuid,
    session_id: Uuid,
    roles: &[Role],
) -> Result<AccessToken, jsonwebtoken::errors::Error> {
    let iat = now_secs();
    let expires_in = config.access_ttl.as_secs();
    let claims = Claims {
        sub: user_id.to_string(),
        sid: session_id.to_string(),
        jti: Uuid::new_v4().to_string(),
        roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
        iat,
        exp: iat + expires_in,
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&config.secret),
    )?;
    Ok(AccessToken { token, expires_in })
}

pub fn validation(config: &JwtConfig) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.algorithms = vec![Algorithm::HS256];
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.set_issuer(&[&config.issuer]);
    v.set_audience(&[&config.audience]);
    v.validate_exp = true;
    v.validate_aud = true;
    v.leeway = LEEWAY_SECS;
    v
}

/// The ids an access token names, once its signature and claims are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("the token's {0} is not a valid id")]
    BadId(&'static str),
}

/// Verifies signature and claims; does not look at the session (see `AuthUser`).
pub fn verify(config: &JwtConfig, token: &str) -> Result<VerifiedToken, TokenError> {
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(&config.secret),
        &validation(config),
    )?;
    let user_id = Uuid::parse_str(&data.claims.sub).map_err(|_| TokenError::BadId("sub"))?;
    let session_id = Uuid::parse_str(&data.claims.sid).map_err(|_| TokenError::BadId("sid"))?;
    Ok(VerifiedToken {
        user_id,
        session_id,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> JwtConfig {
        JwtConfig {
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            issuer: "boxoffice".into(),
            audience: "boxoffice-api".into(),
            access_ttl: Duration::from_secs(900),
        }
    }

    fn sign(config: &JwtConfig, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&config.secret),
        )
        .expect("signs")
    }

    fn claims(config: &JwtConfig) -> serde_json::Value {
        let now = now_secs();
        serde_json::json!({
            "sub": Uuid::new_v4().to_string(),
            "sid": Uuid::new_v4().to_string(),
            "jti": "j",
            "roles": ["participant"],
            "iat": now,
            "exp": now + 60,
            "iss": config.issuer,
            "aud": config.audience,
        })
    }

    #[test]
    fn issued_tokens_verify_and_name_their_session() {
        let c = config();
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let t = issue(&c, user, session, &[Role::Organizer]).expect("issues");
        assert_eq!(t.expires_in, 900);
        let v = verify(&c, &t.token).expect("verifies");
        assert_eq!(
            v,
            VerifiedToken {
                user_id: user,
                session_id: session
            }
        );
    }

    #[test]
    fn each_missing_required_claim_is_refused() {
        let c = config();
        for claim in ["exp", "iss", "aud", "sub"] {
            let mut body = claims(&c);
            body.as_object_mut().unwrap().remove(claim);
            assert!(
                verify(&c, &sign(&c, &body)).is_err(),
                "token without {claim} was accepted"
            );
        }
        assert!(
            verify(&c, &sign(&c, &claims(&c))).is_ok(),
            "the control token must pass"
        );
    }

    #[test]
    fn wrong_issuer_audience_or_key_is_refused() {
        let c = config();
        let mut body = claims(&c);
        body["iss"] = "someone-else".into();
        assert!(verify(&c, &sign(&c, &body)).is_err());

        let mut body = claims(&c);
        body["aud"] = "another-api".into();
        assert!(verify(&c, &sign(&c, &body)).is_err());

        let other = JwtConfig {
            secret: b"another key, also 32 bytes long!".to_vec(),
            ..config()
        };
        assert!(verify(&c, &sign(&other, &claims(&c))).is_err());
    }

    #[test]
    fn expiry_is_enforced_beyond_the_leeway() {
        let c = config();
        let mut body = claims(&c);
        body["exp"] = (now_secs() - LEEWAY_SECS - 2).into();
        assert!(verify(&c, &sign(&c, &body)).is_err());
    }

    #[test]
    fn other_algorithms_are_refused() {
        let c = config();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(&c),
            &EncodingKey::from_secret(&c.secret),
        )
        .unwrap();
        assert!(verify(&c, &token).is_err());
    }

    #[test]
    fn a_session_id_that_is_not_a_uuid_is_refused() {
        let c = config();
        let mut body = claims(&c);
        body["sid"] = "not-a-uuid".into();
        assert!(matches!(
            verify(&c, &sign(&c, &body)),
            Err(TokenError::BadId("sid"))
        ));
    }
}
