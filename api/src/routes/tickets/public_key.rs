//! `GET /v1/tickets/public-key`: what a scanner needs to verify tickets offline.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use boxoffice_models::ticket_codes::{ALGORITHM, FORMAT};
use serde::Serialize;

use crate::extract::Json;
use crate::state::AppState;

/// The ticket signing key's public half.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketPublicKeyView {
    #[schema(example = "Ed25519")]
    pub algorithm: &'static str,
    /// The 32-byte public key, standard base64.
    pub public_key: String,
    /// The payload format signed with it: `BX1.<base64url(48-byte body)>.<base64url(signature)>`,
    /// the body being ticket id, event id and ticket number (16 bytes each), the
    /// signature Ed25519 over `"BX1"` followed by the body.
    #[schema(example = "BX1")]
    pub format: &'static str,
}

/// The public key that verifies ticket QR payloads. Public, and cacheable for a
/// few minutes: the key changes only when an operator rotates it.
#[utoipa::path(get, path = "/tickets/public-key", tag = "tickets",
    responses((status = 200, description = "The ticket signing key", body = TicketPublicKeyView)))]
pub async fn ticket_public_key(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(TicketPublicKeyView {
            algorithm: ALGORITHM,
            public_key: state.config.ticket_public_key.to_base64(),
            format: FORMAT,
        }),
    )
}
