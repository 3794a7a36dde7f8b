//! One corruption per invariant, each planted with SQL in its own copy of a
//! healthy database: the audit names exactly that invariant and that row.

use std::time::Duration;

use boxoffice_models::ledger_audit::{self, Violation};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

use super::books::{self, Books};
use crate::harness::{TestApp, counts_moved_sql};

/// A corruption: the invariant it breaks, the SQL that plants it (keeping
/// every other invariant true), and the row the audit must name.
struct Plant {
    invariant: &'static str,
    sql: String,
    row: String,
}

fn plants(books: &Books, hold_of_paid: &str) -> Vec<Plant> {
    let paid_type = books.event.ticket_types[0];
    let event = books.event.event_id;
    let paid = &books.paid.booking;
    let refunded_ticket = &books.refunded.tickets[0];
    let refunded_intent = books.refunded.intent.clone().unwrap();
    vec![
        Plant {
            invariant: "ticket_type_sold",
            sql: counts_moved_sql(paid_type, 1, 0),
            row: paid_type.to_string(),
        },
        Plant {
            invariant: "ticket_type_held",
            sql: counts_moved_sql(paid_type, 0, 2),
            row: paid_type.to_string(),
        },
        Plant {
            invariant: "ticket_type_capacity",
            sql: format!(
                "ALTER TABLE ticket_type_rows DROP CONSTRAINT ticket_types_capacity_check;
                 UPDATE ticket_types SET capacity = 1 WHERE id = '{paid_type}'"
            ),
            row: paid_type.to_string(),
        },
        Plant {
            invariant: "ticket_type_waiting",
            sql: format!(
                "INSERT INTO waitlist_entries (id, event_id, ticket_type_id, participant_id, quantity)
                 VALUES (gen_random_uuid(), '{event}', '{paid_type}', '{}', 3)",
                books.buyer.id
            ),
            row: paid_type.to_string(),
        },
        Plant {
            invariant: "booking_paid",
            sql: format!(
                "UPDATE tickets SET paid_minor = paid_minor + 1 WHERE id = '{}'",
                books.paid.tickets[0]
            ),
            row: paid.clone(),
        },
        Plant {
            invariant: "booking_refunded",
            sql: format!("UPDATE bookings SET refunded_minor = 500 WHERE id = '{paid}'"),
            row: paid.clone(),
        },
        Plant {
            // Back to valid, and counted as sold again, as a lost void would leave it.
            invariant: "refunded_ticket_void",
            sql: format!(
                "UPDATE tickets SET status = 'valid' WHERE id = '{refunded_ticket}'; {}",
                counts_moved_sql(paid_type, 1, 0)
            ),
            row: refunded_ticket.clone(),
        },
        Plant {
            // The free checkout claims the first booking's payment.
            invariant: "intent_charged_once",
            sql: format!(
                "UPDATE workflow_runs SET state = jsonb_set(state, '{{payment}}',
                     jsonb_build_object('intent_id', '{refunded_intent}', 'client_secret', 'x',
                                        'amount_minor', 4000, 'currency', 'EUR'))
                  WHERE id = '{}'",
                books.free.run
            ),
            row: refunded_intent.clone(),
        },
        Plant {
            // More given back than the 40.00 charged, on the booking and its refund alike
            // (past the analytics' guard that a succeeded refund is final).
            invariant: "intent_refunded_within_charged",
            sql: format!(
                "ALTER TABLE bookings DROP CONSTRAINT bookings_refunded_within_total;
                 ALTER TABLE refunds DISABLE TRIGGER analytics_refunds_updated;
                 UPDATE refunds SET amount_minor = 5000 WHERE booking_id = '{0}';
                 UPDATE bookings SET refunded_minor = 5000 WHERE id = '{0}'",
                books.refunded.booking
            ),
            row: refunded_intent.clone(),
        },
        Plant {
            invariant: "booking_intent",
            sql: format!("UPDATE bookings SET payment_intent_id = NULL WHERE id = '{paid}'"),
            row: paid.clone(),
        },
        Plant {
            // A completed checkout's hold reopened, with its units counted as held.
            invariant: "finished_run_hold",
            sql: format!(
                "UPDATE holds SET status = 'active', closed_at = NULL WHERE id = '{hold_of_paid}'; {}",
                counts_moved_sql(paid_type, 0, 1)
            ),
            row: hold_of_paid.to_owned(),
        },
        Plant {
            invariant: "booking_confirmation_email",
            sql: format!("DELETE FROM notifications WHERE dedupe_key = 'booking:{paid}:confirmation'"),
            row: paid.clone(),
        },
        Plant {
            // Two uses of a coupon now allowed one.
            invariant: "coupon_max_uses",
            sql: format!(
                "ALTER TABLE coupons DROP CONSTRAINT coupons_used_check;
                 UPDATE coupons SET max_uses = 1 WHERE id = '{}'",
                books.coupon_id
            ),
            row: books.coupon_id.to_string(),
        },
    ]
}

#[tokio::test]
async fn the_audit_finds_each_corruption_planted_in_a_copy_of_healthy_books() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let books = books::build(&app, &sandbox).await;
    let hold_of_paid = books::single(
        &app,
        &format!(
            "SELECT id::text AS value FROM holds WHERE run_id = '{}'",
            books.paid.run
        ),
    )
    .await;
    let mut conn = app.raw_conn().await;
    let healthy = ledger_audit::audit(&mut conn, None).await.unwrap();
    assert_eq!(
        healthy,
        Vec::<Violation>::new(),
        "the healthy books audit clean"
    );
    drop(conn);

    // Freeze the healthy database: stop the app and its workers, refuse new
    // connections, end the ones left, and copy it once per corruption.
    let healthy_name = app.db.name.clone();
    let healthy_url = app.db.url.clone();
    let plants = plants(&books, &hold_of_paid);
    drop(sandbox);
    drop(app);
    let mut admin = AsyncPgConnection::establish(&database_url(&healthy_url, "postgres"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {healthy_name} WITH ALLOW_CONNECTIONS false"
        ))
        .await
        .unwrap();

    let invariants = ledger_audit::invariants();
    assert_eq!(
        plants.len(),
        invariants.len(),
        "one corruption per invariant"
    );
    for plant in &plants {
        assert!(invariants.contains(&plant.invariant), "{}", plant.invariant);
        let copy = format!("audit_copy_{}", Uuid::new_v4().simple());
        copy_database(&mut admin, &healthy_name, &copy).await;
        let copy_url = database_url(&healthy_url, &copy);
        let mut conn = AsyncPgConnection::establish(&copy_url).await.unwrap();
        conn.batch_execute(&plant.sql).await.unwrap();

        let found = ledger_audit::audit(&mut conn, Some(books.event.event_id))
            .await
            .unwrap();
        let named: Vec<(&str, &str)> = found
            .iter()
            .map(|v| (v.invariant.as_str(), v.row_id.as_str()))
            .collect();
        assert_eq!(
            named,
            vec![(plant.invariant, plant.row.as_str())],
            "planted {}: {found:#?}",
            plant.invariant
        );
        println!("found {}", found[0]);
        // The whole database shows the same; another event shows nothing.
        assert_eq!(ledger_audit::audit(&mut conn, None).await.unwrap(), found);
        assert_eq!(
            ledger_audit::audit(&mut conn, Some(Uuid::now_v7()))
                .await
                .unwrap(),
            Vec::<Violation>::new()
        );
        drop(conn);
        admin
            .batch_execute(&format!("DROP DATABASE {copy}"))
            .await
            .unwrap();
    }
    println!("{} corruptions planted, each found alone", plants.len());
}

/// `CREATE DATABASE … TEMPLATE` needs the template free of sessions: the
/// stopped app's pool may take a moment to let go of its connections.
async fn copy_database(admin: &mut AsyncPgConnection, from: &str, to: &str) {
    for _ in 0..80 {
        admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = '{from}' AND pid <> pg_backend_pid()"
            ))
            .await
            .unwrap();
        match diesel::sql_query(format!(
            "CREATE DATABASE {to} TEMPLATE {from} STRATEGY FILE_COPY"
        ))
        .execute(admin)
        .await
        {
            Ok(_) => return,
            Err(err) if err.to_string().contains("being accessed by other users") => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => panic!("copying {from}: {err}"),
        }
    }
    panic!("{from} still had sessions after 20 s");
}

/// The URL of database `name` on the server of `url`.
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    if query.is_empty() {
        format!("{root}/{name}")
    } else {
        format!("{root}/{name}?{query}")
    }
}
