//! Paid checkouts against the payment sandbox: pay, decline, expiry, late payment.

use std::time::Duration;

use boxoffice_models::holds;
use boxoffice_models::users::Role;

use super::fixtures::{
    awaiting_payment, count, counters, event_on_sale, is_finished, order, pull_deadlines, start,
    started_run, wait_for,
};
use crate::harness::TestApp;

#[tokio::test]
async fn pay_then_webhook_completes_with_tickets_and_one_charge() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 10)], 15).await;

    let run_id = started_run(
        start(
            &app.base_url,
            &app.client,
            &buyer,
            order(&event, 0, 2),
            Some("pay-1"),
        )
        .await,
    )
    .await;
    let view = wait_for(
        &app,
        &buyer,
        &run_id,
        Duration::from_secs(20),
        awaiting_payment,
    )
    .await;
    assert_eq!(view["payment"]["amount_minor"], 9000);
    assert_eq!(view["payment"]["currency"], "EUR");
    assert!(view["expires_at"].is_string());
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 2)
    );

    sandbox
        .pay(view["payment"]["intent_id"].as_str().unwrap())
        .await;
    let done = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["ticket_ids"].as_array().unwrap().len(), 2);
    assert!(
        done["payment"].is_null(),
        "the client secret is only shown while paying"
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 2, 0)
    );

    let stats = sandbox.stats().await;
    assert_eq!(stats["charges_by_run_id"][&run_id], 1, "{stats}");
    assert_eq!(stats["intents_created"], 1);
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM notifications WHERE kind = 'booking_confirmation'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_declined_card_keeps_the_checkout_and_another_card_pays_the_same_intent() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 10)], 15).await;

    let run_id = started_run(
        start(
            &app.base_url,
            &app.client,
            &buyer,
            order(&event, 0, 1),
            Some("decline-1"),
        )
        .await,
    )
    .await;
    let view = wait_for(
        &app,
        &buyer,
        &run_id,
        Duration::from_secs(20),
        awaiting_payment,
    )
    .await;
    let intent = view["payment"]["intent_id"].as_str().unwrap().to_owned();
    sandbox.decline(&intent).await;
    let declined = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), |v| {
        v["payment"]["last_error"].is_object()
    })
    .await;
    // Still waiting, the seat still held, the decline shown in plain words.
    assert_eq!(declined["status"], "waiting", "{declined}");
    assert_eq!(declined["expires_at"], view["expires_at"], "same deadline");
    assert_eq!(declined["payment"]["intent_id"], intent.as_str());
    let last = &declined["payment"]["last_error"];
    assert_eq!(last["code"], "generic_decline", "{declined}");
    let detail = last["detail"].as_str().unwrap();
    assert!(detail.contains("try another card"), "{detail}");
    assert!(
        !detail.contains("Your card was declined."),
        "the provider's own message is not shown: {detail}"
    );
    assert!(declined["error"].is_null(), "{declined}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 1)
    );

    // Another card, the same intent.
    sandbox.pay(&intent).await;
    let done = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["ticket_ids"].as_array().unwrap().len(), 1);
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 1, 0)
    );
    let stats = sandbox.stats().await;
    assert_eq!(stats["charges_by_run_id"][&run_id], 1, "{stats}");
    assert_eq!(stats["intents_created"], 1, "{stats}");
    assert_eq!(stats["cancellations"], 0, "{stats}");
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM bookings WHERE run_id = '{run_id}'")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn unpaid_checkout_is_compensated_at_its_deadline_and_a_late_payment_is_accepted_or_refunded()
{
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let rival = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 2)], 1).await;
    super::fixtures::coupon(&app.db.url, event.event_id, "TEN", 10, 5).await;

    // Two checkouts: one will expire and then pay late with the seats still
    // free (accepted); one will expire, lose its seats, then pay (refunded).
    let mut first_order = order(&event, 0, 1);
    first_order["coupon_code"] = "TEN".into();
    let first =
        started_run(start(&app.base_url, &app.client, &buyer, first_order, None).await).await;
    let second = started_run(
        start(
            &app.base_url,
            &app.client,
            &rival,
            order(&event, 0, 1),
            None,
        )
        .await,
    )
    .await;
    let v1 = wait_for(
        &app,
        &buyer,
        &first,
        Duration::from_secs(20),
        awaiting_payment,
    )
    .await;
    let v2 = wait_for(
        &app,
        &rival,
        &second,
        Duration::from_secs(20),
        awaiting_payment,
    )
    .await;
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM coupons WHERE used = 1").await,
        1
    );

    for run in [&first, &second] {
        pull_deadlines(&app.db.url, &format!("id = '{run}'")).await;
    }
    let e1 = wait_for(&app, &buyer, &first, Duration::from_secs(20), is_finished).await;
    let e2 = wait_for(&app, &rival, &second, Duration::from_secs(20), is_finished).await;
    for e in [&e1, &e2] {
        assert_eq!(e["status"], "compensated", "{e}");
        assert_eq!(e["error"]["code"], "expired");
    }
    // Capacity back, coupon use back, intents cancelled at the provider.
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (2, 0, 0)
    );
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM coupons WHERE used = 0").await,
        1
    );
    assert_eq!(sandbox.stats().await["cancellations"], 2);

    // The provider let a cancelled intent be paid anyway (it raced the cancel):
    // seats are free, so the first late payment is sold.
    sandbox
        .pay_late(v1["payment"]["intent_id"].as_str().unwrap())
        .await;
    let late = wait_for(&app, &buyer, &first, Duration::from_secs(20), |v| {
        v["status"] == "completed"
    })
    .await;
    assert_eq!(late["ticket_ids"].as_array().unwrap().len(), 1);
    // Sold with its discount: the coupon use was taken again.
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM coupons c JOIN coupon_reservations r ON r.coupon_id = c.id WHERE c.used = 1 AND r.run_id = '{first}' AND r.status = 'redeemed'")
        )
        .await,
        1
    );

    // Someone else takes the last seat; the second late payment is refunded.
    let third = started_run(
        start(
            &app.base_url,
            &app.client,
            &rival,
            order(&event, 0, 1),
            None,
        )
        .await,
    )
    .await;
    let v3 = wait_for(
        &app,
        &rival,
        &third,
        Duration::from_secs(20),
        awaiting_payment,
    )
    .await;
    sandbox
        .pay(v3["payment"]["intent_id"].as_str().unwrap())
        .await;
    wait_for(&app, &rival, &third, Duration::from_secs(20), |v| {
        v["status"] == "completed"
    })
    .await;
    sandbox
        .pay_late(v2["payment"]["intent_id"].as_str().unwrap())
        .await;
    let refunded = wait_for(&app, &rival, &second, Duration::from_secs(20), |v| {
        v["status"] == "compensated" && v["error"]["code"] == "sold_out_refunded"
    })
    .await;
    assert_eq!(refunded["status"], "compensated");
    let stats = sandbox.stats().await;
    assert_eq!(
        stats["refunds_by_intent"][v2["payment"]["intent_id"].as_str().unwrap()],
        1,
        "{stats}"
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (2, 2, 0)
    );
    let mut conn = app.raw_conn().await;
    assert!(holds::inconsistencies(&mut conn).await.unwrap().is_empty());
}
