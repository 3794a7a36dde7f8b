//! Tickets: issuing (numbers, signed QR payloads), the public key, and check-in
//! at the door over HTTP: valid, rescanned, forged, void, of another event,
//! by the wrong people, and two doors scanning the same ticket at once.
//!
//! Bookings are set up directly in the test's database (the checkout workflow
//! that normally makes them is tested on its own): a finished `workflow_runs`
//! row, a booking, and tickets issued by `tickets::insert_for_booking` with the
//! test workers' signing key, which the test API verifies against.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use boxoffice_models::ticket_codes::{
    self, TicketClaims, TicketNumber, TicketPublicKey, TicketSigner,
};
use boxoffice_models::tickets::{self, Ticket, TicketStatus};
use boxoffice_models::users::Role;
use chrono::{DateTime, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::users::TestUser;
use crate::harness::{TestApp, assert_problem, counts_moved_sql};

/// A published event of `organizer` with one ticket type.
struct EventFixture {
    event_id: Uuid,
    ticket_type_id: Uuid,
}

async fn create_event(conn: &mut AsyncPgConnection, organizer: Uuid) -> EventFixture {
    let event_id = Uuid::now_v7();
    let ticket_type_id = Uuid::now_v7();
    diesel::sql_query(format!(
        "INSERT INTO events (id, organizer_id, online, title, category, currency, starts_at, ends_at, status, published_at)
         VALUES ('{event_id}', '{organizer}', true, 'Door test', 'music', 'EUR',
                 now() + interval '1 day', now() + interval '1 day 3 hours', 'published', now())"
    ))
    .execute(conn)
    .await
    .expect("inserting an event");
    diesel::sql_query(format!(
        "INSERT INTO ticket_types (id, event_id, name, price_minor, currency, capacity)
         VALUES ('{ticket_type_id}', '{event_id}', 'Standing', 2500, 'EUR', 100)"
    ))
    .execute(conn)
    .await
    .expect("inserting a ticket type");
    diesel::sql_query(counts_moved_sql(ticket_type_id, 10, 0))
        .execute(conn)
        .await
        .expect("counting ten sold");
    EventFixture {
        event_id,
        ticket_type_id,
    }
}

/// `quantity` tickets of one type, each paid `paid_minor`.
fn to_issue(ticket_type_id: Uuid, quantity: usize, paid_minor: i64) -> Vec<tickets::ToIssue> {
    vec![
        tickets::ToIssue {
            ticket_type_id,
            paid_minor,
        };
        quantity
    ]
}

/// A confirmed booking by `buyer` of `quantity` tickets, issued and signed.
async fn book(
    app: &TestApp,
    conn: &mut AsyncPgConnection,
    event: &EventFixture,
    buyer: Uuid,
    quantity: i32,
) -> Vec<Ticket> {
    let run_id = Uuid::now_v7();
    let booking_id = Uuid::now_v7();
    diesel::sql_query(format!(
        "INSERT INTO workflow_runs (id, kind, status, step, state, owner_id)
         VALUES ('{run_id}', 'checkout', 'completed', 'done', '{{}}', '{buyer}')"
    ))
    .execute(conn)
    .await
    .expect("inserting a run");
    let total = 2500 * i64::from(quantity);
    diesel::sql_query(format!(
        "INSERT INTO bookings (id, run_id, user_id, event_id, currency, subtotal_minor, total_minor)
         VALUES ('{booking_id}', '{run_id}', '{buyer}', '{}', 'EUR', {total}, {total})",
        event.event_id
    ))
    .execute(conn)
    .await
    .expect("inserting a booking");
    tickets::insert_for_booking(
        conn,
        booking_id,
        event.event_id,
        &to_issue(event.ticket_type_id, quantity as usize, 2500),
        &app.ticket_signer(),
    )
    .await
    .expect("issuing tickets")
}

/// An organizer with a published event and one booked ticket of it.
struct Door {
    app: TestApp,
    organizer: TestUser,
    event: EventFixture,
    ticket: Ticket,
}

async fn door() -> Door {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[]).await;
    let mut conn = app.raw_conn().await;
    let event = create_event(&mut conn, organizer.id).await;
    let ticket = book(&app, &mut conn, &event, buyer.id, 1).await.remove(0);
    Door {
        app,
        organizer,
        event,
        ticket,
    }
}

async fn scan(
    app: &TestApp,
    user: Option<&TestUser>,
    event_id: Uuid,
    payload: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/v1/events/{event_id}/check-in")))
        .json(&json!({ "qr_payload": payload }));
    if let Some(user) = user {
        request = request.header("authorization", user.bearer());
    }
    request.send().await.expect("check-in request")
}

async fn json_ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert_eq!(status, 200, "unexpected status; body: {text}");
    serde_json::from_str(&text).expect("a JSON body")
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
}

#[tokio::test]
async fn a_valid_ticket_checks_in_once_and_a_rescan_reports_the_first_scan() {
    let Door {
        app,
        organizer,
        event,
        ticket,
    } = door().await;

    let first =
        json_ok(scan(&app, Some(&organizer), event.event_id, &ticket.qr_payload).await).await;
    assert_eq!(first["ticket_id"], ticket.id.to_string());
    assert_eq!(first["number"], ticket.number);
    assert_eq!(first["event_id"], event.event_id.to_string());
    assert_eq!(first["checked_in_by"], organizer.id.to_string());
    let first_scan = timestamp(&first["checked_in_at"]);

    let second = assert_problem(
        scan(&app, Some(&organizer), event.event_id, &ticket.qr_payload).await,
        409,
        "already_checked_in",
    )
    .await;
    assert_eq!(timestamp(&second["checked_in_at"]), first_scan, "{second}");
    assert_eq!(second["checked_in_by"], organizer.id.to_string());

    let mut conn = app.raw_conn().await;
    let stored = tickets::find_by_id(&mut conn, ticket.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.checked_in_at, Some(first_scan));
    assert_eq!(stored.checked_in_by, Some(organizer.id));
}

#[tokio::test]
async fn forged_and_malformed_payloads_are_refused() {
    let Door {
        app,
        organizer,
        event,
        ticket,
    } = door().await;
    let claims = TicketClaims {
        ticket_id: ticket.id,
        event_id: event.event_id,
        number: ticket.number.parse().unwrap(),
    };

    // The same ticket, signed with another key.
    let forger = TicketSigner::from_seed(&[42; 32]);
    let forged = forger.sign(&claims);
    let body = assert_problem(
        scan(&app, Some(&organizer), event.event_id, &forged).await,
        422,
        "invalid_ticket",
    )
    .await;
    assert_eq!(body["reason"], "bad_signature", "{body}");

    // The genuine payload with one byte of its body flipped.
    let [version, encoded_body, signature]: [&str; 3] = ticket
        .qr_payload
        .split('.')
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(encoded_body).unwrap();
    bytes[20] ^= 0x01;
    let flipped = format!("{version}.{}.{signature}", URL_SAFE_NO_PAD.encode(&bytes));
    let body = assert_problem(
        scan(&app, Some(&organizer), event.event_id, &flipped).await,
        422,
        "invalid_ticket",
    )
    .await;
    assert_eq!(body["reason"], "bad_signature", "{body}");

    for (payload, reason) in [
        ("hello", "malformed"),
        ("", "malformed"),
        (&format!("BX1.{encoded_body}"), "malformed"),
        (
            &format!("BX9.{encoded_body}.{signature}"),
            "unsupported_version",
        ),
        (&"A".repeat(5000), "malformed"),
    ] {
        let body = assert_problem(
            scan(&app, Some(&organizer), event.event_id, payload).await,
            422,
            "invalid_ticket",
        )
        .await;
        assert_eq!(body["reason"], reason, "{payload:?}: {body}");
    }

    // Signed with the right key, but no such ticket was ever issued here.
    let stranger = app.ticket_signer().sign(&TicketClaims {
        ticket_id: Uuid::now_v7(),
        event_id: event.event_id,
        number: TicketNumber::generate(),
    });
    let body = assert_problem(
        scan(&app, Some(&organizer), event.event_id, &stranger).await,
        422,
        "invalid_ticket",
    )
    .await;
    assert_eq!(body["reason"], "unknown_ticket", "{body}");

    // Nothing refused left a mark: the genuine ticket still checks in.
    let mut conn = app.raw_conn().await;
    let stored = tickets::find_by_id(&mut conn, ticket.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.checked_in_at, None);
    json_ok(scan(&app, Some(&organizer), event.event_id, &ticket.qr_payload).await).await;
}

#[tokio::test]
async fn void_and_refund_pending_tickets_are_refused() {
    let Door {
        app,
        organizer,
        event,
        ticket,
    } = door().await;
    let mut conn = app.raw_conn().await;

    tickets::set_status_for_booking(
        &mut conn,
        ticket.booking_id,
        TicketStatus::Valid,
        TicketStatus::RefundPending,
    )
    .await
    .unwrap();
    let body = assert_problem(
        scan(&app, Some(&organizer), event.event_id, &ticket.qr_payload).await,
        409,
        "ticket_not_valid",
    )
    .await;
    assert_eq!(body["ticket_status"], "refund_pending");

    tickets::set_status_for_booking(
        &mut conn,
        ticket.booking_id,
        TicketStatus::RefundPending,
        TicketStatus::Void,
    )
    .await
    .unwrap();
    let body = assert_problem(
        scan(&app, Some(&organizer), event.event_id, &ticket.qr_payload).await,
        409,
        "ticket_void",
    )
    .await;
    assert_eq!(body["ticket_id"], ticket.id.to_string());
    assert_eq!(body["ticket_status"], "void");

    let stored = tickets::find_by_id(&mut conn, ticket.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.checked_in_at, None,
        "a refused ticket is never checked in"
    );
}

#[tokio::test]
async fn a_ticket_of_another_event_is_refused() {
    let Door {
        app,
        organizer,
        event,
        ticket,
    } = door().await;
    // Same organizer, another event: the scanner is at the wrong door.
    let mut conn = app.raw_conn().await;
    let other = create_event(&mut conn, organizer.id).await;
    let body = assert_problem(
        scan(&app, Some(&organizer), other.event_id, &ticket.qr_payload).await,
        422,
        "wrong_event",
    )
    .await;
    assert_eq!(body["ticket_id"], ticket.id.to_string());
    // It still admits at its own event.
    json_ok(scan(&app, Some(&organizer), event.event_id, &ticket.qr_payload).await).await;
}

#[tokio::test]
async fn only_the_events_organizer_or_an_admin_may_check_in() {
    let Door {
        app,
        organizer: _,
        event,
        ticket,
    } = door().await;
    let other_organizer = app.create_user(&[Role::Organizer]).await;
    let participant = app.create_user(&[]).await;
    let admin = app.create_user(&[Role::Admin]).await;

    assert_problem(
        scan(&app, None, event.event_id, &ticket.qr_payload).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        scan(&app, Some(&participant), event.event_id, &ticket.qr_payload).await,
        403,
        "forbidden",
    )
    .await;
    // Another organizer's event is none of their business: 404, not 403.
    assert_problem(
        scan(
            &app,
            Some(&other_organizer),
            event.event_id,
            &ticket.qr_payload,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        scan(
            &app,
            Some(&other_organizer),
            Uuid::now_v7(),
            &ticket.qr_payload,
        )
        .await,
        404,
        "not_found",
    )
    .await;

    let mut conn = app.raw_conn().await;
    let stored = tickets::find_by_id(&mut conn, ticket.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.checked_in_at, None,
        "refused callers changed nothing"
    );

    let admitted =
        json_ok(scan(&app, Some(&admin), event.event_id, &ticket.qr_payload).await).await;
    assert_eq!(admitted["checked_in_by"], admin.id.to_string());
}

#[tokio::test]
async fn concurrent_scans_of_one_ticket_admit_it_once() {
    let Door {
        app,
        organizer,
        event,
        ticket,
    } = door().await;
    let scans = (0..8).map(|_| scan(&app, Some(&organizer), event.event_id, &ticket.qr_payload));
    let responses = futures::future::join_all(scans).await;

    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for response in responses {
        match response.status().as_u16() {
            200 => admitted.push(json_ok(response).await),
            409 => refused.push(assert_problem(response, 409, "already_checked_in").await),
            other => panic!(
                "unexpected status {other}: {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }
    assert_eq!(admitted.len(), 1, "exactly one door admits the ticket");
    assert_eq!(refused.len(), 7);
    let first_scan = timestamp(&admitted[0]["checked_in_at"]);
    for body in &refused {
        assert_eq!(timestamp(&body["checked_in_at"]), first_scan, "{body}");
    }
}

#[tokio::test]
async fn the_published_key_verifies_issued_tickets_offline() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[]).await;
    let mut conn = app.raw_conn().await;
    let event = create_event(&mut conn, organizer.id).await;
    let issued = book(&app, &mut conn, &event, buyer.id, 5).await;
    assert_eq!(issued.len(), 5);

    let response = app
        .client
        .get(app.url("/v1/tickets/public-key"))
        .send()
        .await
        .unwrap();
    let cache_control = response.headers().get("cache-control").cloned();
    let published = json_ok(response).await;
    assert_eq!(published["algorithm"], "Ed25519");
    assert_eq!(published["format"], "BX1");
    assert_eq!(cache_control.unwrap(), "public, max-age=300");
    let key = TicketPublicKey::from_base64(published["public_key"].as_str().unwrap()).unwrap();

    let mut numbers = std::collections::HashSet::new();
    for ticket in &issued {
        // What a scanner with nothing but the published key can tell.
        let claims =
            ticket_codes::verify(&key, &ticket.qr_payload).expect("a genuine ticket verifies");
        assert_eq!(claims.ticket_id, ticket.id);
        assert_eq!(claims.event_id, event.event_id);
        assert_eq!(claims.number.to_string(), ticket.number);
        assert_eq!(ticket.status, TicketStatus::Valid);
        assert!(numbers.insert(ticket.number.clone()), "numbers are unique");
    }

    // Issuing again for the same booking (a step run twice) issues nothing new.
    let booking_id = issued[0].booking_id;
    let again = tickets::insert_for_booking(
        &mut conn,
        booking_id,
        event.event_id,
        &to_issue(event.ticket_type_id, 5, 2500),
        &app.ticket_signer(),
    )
    .await
    .unwrap();
    assert_eq!(again, issued);
    assert_eq!(
        tickets::list_for_booking(&mut conn, booking_id)
            .await
            .unwrap(),
        issued
    );
}
