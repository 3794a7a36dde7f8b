//! What the reminder and message tests share: the SMTP sink, bookings
//! written in bulk with SQL, and reading back what the sink received.

#![allow(dead_code)] // Each test uses a different part.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

use crate::harness::counts_moved_sql;

pub(crate) use crate::email::SmtpSink;

/// The header `name` of a message (unfolded first line only).
fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        l.get(..name.len())
            .filter(|h| h.eq_ignore_ascii_case(name))
            .map(|_| l[name.len()..].trim())
    })
}

/// Messages in `dir` (`.eml`) whose subject contains `subject_part`, per `To`.
pub fn per_recipient(dir: &Path, subject_part: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return counts;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "eml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if header(&text, "Subject:").is_some_and(|s| s.contains(subject_part))
            && let Some(to) = header(&text, "To:")
        {
            let to = to.trim_matches(|c| c == '<' || c == '>').to_owned();
            *counts.entry(to).or_default() += 1;
        }
    }
    counts
}

/// Messages in `dir` whose subject contains `subject_part`: per `To`, the
/// `Message-ID` of each copy received (a resend of one email carries the same id).
pub fn message_ids(dir: &Path, subject_part: &str) -> HashMap<String, Vec<String>> {
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return ids;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "eml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if header(&text, "Subject:").is_some_and(|s| s.contains(subject_part))
            && let Some(to) = header(&text, "To:")
        {
            let to = to.trim_matches(|c| c == '<' || c == '>').to_owned();
            let id = header(&text, "Message-ID:").unwrap_or_default().to_owned();
            ids.entry(to).or_default().push(id);
        }
    }
    ids
}

/// Participants with one confirmed one-ticket booking each of `event_id`
/// at `price` (minor units, 0: free), written in bulk (as a checkout writes
/// them). Emails are `{tag}-{i}@example.com`, i from 0.
pub async fn seed_bookings(
    db_url: &str,
    event_id: Uuid,
    ticket_type: Uuid,
    n: usize,
    tag: &str,
    price: i64,
) {
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO users (id, email, display_name, password_hash, roles)
           SELECT md5('{tag}-user-' || g)::uuid, '{tag}-' || g || '@example.com', 'Holder', 'x', ARRAY['participant']
             FROM generate_series(0, {last}) g;
         INSERT INTO workflow_runs (id, kind, status, step, state, view, owner_id, finished_at)
           SELECT md5('{tag}-run-' || g)::uuid, 'checkout', 'completed', 'completed',
                  jsonb_build_object('event_id', '{event_id}'), '{{}}', md5('{tag}-user-' || g)::uuid, now()
             FROM generate_series(0, {last}) g;
         INSERT INTO bookings (id, run_id, user_id, event_id, currency, subtotal_minor, total_minor)
           SELECT md5('{tag}-booking-' || g)::uuid, md5('{tag}-run-' || g)::uuid, md5('{tag}-user-' || g)::uuid,
                  '{event_id}', 'EUR', {price}, {price}
             FROM generate_series(0, {last}) g;
         INSERT INTO tickets (id, booking_id, event_id, ticket_type_id, number, qr_payload, paid_minor)
           SELECT md5('{tag}-ticket-' || g)::uuid, md5('{tag}-booking-' || g)::uuid, '{event_id}', '{ticket_type}',
                  '{tag}-T-' || g, 'qr-' || g, {price}
             FROM generate_series(0, {last}) g;
         {};",
        counts_moved_sql(ticket_type, i32::try_from(n).unwrap(), 0),
        last = n - 1,
    ))
    .await
    .unwrap();
}

/// The email of seeded participant `i`.
pub fn seeded_email(tag: &str, i: usize) -> String {
    format!("{tag}-{i}@example.com")
}

/// Moves the event so that a reminder `offset_minutes` before it falls due
/// in `due_in`; published a day ago (the reminder was owed).
pub async fn due_in(db_url: &str, event_id: Uuid, offset_minutes: i32, due_in: Duration) {
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    let secs = i64::from(offset_minutes) * 60 + due_in.as_secs() as i64;
    conn.batch_execute(&format!(
        "UPDATE events SET starts_at = now() + interval '{secs} seconds',
                           ends_at = now() + interval '{secs} seconds' + interval '3 hours',
                           reminder_offsets_minutes = '{{{offset_minutes}}}',
                           published_at = now() - interval '1 day'
          WHERE id = '{event_id}'"
    ))
    .await
    .unwrap();
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// `SELECT count(*) …` as a number.
pub async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(format!("SELECT ({sql})::bigint AS n"))
        .get_result::<N>(conn)
        .await
        .unwrap()
        .n
}

/// `(status, step, state->>'reason')` of the event's reminder runs, by offset.
pub async fn reminder_runs(conn: &mut AsyncPgConnection, event_id: Uuid) -> Vec<(String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        step: String,
    }
    diesel::sql_query(
        "SELECT r.status, r.step FROM event_reminders e JOIN workflow_runs r ON r.id = e.run_id
          WHERE e.event_id = $1 ORDER BY e.offset_minutes",
    )
    .bind::<diesel::sql_types::Uuid, _>(event_id)
    .load::<Row>(conn)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.status, r.step))
    .collect()
}

/// Waits until `check` holds, polling every 100 ms; panics with `what` after `within`.
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
