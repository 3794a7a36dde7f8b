//! One error type for every handler, rendered as `application/problem+json`
//! (RFC 9457) with a stable machine-readable `code`.
//!
//! User errors keep their status and say what is wrong; internal errors become
//! an opaque 500 and are logged once, here. The request id is added to every
//! problem body by [`crate::middleware::problem`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

pub const PROBLEM_JSON: &str = "application/problem+json";

pub type AppResult<T> = Result<T, AppError>;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` style, stable per code).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// Stable, machine-readable; clients branch on this, never on `detail`.
    pub code: String,
    pub detail: String,
    /// Extra fields for the client (e.g. the field that failed, current numbers).
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A client error with its status, code and message.
    #[error("{code}: {detail}")]
    Client {
        status: StatusCode,
        code: &'static str,
        detail: String,
        extra: serde_json::Map<String, Value>,
        headers: Vec<(header::HeaderName, HeaderValue)>,
    },
    /// A dependency is unavailable (database pool exhausted, Redis down): retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Anything else: logged with its cause chain, answered with an opaque 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        AppError::Client {
            status,
            code,
            detail: detail.into(),
            extra: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }

    /// Adds a field to the problem body (e.g. `field`, `available`). The
    /// problem's own members (`type`, `title`, `status`, `code`, `detail`,
    /// `request_id`) cannot be overwritten this way.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        const RESERVED: [&str; 6] = ["type", "title", "status", "code", "detail", "request_id"];
        debug_assert!(
            !RESERVED.contains(&key),
            "problem member {key:?} is reserved"
        );
        if RESERVED.contains(&key) {
            return self;
        }
        if let AppError::Client { extra, .. } = &mut self {
            extra.insert(
                key.to_owned(),
                serde_json::to_value(value).unwrap_or(Value::Null),
            );
        }
        self
    }

    /// Adds a response header (e.g. `Retry-After`).
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        if let AppError::Client { headers, .. } = &mut self {
            headers.push((name, value));
        }
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
    pub fn validation(field: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        )
        .with("field", field)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }
    pub fn too_many_requests(code: &'static str, retry_after_secs: u64) -> Self {
        let secs = retry_after_secs.max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code,
            format!("too many requests; retry in {secs} s"),
        )
        .with("retry_after", secs)
        .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
    }
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }
}

/// Builds the problem body for a status and code; shared with the middleware that
/// turns bare error responses (405, 408, 413 from layers) into problems.
pub fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
    Problem {
        kind: format!("https://boxoffice.dev/problems/{}", code.replace('_', "-")),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        code: code.to_owned(),
        detail: detail.into(),
        extra: serde_json::Map::new(),
    }
}

pub fn problem_response(status: StatusCode, body: &Problem) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        bytes,
    )
        .into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Client {
                status,
                code,
                detail,
                extra,
                headers,
            } => {
                let mut body = problem(status, code, detail);
                body.extra = extra;
                let mut response = problem_response(status, &body);
                for (name, value) in headers {
                    response.headers_mut().append(name, value);
                }
                response
            }
            AppError::Unavailable(reason) => {
                tracing::warn!(error.reason = %reason, "dependency unavailable");
                let body = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "a backing service is unavailable; retry shortly",
                );
                let mut response = problem_response(StatusCode::SERVICE_UNAVAILABLE, &body);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            AppError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                let body = problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal error occurred",
                );
                problem_response(StatusCode::INTERNAL_SERVER_ERROR, &body)
            }
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &err {
            Error::NotFound => AppError::not_found("resource"),
            // The connection went away under the query: a restart or failover
            // of Postgres, not a fault of the request. diesel-async reports a
            // connection lost without a server message as `UnableToSendCommand`.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => AppError::Unavailable(err.to_string()),
            // Postgres ending its sessions (SQLSTATE class 57: a shutdown, a
            // crash of another backend). diesel does not pass the SQLSTATE on,
            // so the server's own message is what tells it.
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().starts_with("terminating connection") =>
            {
                AppError::Unavailable(err.to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AppError::conflict("conflict", "a concurrent change won; retry the request")
            }
            _ => AppError::Internal(err.into()),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        AppError::Unavailable(format!("database pool: {err}"))
    }
}

impl From<redis::RedisError> for AppError {
    fn from(err: redis::RedisError) -> Self {
        AppError::Unavailable(format!("redis: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn status_of(err: Error) -> StatusCode {
        AppError::from(err).into_response().status()
    }

    #[test]
    fn a_database_that_went_away_is_unavailable_not_an_internal_error() {
        let lost = Error::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("connection closed".to_owned()),
        );
        assert_eq!(status_of(lost), StatusCode::SERVICE_UNAVAILABLE);
        let shutdown = Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("terminating connection due to administrator command".to_owned()),
        );
        assert_eq!(status_of(shutdown), StatusCode::SERVICE_UNAVAILABLE);
        let other = Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("division by zero".to_owned()),
        );
        assert_eq!(status_of(other), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
