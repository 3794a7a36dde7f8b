//! `/v1/unsubscribe?token=…`: the one-click unsubscribe link (RFC 8058) of
//! reminders and organizer messages. No sign-in: the signed token
//! (`models::unsubscribe`) names the participant and the list.
//!
//! - `POST` turns the list's preference off (`users.notify_reminders` or
//!   `notify_messages`). Mail clients send it when the reader presses their
//!   "unsubscribe" button (`List-Unsubscribe-Post: List-Unsubscribe=One-Click`).
//! - `GET` only shows a page with a button that sends that POST: link
//!   scanners and mail clients fetch links by themselves, and a fetch must
//!   never unsubscribe anybody.
//!
//! A forged, altered or expired token is refused with `invalid_unsubscribe_link`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use boxoffice_models::preferences::{self, PreferenceChanges};
use boxoffice_models::unsubscribe::{self, MailingList, Unsubscribe};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{AppError, AppResult, Problem};
use crate::extract::Query;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show_unsubscribe, unsubscribe))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UnsubscribeQuery {
    /// The token of the link in the email.
    pub token: String,
}

/// What a POST changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Unsubscribed {
    /// `reminders` or `messages`.
    pub list: String,
}

fn verified(state: &AppState, token: &str) -> AppResult<Unsubscribe> {
    unsubscribe::verify(&state.config.jwt.secret, token).map_err(|_| {
        AppError::bad_request(
            "invalid_unsubscribe_link",
            "this unsubscribe link is not valid (altered or expired); \
             change what you receive in your account settings",
        )
    })
}

fn list_label(list: MailingList) -> &'static str {
    match list {
        MailingList::Reminders => "event reminders",
        MailingList::Messages => "messages from organizers",
    }
}

/// The confirmation page: a button that sends the one-click POST.
#[utoipa::path(get, path = "/unsubscribe", tag = "me",
    params(UnsubscribeQuery),
    responses(
        (status = 200, description = "A page with the unsubscribe button", content_type = "text/html"),
        (status = 400, description = "`invalid_unsubscribe_link`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_unsubscribe(
    State(state): State<AppState>,
    Query(query): Query<UnsubscribeQuery>,
) -> AppResult<Response> {
    let link = verified(&state, &query.token)?;
    // The form posts to this same URL (token included): no action attribute.
    Ok(page(
        "Unsubscribe",
        &format!(
            "<p>Stop receiving {} from Boxoffice?</p>\
             <form method=\"post\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            list_label(link.list)
        ),
    ))
}

/// One-click unsubscribe (RFC 8058): turns the link's list off for its
/// participant. Answers 204, or a page for a browser (`Accept: text/html`).
/// Again is no change.
#[utoipa::path(post, path = "/unsubscribe", tag = "me",
    params(UnsubscribeQuery),
    responses(
        (status = 204, description = "Unsubscribed"),
        (status = 200, description = "Unsubscribed (a page, for browsers)", content_type = "text/html"),
        (status = 400, description = "`invalid_unsubscribe_link`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<UnsubscribeQuery>,
) -> AppResult<Response> {
    let link = verified(&state, &query.token)?;
    let mut conn = state.conn().await?;
    // A signed link of an account that no longer exists changes nothing.
    if preferences::update(&mut conn, link.user_id, PreferenceChanges::leave(link.list))
        .await?
        .is_some()
    {
        tracing::info!(user.id = %link.user_id, list = link.list.as_str(), "unsubscribed by link");
    }
    let wants_page = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    Ok(if wants_page {
        page(
            "Unsubscribed",
            &format!(
                "<p>You no longer receive {}. You can turn them on again in your account settings.</p>",
                list_label(link.list)
            ),
        )
    } else {
        StatusCode::NO_CONTENT.into_response()
    })
}

/// A minimal page; `body` is trusted markup (it carries no input).
fn page(title: &str, body: &str) -> Response {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Boxoffice</title></head><body><h1>{title}</h1>{body}</body></html>"
    ))
    .into_response()
}
