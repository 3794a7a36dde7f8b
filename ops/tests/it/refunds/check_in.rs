//! The door refuses a ticket being refunded and a refunded one.

use boxoffice_models::users::Role;
use serde_json::json;

use super::support::{
    check_in, finished, paid_booking, qr_payload, refund, refundable_event, run_id, ticket_status,
};
use crate::checkout_support::count;
use crate::harness::{TestApp, assert_problem};

#[tokio::test]
async fn check_in_refuses_a_ticket_being_refunded_and_a_refunded_one() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 2).await;
    let (ticket, kept) = (&paid.tickets[0], &paid.tickets[1]);
    let payload = qr_payload(&app, ticket).await;
    // The provider takes its time: the ticket stays `refund_pending`.
    sandbox
        .configure(json!({ "refund_pending_ms": 3000 }))
        .await;

    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [ticket] }),
        "door-1",
    )
    .await;
    let run = run_id(r).await;
    // Marked in the request's own transaction: refused from the 202 on.
    assert_eq!(ticket_status(&app, ticket).await, "refund_pending");
    let body = assert_problem(
        check_in(&app, &organizer, event.event_id, &payload).await,
        409,
        "ticket_not_valid",
    )
    .await;
    assert_eq!(body["ticket_status"], "refund_pending", "{body}");
    assert_eq!(body["ticket_id"], ticket.as_str(), "{body}");

    let done = finished(&app, &buyer, &run).await;
    assert_eq!(done["status"], "completed", "{done}");
    let body = assert_problem(
        check_in(&app, &organizer, event.event_id, &payload).await,
        409,
        "ticket_void",
    )
    .await;
    assert_eq!(body["ticket_status"], "void", "{body}");

    let admitted = "SELECT 1 FROM tickets WHERE checked_in_at IS NOT NULL";
    assert_eq!(
        count(&app.db.url, admitted).await,
        0,
        "a refused ticket is never checked in"
    );
    // The other ticket of the booking still admits its holder.
    let r = check_in(
        &app,
        &organizer,
        event.event_id,
        &qr_payload(&app, kept).await,
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(count(&app.db.url, admitted).await, 1);
}
