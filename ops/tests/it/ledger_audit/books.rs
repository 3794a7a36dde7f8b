//! A healthy set of books, built through the API, the workers and the sandbox.

use std::time::Duration;

use boxoffice_models::users::Role;
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::checkout_support::{SaleEvent, coupon, event_on_sale, is_finished, start, wait_for};
use crate::harness::TestApp;
use crate::harness::sandbox::TestSandbox;
use crate::harness::users::TestUser;

/// What the healthy books hold, by id, for the plants to aim at.
pub struct Books {
    pub event: SaleEvent,
    /// Paid, 2 tickets with the coupon (40.00 after 50 %), one ticket refunded.
    pub refunded: Checkout,
    /// Paid, 1 ticket with the coupon (20.00).
    pub paid: Checkout,
    /// A free ticket.
    pub free: Checkout,
    pub coupon_id: Uuid,
    pub buyer: TestUser,
}

pub struct Checkout {
    pub run: String,
    pub booking: String,
    pub intent: Option<String>,
    pub tickets: Vec<String>,
}

/// Builds the books: event with a paid type (40.00, 10 seats) and a free one
/// (5 seats), a 50 % coupon of 2 uses, two couponed paid checkouts, a refund
/// of one ticket, a free checkout.
pub async fn build(app: &TestApp, sandbox: &TestSandbox) -> Books {
    let organizer = app.create_user(&[Role::Organizer]).await;
    let first = app.create_user(&[Role::Participant]).await;
    let second = app.create_user(&[Role::Participant]).await;
    let third = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4000, 10), (0, 5)], 15).await;
    app.raw_conn()
        .await
        .batch_execute(&format!(
            "UPDATE events SET refundable_until_hours_before = 24 WHERE id = '{}'",
            event.event_id
        ))
        .await
        .unwrap();
    coupon(&app.db.url, event.event_id, "HALF", 50, 2).await;
    let paid_order = |quantity: i32| {
        json!({ "event_id": event.event_id, "coupon_code": "HALF",
                "items": [{ "ticket_type_id": event.ticket_types[0], "quantity": quantity }] })
    };
    let refunded = checkout(app, Some(sandbox), &first, paid_order(2)).await;
    let paid = checkout(app, Some(sandbox), &second, paid_order(1)).await;
    let free_order = json!({ "event_id": event.event_id,
                             "items": [{ "ticket_type_id": event.ticket_types[1], "quantity": 1 }] });
    let free = checkout(app, None, &third, free_order).await;

    let r = app
        .client
        .post(app.url(&format!("/v1/bookings/{}/refunds", refunded.booking)))
        .header("authorization", first.bearer())
        .header("idempotency-key", "audit-refund")
        .json(&json!({ "ticket_ids": [refunded.tickets[0]] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let run = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = wait_for(app, &first, &run, Duration::from_secs(30), is_finished).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["amount_minor"], 2000, "{view}");

    let coupon_id = single(
        app,
        &format!(
            "SELECT id::text AS value FROM coupons WHERE event_id = '{}'",
            event.event_id
        ),
    )
    .await;
    Books {
        event,
        refunded,
        paid,
        free,
        coupon_id: coupon_id.parse().unwrap(),
        buyer: first,
    }
}

/// Starts a checkout, pays it through the sandbox (when it costs money) and
/// waits for its booking.
async fn checkout(
    app: &TestApp,
    sandbox: Option<&TestSandbox>,
    buyer: &TestUser,
    order: Value,
) -> Checkout {
    let r = start(&app.base_url, &app.client, buyer, order, None).await;
    assert_eq!(r.status(), 202);
    let run = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut intent = None;
    if let Some(sandbox) = sandbox {
        let paying = wait_for(app, buyer, &run, Duration::from_secs(20), |v| {
            v["payment"]["intent_id"].is_string()
        })
        .await;
        let id = paying["payment"]["intent_id"].as_str().unwrap().to_owned();
        sandbox.pay(&id).await;
        intent = Some(id);
    }
    let done = wait_for(app, buyer, &run, Duration::from_secs(20), is_finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    Checkout {
        run,
        booking: done["booking_id"].as_str().unwrap().to_owned(),
        intent,
        tickets: done["ticket_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect(),
    }
}

#[derive(QueryableByName)]
struct Single {
    #[diesel(sql_type = Text)]
    value: String,
}

/// The one text value `sql` selects (as `value`).
pub async fn single(app: &TestApp, sql: &str) -> String {
    single_at(&app.db.url, sql).await
}

pub async fn single_at(db_url: &str, sql: &str) -> String {
    let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
    diesel::sql_query(sql)
        .get_result::<Single>(&mut conn)
        .await
        .unwrap()
        .value
}
