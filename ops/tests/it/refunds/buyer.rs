//! A buyer refunds tickets of a couponed order, one at a time.

use std::time::Duration;

use boxoffice_models::users::Role;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};

use crate::checkout_support::{
    count, counters, coupon, event_on_sale, is_finished, start, wait_for,
};
use crate::harness::TestApp;
use crate::harness::users::TestUser;

async fn refund(
    app: &TestApp,
    user: &TestUser,
    booking: &str,
    body: Value,
    key: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/bookings/{booking}/refunds")))
        .header("authorization", user.bearer())
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_buyer_refunds_both_tickets_of_a_couponed_order_one_at_a_time() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 10)], 15).await;
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    conn.batch_execute(&format!(
        "UPDATE events SET refundable_until_hours_before = 24 WHERE id = '{}'",
        event.event_id
    ))
    .await
    .unwrap();
    // 15 % off 90.00: 76.50 paid, 38.25 a ticket.
    coupon(&app.db.url, event.event_id, "SAVE15", 15, 10).await;
    let body = json!({ "event_id": event.event_id, "coupon_code": "SAVE15",
                       "items": [{ "ticket_type_id": event.ticket_types[0], "quantity": 2 }] });
    let r = start(&app.base_url, &app.client, &buyer, body, Some("buy-1")).await;
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let paying = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), |v| {
        v["payment"]["intent_id"].is_string()
    })
    .await;
    let intent = paying["payment"]["intent_id"].as_str().unwrap().to_owned();
    assert_eq!(paying["payment"]["amount_minor"], 7650);
    sandbox.pay(&intent).await;
    let done = wait_for(&app, &buyer, &run_id, Duration::from_secs(20), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    let booking = done["booking_id"].as_str().unwrap().to_owned();
    let tickets: Vec<String> = done["ticket_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 2, 0)
    );

    let mut refunded = 0;
    for (i, ticket) in tickets.iter().enumerate() {
        let r = refund(
            &app,
            &buyer,
            &booking,
            json!({ "ticket_ids": [ticket] }),
            &format!("refund-{i}"),
        )
        .await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let run = r.json::<Value>().await.unwrap()["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let view = wait_for(&app, &buyer, &run, Duration::from_secs(30), is_finished).await;
        assert_eq!(view["status"], "completed", "{view}");
        assert_eq!(view["state"], "refunded");
        refunded += view["amount_minor"].as_i64().unwrap();
        assert!(view["refund_id"].is_string(), "{view}");
    }
    assert_eq!(
        refunded, 7650,
        "the refunds add up to exactly what was paid"
    );
    let stats = sandbox.stats().await;
    assert_eq!(stats["refunds_by_intent"][&intent], 2, "{stats}");
    assert_eq!(stats["refunded_minor_by_intent"][&intent], 7650, "{stats}");
    assert_eq!(
        counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 0),
        "the units are back on sale"
    );
    assert_eq!(count(&app.db.url, &format!("SELECT count(*) FROM bookings WHERE id = '{booking}' AND status = 'refunded' AND refunded_minor = 7650")).await, 1);
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let emails: Vec<NotificationRow> = diesel_async::RunQueryDsl::load(
        diesel::sql_query("SELECT kind, dedupe_key FROM notifications ORDER BY created_at"),
        &mut conn,
    )
    .await
    .unwrap();
    let emails: Vec<(String, String)> =
        emails.into_iter().map(|r| (r.kind, r.dedupe_key)).collect();
    let refund_emails = emails
        .iter()
        .filter(|(kind, _)| kind == "refund_completed")
        .count();
    assert_eq!(refund_emails, 2, "{emails:?}");
}

#[derive(diesel::QueryableByName)]
struct NotificationRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    dedupe_key: String,
}
