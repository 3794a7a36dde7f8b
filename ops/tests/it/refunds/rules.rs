//! Who may refund what: each refusal answers its code and changes nothing;
//! the organizer refunds after the buyers' window, and gives goodwill sums.

use boxoffice_models::users::Role;
use serde_json::json;

use super::support::{
    booking_money, check_in, emails, finished, paid_booking, qr_payload, refund, refundable_event,
    run_id, set_window, snapshot, ticket_status,
};
use crate::harness::{TestApp, assert_problem};

#[tokio::test]
async fn refused_refunds_answer_their_code_and_change_nothing() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let other = app.create_user(&[Role::Participant]).await;
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 3).await;
    let others = paid_booking(&app, &sandbox, &other, &event, 1).await;
    let [t0, t1, t2] = [&paid.tickets[0], &paid.tickets[1], &paid.tickets[2]];

    // The first ticket is used at the door.
    let used = check_in(
        &app,
        &organizer,
        event.event_id,
        &qr_payload(&app, t0).await,
    )
    .await;
    assert_eq!(used.status(), 200, "{}", used.text().await.unwrap());

    let before = snapshot(&app, &sandbox, &paid.booking).await;
    let others_before = snapshot(&app, &sandbox, &others.booking).await;
    let mut key = 0;
    let mut next_key = || {
        key += 1;
        format!("refused-{key}")
    };

    // Used at the door: not for its buyer.
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [t0] }),
        &next_key(),
    )
    .await;
    let body = assert_problem(r, 409, "ticket_used").await;
    assert_eq!(body["ticket_id"], t0.as_str());
    // Another user's booking is not found, whoever asks among participants.
    let r = refund(
        &app,
        &buyer,
        &others.booking,
        json!({ "ticket_ids": [others.tickets[0]] }),
        &next_key(),
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    let r = refund(&app, &buyer, &others.booking, json!({}), &next_key()).await;
    assert_problem(r, 404, "not_found").await;
    // Another booking's ticket named in one's own booking.
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [others.tickets[0]] }),
        &next_key(),
    )
    .await;
    assert_problem(r, 409, "ticket_not_refundable").await;
    // A sum of goodwill is not the buyer's to ask.
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "amount_minor": 100 }),
        &next_key(),
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    // Bad bodies.
    for (body, status, code) in [
        (json!({ "ticket_ids": [] }), 422, "validation_failed"),
        (json!({ "ticket_ids": [t1, t1] }), 422, "validation_failed"),
        (
            json!({ "ticket_ids": [t1], "refund_everything": true }),
            422,
            "invalid_body",
        ),
        (json!({ "ticket_ids": ["not-a-uuid"] }), 422, "invalid_body"),
        (json!({ "amount_minor": -5 }), 422, "validation_failed"),
        (json!({ "amount_minor": 0 }), 422, "validation_failed"),
        (
            json!({ "amount_minor": 100, "ticket_ids": [t1] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "reason": "x".repeat(501) }),
            422,
            "validation_failed",
        ),
        // PostgreSQL's text cannot hold NUL: refused, not a 500.
        (
            json!({ "reason": "changed\u{0}my mind" }),
            422,
            "validation_failed",
        ),
    ] {
        let r = refund(&app, &buyer, &paid.booking, body.clone(), &next_key()).await;
        let problem = assert_problem(r, status, code).await;
        assert!(problem["detail"].is_string(), "{body} → {problem}");
    }
    let r = app
        .client
        .post(app.url(&format!("/v1/bookings/{}/refunds", paid.booking)))
        .header("authorization", buyer.bearer())
        .header("idempotency-key", next_key())
        .header("content-type", "application/json")
        .body("{\"ticket_ids\": [")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_json").await;
    let r = app
        .client
        .post(app.url(&format!("/v1/bookings/{}/refunds", paid.booking)))
        .header("authorization", buyer.bearer())
        .json(&json!({ "ticket_ids": [t1] }))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "idempotency_key_required").await;
    assert_eq!(snapshot(&app, &sandbox, &paid.booking).await, before);
    assert_eq!(
        snapshot(&app, &sandbox, &others.booking).await,
        others_before
    );

    // A refund goes through; the same ticket again is refused.
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [t1] }),
        "refund-t1",
    )
    .await;
    let run = run_id(r).await;
    let done = finished(&app, &buyer, &run).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["amount_minor"], 4500);
    assert_eq!(ticket_status(&app, t1).await, "void");
    let before = snapshot(&app, &sandbox, &paid.booking).await;
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [t1] }),
        &next_key(),
    )
    .await;
    let body = assert_problem(r, 409, "ticket_not_refundable").await;
    assert_eq!(body["ticket_status"], "void", "{body}");
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [t2, t1] }),
        &next_key(),
    )
    .await;
    assert_problem(r, 409, "ticket_not_refundable").await;
    assert_eq!(snapshot(&app, &sandbox, &paid.booking).await, before);

    // The window closes (the event is 30 days away; refunds end 31 days before).
    set_window(&app, event.event_id, Some(24 * 31)).await;
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [t2] }),
        &next_key(),
    )
    .await;
    let body = assert_problem(r, 409, "refund_window_closed").await;
    assert!(body["closed_at"].is_string(), "{body}");
    // An event with no window: its tickets are not refundable by buyers.
    set_window(&app, event.event_id, None).await;
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [t2] }),
        &next_key(),
    )
    .await;
    assert_problem(r, 409, "not_refundable").await;
    let r = refund(&app, &buyer, &paid.booking, json!({}), &next_key()).await;
    assert_problem(r, 409, "not_refundable").await;
    assert_eq!(snapshot(&app, &sandbox, &paid.booking).await, before);
    assert_eq!(ticket_status(&app, t2).await, "valid");
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("partially_refunded".into(), 4500)
    );
    assert_eq!(emails(&app, "refund_completed").await, 1);
    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&paid.intent], 1, "{stats}");
    assert_eq!(
        stats["refunded_minor_by_intent"][&paid.intent], 4500,
        "{stats}"
    );
    assert!(
        stats["refunds_by_intent"].get(&others.intent).is_none(),
        "{stats}"
    );
}

#[tokio::test]
async fn the_organizer_refunds_after_the_window_and_gives_goodwill_within_what_was_paid() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    // Buyers could refund until 31 days before: already closed.
    let event = refundable_event(&app, &organizer, 4500, 10, Some(24 * 31)).await;
    let paid = paid_booking(&app, &sandbox, &buyer, &event, 3).await;
    assert_eq!(paid.amount_minor, 13500);
    let [t0, t1, t2] = [&paid.tickets[0], &paid.tickets[1], &paid.tickets[2]];
    let r = refund(
        &app,
        &buyer,
        &paid.booking,
        json!({ "ticket_ids": [t0] }),
        "buyer-late",
    )
    .await;
    assert_problem(r, 409, "refund_window_closed").await;
    // The first ticket was used: the organizer may still refund it.
    let used = check_in(
        &app,
        &organizer,
        event.event_id,
        &qr_payload(&app, t0).await,
    )
    .await;
    assert_eq!(used.status(), 200);

    let r = refund(
        &app,
        &organizer,
        &paid.booking,
        json!({ "ticket_ids": [t0], "reason": "stage collapsed" }),
        "org-1",
    )
    .await;
    let run = run_id(r).await;
    let done = finished(&app, &organizer, &run).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["amount_minor"], 4500);
    assert_eq!(done["requested_by"], "organizer");
    assert_eq!(ticket_status(&app, t0).await, "void");

    // Goodwill: money back, no ticket voided.
    let r = refund(
        &app,
        &organizer,
        &paid.booking,
        json!({ "amount_minor": 1000 }),
        "org-goodwill",
    )
    .await;
    let run = run_id(r).await;
    let done = finished(&app, &organizer, &run).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["amount_minor"], 1000);
    assert_eq!(done["ticket_ids"], json!([]));
    assert_eq!(ticket_status(&app, t1).await, "valid");
    assert_eq!(ticket_status(&app, t2).await, "valid");
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("partially_refunded".into(), 5500)
    );

    // 8000 is left: 8001 is refused, and nothing changes.
    let before = snapshot(&app, &sandbox, &paid.booking).await;
    let r = refund(
        &app,
        &organizer,
        &paid.booking,
        json!({ "amount_minor": 8001 }),
        "org-too-much",
    )
    .await;
    let body = assert_problem(r, 409, "amount_exceeds_refundable").await;
    assert_eq!(body["refundable_minor"], 8000, "{body}");
    assert_eq!(snapshot(&app, &sandbox, &paid.booking).await, before);

    // The rest of the booking: its two tickets and whatever money is left.
    let r = refund(&app, &organizer, &paid.booking, json!({}), "org-rest").await;
    let run = run_id(r).await;
    let done = finished(&app, &organizer, &run).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["amount_minor"], 8000);
    assert_eq!(
        booking_money(&app, &paid.booking).await,
        ("refunded".into(), 13500)
    );
    for t in [t1, t2] {
        assert_eq!(ticket_status(&app, t).await, "void");
    }
    // Nothing is left: a further sum is refused.
    let r = refund(
        &app,
        &organizer,
        &paid.booking,
        json!({ "amount_minor": 1 }),
        "org-more",
    )
    .await;
    assert_problem(r, 409, "amount_exceeds_refundable").await;

    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&paid.intent], 3, "{stats}");
    assert_eq!(
        stats["refunded_minor_by_intent"][&paid.intent], 13500,
        "{stats}"
    );
    assert_eq!(
        stats["charged_minor_by_intent"][&paid.intent], 13500,
        "{stats}"
    );
    assert_eq!(emails(&app, "refund_completed").await, 3);
}
