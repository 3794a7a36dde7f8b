//! Checkouts that need no payment: free tickets, and a coupon that discounts.

use std::time::Duration;

use boxoffice_models::holds;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::users::Role;
use serde_json::Value;

use super::fixtures::{count, counters, event_on_sale, is_finished, order, start, wait_for};
use crate::harness::{TEST_TICKET_SEED, TestApp};

#[tokio::test]
async fn free_checkout_issues_signed_tickets_and_one_email() {
    let app = TestApp::spawn().await;
    app.start_workers("http://127.0.0.1:1");
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(0, 10)], 15).await;

    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 3),
        Some("free-1"),
    )
    .await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let started: Value = r.json().await.unwrap();
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/workflows/{run_id}"));

    let view = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["ticket_ids"].as_array().unwrap().len(), 3);
    assert!(
        view["payment"].is_null(),
        "free tickets skip payment: {view}"
    );
    assert_eq!(
        (view["amount_minor"].as_i64(), view["currency"].as_str()),
        (Some(0), Some("EUR"))
    );

    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 3, 0)
    );
    let mut conn = app.raw_conn().await;
    assert!(holds::inconsistencies(&mut conn).await.unwrap().is_empty());

    // The tickets verify offline with the public key.
    let booking_id = view["booking_id"].as_str().unwrap();
    let tickets: Vec<Value> = app
        .client
        .get(app.url(&format!("/v1/bookings/{booking_id}/tickets")))
        .header("authorization", buyer.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tickets.len(), 3);
    let public_key = TicketSigner::from_seed(&TEST_TICKET_SEED).public_key();
    for t in &tickets {
        let claims =
            boxoffice_models::ticket_codes::verify(&public_key, t["qr_payload"].as_str().unwrap())
                .expect("a valid signature");
        assert_eq!(claims.event_id, event.event_id);
    }

    // One confirmation email, however the steps ran.
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM notifications WHERE kind = 'booking_confirmation'"
        )
        .await,
        1
    );
    let mail_dir = app.mail_dir();
    let started = std::time::Instant::now();
    loop {
        let files = std::fs::read_dir(&mail_dir).map(|d| d.count()).unwrap_or(0);
        if files == 1 {
            break;
        }
        assert!(
            files == 0 && started.elapsed() < Duration::from_secs(15),
            "{files} emails written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_full_coupon_makes_a_paid_ticket_free_and_uses_the_coupon_once() {
    let app = TestApp::spawn().await;
    app.start_workers("http://127.0.0.1:1");
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2500, 10)], 15).await;
    super::fixtures::coupon(&app.db.url, event.event_id, "ALLFREE", 100, 5).await;

    let mut body = order(&event, 0, 2);
    body["coupon_code"] = "allfree".into();
    let r = start(&app.base_url, &app.client, &buyer, body, None).await;
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["amount_minor"], 0);
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM coupons WHERE used = 1").await,
        1
    );
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM bookings WHERE subtotal_minor = 5000 AND discount_minor = 5000 AND total_minor = 0").await,
        1
    );
    // The sale made the run's coupon use final.
    assert_eq!(
        count(
            &app.db.url,
            &format!("SELECT 1 FROM coupon_reservations WHERE run_id = '{run_id}' AND status = 'redeemed' AND closed_at IS NOT NULL")
        )
        .await,
        1
    );
}
