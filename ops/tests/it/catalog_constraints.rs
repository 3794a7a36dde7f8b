//! Issue point 1: the database itself refuses impossible catalog states. Every
//! test writes raw SQL straight to the test database, past the API and the
//! models, and expects the named constraint to refuse it.

use boxoffice_models::schema::ticket_types;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

use crate::harness::{TestApp, counts_moved_sql};

async fn exec(conn: &mut AsyncPgConnection, sql: &str) -> Result<usize, Error> {
    diesel::sql_query(sql).execute(conn).await
}

/// Expects `result` to be a refusal by `constraint`.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, Error>,
    kind: DatabaseErrorKind,
    constraint: &str,
) {
    match result {
        Err(Error::DatabaseError(actual, info)) => {
            assert_eq!(
                info.constraint_name(),
                Some(constraint),
                "refused, but by another rule: {}",
                info.message()
            );
            assert_eq!(
                format!("{actual:?}"),
                format!("{kind:?}"),
                "{}",
                info.message()
            );
        }
        other => panic!("expected {constraint} to refuse the write, got {other:?}"),
    }
}

/// The ids of a user, a venue, a draft EUR event (tomorrow) with one ticket
/// type (capacity 10), and a coupon (max 5 uses).
struct Seeded {
    event: Uuid,
    ticket_type: Uuid,
    coupon: Uuid,
}

async fn seed(conn: &mut AsyncPgConnection) -> Seeded {
    let (user, venue, event, ticket_type, coupon) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let statements = [
        format!(
            "INSERT INTO users (id, email, display_name, password_hash, roles)
             VALUES ('{user}', 'org-{user}@example.com', 'Org', 'x', ARRAY['organizer'])"
        ),
        format!(
            "INSERT INTO venues (id, created_by, name, address, city, country, timezone)
             VALUES ('{venue}', '{user}', 'Hall', 'Street 1', 'Berlin', 'DE', 'Europe/Berlin')"
        ),
        format!(
            "INSERT INTO events (id, organizer_id, venue_id, title, category, currency, starts_at, ends_at)
             VALUES ('{event}', '{user}', '{venue}', 'Concert', 'music', 'EUR',
                     now() + interval '1 day', now() + interval '1 day 3 hours')"
        ),
        format!(
            "INSERT INTO ticket_types (id, event_id, name, price_minor, currency, capacity)
             VALUES ('{ticket_type}', '{event}', 'General', 4500, 'EUR', 10)"
        ),
        format!(
            "INSERT INTO coupons (id, event_id, code, kind, value, max_uses)
             VALUES ('{coupon}', '{event}', 'SAVE10', 'percent', 10, 5)"
        ),
    ];
    for sql in &statements {
        exec(conn, sql)
            .await
            .unwrap_or_else(|e| panic!("seeding: {e}\n{sql}"));
    }
    Seeded {
        event,
        ticket_type,
        coupon,
    }
}

#[tokio::test]
async fn an_oversold_ticket_type_is_refused() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let s = seed(&mut conn).await;
    let tt = s.ticket_type;
    let check = "ticket_types_capacity_check";

    // The row keeps `taken` = sold + held; the view's counts are summed.
    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE ticket_type_rows SET taken = 11 WHERE id = '{tt}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        check,
    );
    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE ticket_type_rows SET taken = -1 WHERE id = '{tt}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        check,
    );
    // No write goes around the row: the view's counts are not columns.
    let written = exec(
        &mut conn,
        &format!("UPDATE ticket_types SET sold = 1 WHERE id = '{tt}'"),
    )
    .await;
    assert!(
        matches!(&written, Err(e) if e.to_string().contains("cannot update column \"sold\"")),
        "{written:?}"
    );
    exec(&mut conn, &counts_moved_sql(tt, 6, 4))
        .await
        .expect("exactly full is fine");
    let (sold, held): (i32, i32) = ticket_types::table
        .find(tt)
        .select((ticket_types::sold, ticket_types::held))
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!((sold, held), (6, 4));
    // Shrinking below what is sold and held is overselling too.
    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE ticket_types SET capacity = 9 WHERE id = '{tt}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        check,
    );
    // The hold statement of DESIGN.md §5 simply matches no row when full.
    let held = exec(
        &mut conn,
        &format!("UPDATE ticket_type_rows SET taken = taken + 1 WHERE id = '{tt}' AND capacity - taken >= 1"),
    )
    .await
    .unwrap();
    assert_eq!(held, 0);
}

#[tokio::test]
async fn coupon_uses_beyond_max_uses_are_refused() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let s = seed(&mut conn).await;
    let c = s.coupon;

    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE coupons SET used = 6 WHERE id = '{c}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "coupons_used_check",
    );
    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE coupons SET used = -1 WHERE id = '{c}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "coupons_used_check",
    );
    exec(
        &mut conn,
        &format!("UPDATE coupons SET used = 5 WHERE id = '{c}'"),
    )
    .await
    .expect("all uses taken is fine");
    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE coupons SET max_uses = 4 WHERE id = '{c}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "coupons_used_check",
    );
}

#[tokio::test]
async fn negative_or_absurd_money_is_refused() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let s = seed(&mut conn).await;

    assert_refused(
        exec(
            &mut conn,
            &format!(
                "UPDATE ticket_types SET price_minor = -1 WHERE id = '{}'",
                s.ticket_type
            ),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "ticket_types_price_check",
    );
    for (kind, value, currency) in [
        ("percent", "0", "NULL"),
        ("percent", "101", "NULL"),
        ("fixed", "0", "'EUR'"),
        ("fixed", "-500", "'EUR'"),
        // A fixed amount needs a currency; a percentage has none.
        ("fixed", "500", "NULL"),
        ("percent", "10", "'EUR'"),
    ] {
        assert_refused(
            exec(
                &mut conn,
                &format!(
                    "INSERT INTO coupons (id, event_id, code, kind, value, currency)
                     VALUES ('{}', '{}', 'C{}', '{kind}', {value}, {currency})",
                    Uuid::new_v4(),
                    s.event,
                    Uuid::new_v4().simple()
                ),
            )
            .await,
            DatabaseErrorKind::CheckViolation,
            "coupons_value_check",
        );
    }
    // No money column (nor any other) of the catalog is a float or a decimal.
    let inexact: Vec<CountRow> = diesel::sql_query(
        "SELECT count(*) AS n FROM information_schema.columns
         WHERE table_name IN ('venues', 'events', 'ticket_types', 'coupons', 'coupon_ticket_types')
           AND data_type IN ('real', 'double precision', 'numeric', 'money')",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(inexact[0].n, 0);
}

#[derive(diesel::QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn an_event_ending_before_it_starts_is_refused() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let s = seed(&mut conn).await;
    let e = s.event;

    assert_refused(
        exec(
            &mut conn,
            &format!(
                "UPDATE events SET ends_at = starts_at - interval '1 minute' WHERE id = '{e}'"
            ),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "events_schedule_check",
    );
    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE events SET ends_at = starts_at WHERE id = '{e}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "events_schedule_check",
    );
    assert_refused(
        exec(
            &mut conn,
            &format!(
                "UPDATE events SET sales_start_at = now() + interval '2 hours', sales_end_at = now() + interval '1 hour'
                 WHERE id = '{e}'"
            ),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "events_sales_window_check",
    );
    assert_refused(
        exec(
            &mut conn,
            &format!(
                "UPDATE events SET sales_end_at = ends_at + interval '1 day' WHERE id = '{e}'"
            ),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "events_sales_end_check",
    );
}

#[tokio::test]
async fn an_event_has_exactly_one_currency() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let s = seed(&mut conn).await;

    // A USD ticket type on a EUR event.
    assert_refused(
        exec(
            &mut conn,
            &format!(
                "INSERT INTO ticket_types (id, event_id, name, price_minor, currency, capacity)
                 VALUES ('{}', '{}', 'VIP', 9900, 'USD', 10)",
                Uuid::new_v4(),
                s.event
            ),
        )
        .await,
        DatabaseErrorKind::ForeignKeyViolation,
        "ticket_types_event_currency_fkey",
    );
    // Switching the ticket type, or the event under its ticket types.
    assert_refused(
        exec(
            &mut conn,
            &format!(
                "UPDATE ticket_types SET currency = 'USD' WHERE id = '{}'",
                s.ticket_type
            ),
        )
        .await,
        DatabaseErrorKind::ForeignKeyViolation,
        "ticket_types_event_currency_fkey",
    );
    assert_refused(
        exec(
            &mut conn,
            &format!(
                "UPDATE events SET currency = 'USD' WHERE id = '{}'",
                s.event
            ),
        )
        .await,
        DatabaseErrorKind::ForeignKeyViolation,
        "ticket_types_event_currency_fkey",
    );
    // A fixed coupon in another currency.
    assert_refused(
        exec(
            &mut conn,
            &format!(
                "INSERT INTO coupons (id, event_id, code, kind, value, currency)
                 VALUES ('{}', '{}', 'FIVEOFF', 'fixed', 500, 'USD')",
                Uuid::new_v4(),
                s.event
            ),
        )
        .await,
        DatabaseErrorKind::ForeignKeyViolation,
        "coupons_event_currency_fkey",
    );
    // Not an ISO 4217 code at all.
    assert_refused(
        exec(
            &mut conn,
            &format!(
                "UPDATE events SET currency = 'eur' WHERE id = '{}'",
                s.event
            ),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "events_currency_check",
    );
}

#[tokio::test]
async fn coupon_codes_are_unique_per_event_ignoring_case() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let s = seed(&mut conn).await;

    assert_refused(
        exec(
            &mut conn,
            &format!(
                "INSERT INTO coupons (id, event_id, code, kind, value) VALUES ('{}', '{}', 'save10', 'percent', 5)",
                Uuid::new_v4(),
                s.event
            ),
        )
        .await,
        DatabaseErrorKind::UniqueViolation,
        "coupons_event_code_key",
    );
}

#[tokio::test]
async fn a_coupon_can_only_be_restricted_to_its_own_events_ticket_types() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let a = seed(&mut conn).await;
    let b = seed(&mut conn).await;

    exec(
        &mut conn,
        &format!(
            "INSERT INTO coupon_ticket_types (coupon_id, ticket_type_id, event_id) VALUES ('{}', '{}', '{}')",
            a.coupon, a.ticket_type, a.event
        ),
    )
    .await
    .expect("its own ticket type");
    // The foreign key is checked at commit: so is the refusal.
    let result = conn
        .batch_execute(&format!(
            "BEGIN; INSERT INTO coupon_ticket_types (coupon_id, ticket_type_id, event_id) VALUES ('{}', '{}', '{}'); COMMIT;",
            a.coupon, b.ticket_type, a.event
        ))
        .await;
    assert_refused(
        result,
        DatabaseErrorKind::ForeignKeyViolation,
        "coupon_ticket_types_ticket_type_fkey",
    );
    // A failed COMMIT ends the transaction; make sure nothing is left open.
    let _ = conn.batch_execute("ROLLBACK").await;
    // Deleting a ticket type a coupon is restricted to would widen the coupon.
    let result = exec(
        &mut conn,
        &format!("DELETE FROM ticket_types WHERE id = '{}'", a.ticket_type),
    )
    .await;
    assert_refused(
        result,
        DatabaseErrorKind::ForeignKeyViolation,
        "coupon_ticket_types_ticket_type_fkey",
    );
}

#[tokio::test]
async fn statuses_rules_and_time_zones_are_enforced() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let s = seed(&mut conn).await;
    let e = s.event;

    assert_refused(
        exec(
            &mut conn,
            &format!(
                "UPDATE events SET status = 'sold_out', published_at = now() WHERE id = '{e}'"
            ),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "events_status_check",
    );
    // Published without a place.
    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE events SET status = 'published', published_at = now(), venue_id = NULL WHERE id = '{e}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "events_location_check",
    );
    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE events SET hold_minutes = 0 WHERE id = '{e}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "events_hold_minutes_check",
    );
    assert_refused(
        exec(
            &mut conn,
            &format!("UPDATE events SET hold_minutes = 121 WHERE id = '{e}'"),
        )
        .await,
        DatabaseErrorKind::CheckViolation,
        "events_hold_minutes_check",
    );
    for timezone in ["Mars/Olympus_Mons", "UTC+5", "localtime", ""] {
        assert_refused(
            exec(
                &mut conn,
                &format!("UPDATE venues SET timezone = '{timezone}'"),
            )
            .await,
            DatabaseErrorKind::CheckViolation,
            "venues_timezone_check",
        );
    }
    exec(
        &mut conn,
        "UPDATE venues SET timezone = 'America/Argentina/Buenos_Aires'",
    )
    .await
    .expect("a real IANA zone");
}
