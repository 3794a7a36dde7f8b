//! `GET /v1/organizer/events/{id}/attendees.csv` and `.../orders.csv`: the
//! files organizers take to their door staff and accountants.
//!
//! Streamed: the body is produced a page of rows at a time (keyset paging in id
//! order, a pooled connection per page, given back in between), so an export
//! of any size holds one page in memory and never holds a connection while the
//! client reads. RFC 4180 with a header row, written by the `csv` crate. A cell
//! a spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, a
//! tab or a carriage return) is prefixed with `'`.

use std::io;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use boxoffice_models::DbPool;
use boxoffice_models::analytics_exports::{self, AttendeeRow, OrderRow};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::Stream;
use uuid::Uuid;

use crate::error::{AppResult, Problem};
use crate::extract::Path;
use crate::routes::events::support::{Organizer, managed_event};
use crate::state::AppState;

/// Rows per page: small enough to keep memory flat, large enough that a
/// 10,000-row export is a few dozen queries.
const PAGE_ROWS: i64 = 500;

/// Which file.
#[derive(Debug, Clone, Copy)]
enum Export {
    Attendees,
    Orders,
}

impl Export {
    fn header(self) -> &'static [&'static str] {
        match self {
            Export::Attendees => &[
                "ticket_id",
                "ticket_number",
                "ticket_type",
                "status",
                "holder_name",
                "holder_email",
                "booking_id",
                "paid_minor",
                "currency",
                "checked_in_at",
            ],
            Export::Orders => &[
                "booking_id",
                "created_at",
                "status",
                "buyer_name",
                "buyer_email",
                "tickets",
                "currency",
                "subtotal_minor",
                "discount_minor",
                "total_minor",
                "refunded_minor",
                "coupon_code",
            ],
        }
    }

    fn file_name(self, event_id: Uuid) -> String {
        match self {
            Export::Attendees => format!("attendees-{event_id}.csv"),
            Export::Orders => format!("orders-{event_id}.csv"),
        }
    }

    /// The next page after `after`: each row's cells and the last row's id.
    async fn page(
        self,
        pool: &DbPool,
        event_id: Uuid,
        after: Uuid,
    ) -> io::Result<(Vec<Vec<String>>, Option<Uuid>)> {
        let mut conn = pool.get().await.map_err(io::Error::other)?;
        match self {
            Export::Attendees => {
                let rows = analytics_exports::attendees_page(&mut conn, event_id, after, PAGE_ROWS)
                    .await
                    .map_err(io::Error::other)?;
                Ok((
                    rows.iter().map(attendee_cells).collect(),
                    rows.last().map(|r| r.ticket_id),
                ))
            }
            Export::Orders => {
                let rows = analytics_exports::orders_page(&mut conn, event_id, after, PAGE_ROWS)
                    .await
                    .map_err(io::Error::other)?;
                Ok((
                    rows.iter().map(order_cells).collect(),
                    rows.last().map(|r| r.booking_id),
                ))
            }
        }
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn attendee_cells(r: &AttendeeRow) -> Vec<String> {
    vec![
        r.ticket_id.to_string(),
        r.number.clone(),
        r.ticket_type.clone(),
        r.status.clone(),
        r.holder_name.clone(),
        r.holder_email.clone(),
        r.booking_id.to_string(),
        r.paid_minor.to_string(),
        r.currency.clone(),
        r.checked_in_at.map(time).unwrap_or_default(),
    ]
}

fn order_cells(r: &OrderRow) -> Vec<String> {
    vec![
        r.booking_id.to_string(),
        time(r.created_at),
        r.status.clone(),
        r.buyer_name.clone(),
        r.buyer_email.clone(),
        r.tickets.to_string(),
        r.currency.clone(),
        r.subtotal_minor.to_string(),
        r.discount_minor.to_string(),
        r.total_minor.to_string(),
        r.refunded_minor.to_string(),
        r.coupon_code.clone().unwrap_or_default(),
    ]
}

/// A cell a spreadsheet would run as a formula, made plain text.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// Records as CSV bytes.
fn encode<'a>(records: impl IntoIterator<Item = &'a [String]>) -> io::Result<Bytes> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for record in records {
        writer
            .write_record(record.iter().map(|c| neutralise(c).into_owned()))
            .map_err(io::Error::other)?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Where the stream is: the header still to send, then pages after a row id.
enum Cursor {
    Header,
    After(Uuid),
    Done,
}

fn rows(pool: DbPool, export: Export, event_id: Uuid) -> impl Stream<Item = io::Result<Bytes>> {
    futures::stream::unfold(Cursor::Header, move |cursor| {
        let pool = pool.clone();
        async move {
            match cursor {
                Cursor::Done => None,
                Cursor::Header => {
                    let header: Vec<String> =
                        export.header().iter().map(|h| (*h).to_owned()).collect();
                    Some((encode([header.as_slice()]), Cursor::After(Uuid::nil())))
                }
                Cursor::After(after) => match export.page(&pool, event_id, after).await {
                    Ok((_, None)) => None,
                    Ok((cells, Some(last))) => {
                        let next = if (cells.len() as i64) < PAGE_ROWS {
                            Cursor::Done
                        } else {
                            Cursor::After(last)
                        };
                        Some((encode(cells.iter().map(Vec::as_slice)), next))
                    }
                    Err(e) => {
                        // The status line is gone: the client sees a cut-off body.
                        tracing::error!(event.id = %event_id, error = %e, "an export stopped");
                        Some((Err(e), Cursor::Done))
                    }
                },
            }
        }
    })
}

async fn export(
    state: AppState,
    user: &crate::auth::AuthUser,
    event_id: Uuid,
    export: Export,
) -> AppResult<Response> {
    {
        let mut conn = state.conn().await?;
        managed_event(&mut conn, user, event_id).await?;
    }
    let disposition = format!("attachment; filename=\"{}\"", export.file_name(event_id));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(rows(state.db.clone(), export, event_id)),
    )
        .into_response())
}

/// One row per ticket of an event you organize (any event, for admins), in
/// ticket id order: number, type, status, holder, what it paid, check-in time.
#[utoipa::path(get, path = "/organizer/events/{id}/attendees.csv", tag = "organizer",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "RFC 4180 CSV with a header row, streamed", content_type = "text/csv", body = String),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn attendees_csv(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
) -> AppResult<Response> {
    export(state, &user, event_id, Export::Attendees).await
}

/// One row per order (booking) of an event you organize (any event, for
/// admins), in id order: buyer, tickets, subtotal, discount, total, refunded, coupon.
#[utoipa::path(get, path = "/organizer/events/{id}/orders.csv", tag = "organizer",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "RFC 4180 CSV with a header row, streamed", content_type = "text/csv", body = String),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event among yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn orders_csv(
    Organizer(user): Organizer,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
) -> AppResult<Response> {
    export(state, &user, event_id, Export::Orders).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_kept() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
        for cell in ["Ada", "", "1-1", "a=b", "'x"] {
            assert_eq!(neutralise(cell), cell);
        }
    }

    #[test]
    fn cells_are_quoted_as_rfc_4180_says() {
        let bytes = encode([vec![
            "a,b".to_owned(),
            "say \"hi\"".to_owned(),
            "two\nlines".to_owned(),
            "=HYPERLINK(\"x\")".to_owned(),
        ]
        .as_slice()])
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"'=HYPERLINK(\"\"x\"\")\"\r\n"
        );
    }
}
