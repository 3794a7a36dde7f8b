//! A payment that arrives after its checkout let go of its coupon use keeps its
//! discount only if a use can be taken again; `used ≤ max_uses` is the
//! database's rule, whatever writes the row.

use std::time::Duration;

use boxoffice_models::users::Role;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use super::fixtures::{
    count, counters, coupon, event_on_sale, order, pull_deadlines, wait_for, waiting_checkout,
};
use crate::harness::TestApp;

#[tokio::test]
async fn a_late_payment_whose_coupon_has_no_use_left_is_refunded() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let late_buyer = app.create_user(&[Role::Participant]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 5)], 15).await;
    coupon(&app.db.url, event.event_id, "ONCE", 20, 1).await;
    let mut with_coupon = order(&event, 0, 1);
    with_coupon["coupon_code"] = "ONCE".into();

    // The first checkout takes the coupon's only use, then expires unpaid.
    let (late_run, late_intent) =
        waiting_checkout(&app, &late_buyer, with_coupon.clone(), "late-coupon-1").await;
    pull_deadlines(&app.db.url, &format!("id = '{late_run}'")).await;
    wait_for(&app, &late_buyer, &late_run, Duration::from_secs(20), |v| {
        v["status"] == "compensated"
    })
    .await;
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM coupons WHERE used = 0").await,
        1
    );

    // Someone else uses it and pays.
    let (run, intent) = waiting_checkout(&app, &buyer, with_coupon, "late-coupon-2").await;
    sandbox.pay(&intent).await;
    wait_for(&app, &buyer, &run, Duration::from_secs(20), |v| {
        v["status"] == "completed"
    })
    .await;

    // The first payment arrives after all: seats are free, the coupon is not.
    sandbox.pay_late(&late_intent).await;
    let done = wait_for(&app, &late_buyer, &late_run, Duration::from_secs(20), |v| {
        v["status"] == "compensated" && v["error"]["code"] == "coupon_used_up_refunded"
    })
    .await;
    assert_eq!(done["status"], "compensated", "{done}");
    assert!(done["ticket_ids"].as_array().unwrap().is_empty(), "{done}");
    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&late_intent], 1, "{stats}");
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM coupons WHERE used = 1 AND max_uses = 1"
        )
        .await,
        1,
        "one use, by the paying buyer"
    );
    assert_eq!(
        count(
            &app.db.url,
            "SELECT 1 FROM bookings WHERE coupon_id IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (5, 1, 0)
    );
}

#[tokio::test]
async fn the_database_refuses_more_uses_than_a_coupon_allows() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 5)], 15).await;
    coupon(&app.db.url, event.event_id, "TWICE", 10, 2).await;
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    conn.batch_execute("UPDATE coupons SET used = 2 WHERE code = 'TWICE'")
        .await
        .unwrap();
    let refused = conn
        .batch_execute("UPDATE coupons SET used = used + 1 WHERE code = 'TWICE'")
        .await
        .expect_err("used may not pass max_uses");
    assert!(
        refused.to_string().contains("coupons_used_check"),
        "{refused}"
    );
    let refused = conn
        .batch_execute("UPDATE coupons SET max_uses = 1 WHERE code = 'TWICE'")
        .await
        .expect_err("max_uses may not drop below used");
    assert!(
        refused.to_string().contains("coupons_used_check"),
        "{refused}"
    );
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM coupons WHERE used = 2").await,
        1
    );
}
