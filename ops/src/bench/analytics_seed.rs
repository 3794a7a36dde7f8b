//! What `bench analytics` needs in the database: an organizer signed in, an
//! event a month ahead (venue in Europe/Berlin) and its sales, written with a
//! few bulk statements. The sales spread over the 30 days before now.

use anyhow::Context;
use boxoffice_api::config::JwtConfig;
use boxoffice_models::DbPool;
use boxoffice_models::users::{self, NewUser, Role};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

use super::seed;

/// Buyers the bookings are spread over.
const BUYERS: usize = 1000;
/// Price of a ticket (the seed's ticket type).
const PRICE_MINOR: i64 = 4500;

pub struct Seeded {
    /// `Bearer …` of the event's organizer.
    pub organizer: String,
    pub event_id: Uuid,
    pub bookings: i64,
    pub tickets: i64,
    pub expired: i64,
    pub refunds: i64,
    pub paid_minor: i64,
    pub refunded_minor: i64,
    /// Some bookings, for the plain reads.
    pub booking_ids: Vec<Uuid>,
}

#[derive(QueryableByName)]
struct Totals {
    #[diesel(sql_type = BigInt)]
    tickets: i64,
    #[diesel(sql_type = BigInt)]
    paid_minor: i64,
    #[diesel(sql_type = BigInt)]
    refunded_minor: i64,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

pub async fn seed(
    pool: &DbPool,
    jwt_config: &JwtConfig,
    bookings: usize,
    refunds: usize,
) -> anyhow::Result<Seeded> {
    let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let password_hash =
        boxoffice_api::auth::password::hash_password(&crate::secrets::random_token(24)).await?;
    let mut conn = pool.get().await?;
    let organizer = users::insert(
        &mut conn,
        &NewUser::new(
            format!("bench-analytics-organizer-{tag}@boxoffice.test"),
            "Bench Organizer".into(),
            password_hash,
            &[Role::Organizer],
        ),
    )
    .await?
    .context("the bench organizer's email is taken")?;
    let signed_in = seed::sign_in(&mut conn, jwt_config, &organizer).await?;
    let capacity = i32::try_from(bookings * 3).context("--bookings is too large")?;
    let (event_id, ticket_type) =
        seed::event(pool, organizer.id, "Bench analytics", capacity.max(1), true).await?;
    let expired = bookings / 5;
    let coupon = Uuid::now_v7();
    // Every id is derived from the tag and a row number, so each statement can
    // find the rows of the one before without a round trip.
    conn.batch_execute(&format!(
        "INSERT INTO users (id, email, display_name, password_hash, roles)
           SELECT md5('{tag}-buyer-' || g)::uuid, 'bench-analytics-{tag}-' || g || '@boxoffice.test',
                  'Buyer ' || g, 'x', '{{participant}}'
             FROM generate_series(1, {BUYERS}) g;
         INSERT INTO coupons (id, event_id, code, kind, value)
           VALUES ('{coupon}', '{event_id}', 'BENCH10', 'percent', 10);
         INSERT INTO workflow_runs (id, kind, status, step, state, view, created_at, finished_at)
           SELECT md5('{tag}-run-' || g)::uuid, 'checkout', 'completed', 'completed',
                  jsonb_build_object('event_id', '{event_id}'), '{{}}', at, at
             FROM (SELECT g, now() - g * interval '30 days' / {bookings} AS at
                     FROM generate_series(1, {bookings}) g) s;
         INSERT INTO workflow_runs (id, kind, status, step, state, view, created_at, finished_at)
           SELECT md5('{tag}-expired-' || g)::uuid, 'checkout', 'compensated', 'compensated',
                  jsonb_build_object('event_id', '{event_id}',
                                     'error', jsonb_build_object('code', 'expired', 'detail', 'the hold expired before payment')),
                  '{{}}', now(), now()
             FROM generate_series(1, {expired}) g;
         INSERT INTO bookings (id, run_id, user_id, event_id, currency, subtotal_minor, discount_minor,
                               total_minor, coupon_id, created_at)
           SELECT md5('{tag}-booking-' || g)::uuid, md5('{tag}-run-' || g)::uuid,
                  md5('{tag}-buyer-' || (1 + g % {BUYERS}))::uuid, '{event_id}', 'EUR',
                  q * {PRICE_MINOR}, d, q * {PRICE_MINOR} - d,
                  CASE WHEN d > 0 THEN '{coupon}'::uuid END, now() - g * interval '30 days' / {bookings}
             FROM (SELECT g, 1 + g % 3 AS q,
                          CASE WHEN g % 10 = 0 THEN (1 + g % 3) * {PRICE_MINOR} / 10 ELSE 0 END AS d
                     FROM generate_series(1, {bookings}) g) s;
         INSERT INTO tickets (id, booking_id, event_id, ticket_type_id, number, qr_payload, created_at, paid_minor)
           SELECT gen_random_uuid(), b.id, b.event_id, '{ticket_type}', '{tag}-' || b.id || '-' || k, 'qr',
                  b.created_at, b.total_minor / (b.subtotal_minor / {PRICE_MINOR})
             FROM bookings b, generate_series(1, (b.subtotal_minor / {PRICE_MINOR})::int) k
            WHERE b.event_id = '{event_id}';
         WITH sold AS (SELECT count(*)::int AS n FROM tickets WHERE ticket_type_id = '{ticket_type}'),
              t AS (UPDATE ticket_type_rows SET taken = taken + (SELECT n FROM sold)
                     WHERE id = '{ticket_type}' RETURNING id)
         SELECT ticket_type_counted(id, (SELECT n FROM sold), 0, 0, 0, 0) FROM t;
         INSERT INTO workflow_runs (id, kind, status, step, state, view)
           SELECT md5('{tag}-refund-' || g)::uuid, 'refund', 'completed', 'completed', '{{}}', '{{}}'
             FROM generate_series(1, {refunds}) g;
         INSERT INTO refunds (run_id, booking_id, amount_minor, currency, tickets, requested_by, status,
                              created_at, completed_at)
           SELECT md5('{tag}-refund-' || g)::uuid, b.id, b.total_minor / (b.subtotal_minor / {PRICE_MINOR}), 'EUR', 1,
                  CASE WHEN g % 2 = 0 THEN 'buyer' ELSE 'organizer' END, 'succeeded',
                  b.created_at + interval '1 hour', b.created_at + interval '1 hour'
             FROM generate_series(1, {refunds}) g
             JOIN bookings b ON b.id = md5('{tag}-booking-' || g)::uuid;
         ANALYZE;"
    ))
    .await?;
    let totals: Totals = diesel::sql_query(
        "SELECT (SELECT count(*) FROM tickets WHERE event_id = $1)::bigint AS tickets,
                (SELECT coalesce(sum(total_minor), 0) FROM bookings WHERE event_id = $1)::bigint AS paid_minor,
                (SELECT coalesce(sum(r.amount_minor), 0) FROM refunds r JOIN bookings b ON b.id = r.booking_id
                  WHERE b.event_id = $1 AND r.status = 'succeeded')::bigint AS refunded_minor",
    )
    .bind::<SqlUuid, _>(event_id)
    .get_result(&mut conn)
    .await?;
    let ids: Vec<Id> = diesel::sql_query(
        "SELECT id FROM bookings WHERE event_id = $1 ORDER BY created_at DESC LIMIT 1000",
    )
    .bind::<SqlUuid, _>(event_id)
    .load(&mut conn)
    .await?;
    Ok(Seeded {
        organizer: signed_in.authorization,
        event_id,
        bookings: bookings as i64,
        tickets: totals.tickets,
        expired: expired as i64,
        refunds: refunds as i64,
        paid_minor: totals.paid_minor,
        refunded_minor: totals.refunded_minor,
        booking_ids: ids.into_iter().map(|r| r.id).collect(),
    })
}
