//! Every figure of an event's analytics equals a computation from the raw
//! tables (bookings, tickets, holds, refunds, checkout runs, coupons, waitlist
//! entries), to the cent, after a seeded random mix driven over HTTP: paid,
//! couponed and free checkouts, expired and declined ones, cancelled ones, sold
//! out ones, refunds by buyers and organizers (tickets and goodwill sums) and
//! check-ins. The admins' totals equal the event's (it is the only one).

use std::time::Duration;

use boxoffice_models::users::Role;
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use super::support::{Rng, analytics, execute, get, json_of, wait_quiet};
use crate::checkout_support::{
    SaleEvent, awaiting_payment, cancel, coupon, event_on_sale, is_finished, pull_deadlines, start,
    started_run, wait_for,
};
use crate::harness::TestApp;
use crate::harness::sandbox::TestSandbox;
use crate::harness::users::TestUser;

const BUYERS: usize = 28;
/// Ticket types: a paid one, a hot paid one of 3 seats, a free one.
const TYPES: [(i64, i32); 3] = [(2550, 60), (4199, 3), (0, 30)];
const PAID: usize = 0;
const HOT: usize = 1;
const FREE: usize = 2;
const COUPONS: [(&str, i64); 3] = [("SAVE15", 15), ("THIRD", 33), ("UNUSED", 10)];

#[derive(Debug, Clone, Copy)]
enum Refund {
    None,
    /// The buyer gives back the first ticket.
    BuyerOneTicket,
    /// The organizer gives back a sum of goodwill.
    OrganizerGoodwill(i64),
    /// The organizer gives back every ticket.
    OrganizerAll,
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    Paid {
        ticket_type: usize,
        quantity: i32,
        coupon: Option<&'static str>,
        refund: Refund,
        check_in: bool,
    },
    Free {
        quantity: i32,
        refund: bool,
        check_in: bool,
    },
    /// Waits for payment until the deadline passes.
    Expired,
    /// A card is declined, then the deadline passes.
    Declined,
    /// The buyer cancels while paying.
    Cancelled,
    /// More seats of the hot type than it has.
    SoldOut,
}

impl Plan {
    fn pick(rng: &mut Rng) -> Plan {
        match rng.below(10) {
            0..=3 => Plan::Paid {
                ticket_type: if rng.below(4) == 0 { HOT } else { PAID },
                quantity: 1 + rng.below(3) as i32,
                coupon: match rng.below(3) {
                    0 => Some(COUPONS[0].0),
                    1 => Some(COUPONS[1].0),
                    _ => None,
                },
                refund: match rng.below(4) {
                    0 => Refund::BuyerOneTicket,
                    1 => Refund::OrganizerGoodwill(100 + rng.below(900) as i64),
                    2 => Refund::OrganizerAll,
                    _ => Refund::None,
                },
                check_in: rng.below(2) == 0,
            },
            4 => Plan::Free {
                quantity: 1 + rng.below(2) as i32,
                refund: rng.below(3) == 0,
                check_in: rng.below(2) == 0,
            },
            5 => Plan::Expired,
            6 => Plan::Declined,
            7 => Plan::Cancelled,
            8 => Plan::SoldOut,
            _ => Plan::Paid {
                ticket_type: PAID,
                quantity: 1,
                coupon: None,
                refund: Refund::None,
                check_in: false,
            },
        }
    }
}

struct World<'a> {
    app: &'a TestApp,
    sandbox: &'a TestSandbox,
    organizer: &'a TestUser,
    event: &'a SaleEvent,
}

fn order(world: &World<'_>, ticket_type: usize, quantity: i32, coupon: Option<&str>) -> Value {
    let mut body = json!({ "event_id": world.event.event_id,
        "items": [{ "ticket_type_id": world.event.ticket_types[ticket_type], "quantity": quantity }] });
    if let Some(code) = coupon {
        body["coupon_code"] = code.into();
    }
    body
}

async fn begin(world: &World<'_>, buyer: &TestUser, body: Value) -> String {
    let app = world.app;
    started_run(start(&app.base_url, &app.client, buyer, body, None).await).await
}

async fn finish(world: &World<'_>, buyer: &TestUser, run: &str) -> Value {
    wait_for(world.app, buyer, run, Duration::from_secs(60), is_finished).await
}

/// Carries out one buyer's plan; returns the final checkout status.
async fn carry_out(world: &World<'_>, buyer: &TestUser, plan: Plan) -> String {
    let app = world.app;
    match plan {
        Plan::Paid {
            ticket_type,
            quantity,
            coupon,
            refund,
            check_in,
        } => {
            let run = begin(world, buyer, order(world, ticket_type, quantity, coupon)).await;
            let view = wait_for(app, buyer, &run, Duration::from_secs(60), |v| {
                awaiting_payment(v) || is_finished(v)
            })
            .await;
            if is_finished(&view) {
                // The hot type ran out before this buyer held it.
                return view["status"].as_str().unwrap().to_owned();
            }
            let intent = view["payment"]["intent_id"].as_str().unwrap().to_owned();
            world.sandbox.pay(&intent).await;
            let done = finish(world, buyer, &run).await;
            assert_eq!(done["status"], "completed", "{done}");
            after_sale(world, buyer, &done, refund, check_in).await;
            "completed".into()
        }
        Plan::Free {
            quantity,
            refund,
            check_in,
        } => {
            let run = begin(world, buyer, order(world, FREE, quantity, None)).await;
            let done = finish(world, buyer, &run).await;
            assert_eq!(done["status"], "completed", "{done}");
            let refund = if refund {
                Refund::BuyerOneTicket
            } else {
                Refund::None
            };
            after_sale(world, buyer, &done, refund, check_in).await;
            "completed".into()
        }
        Plan::Expired | Plan::Declined | Plan::Cancelled => {
            let run = begin(world, buyer, order(world, PAID, 1, None)).await;
            let view = wait_for(app, buyer, &run, Duration::from_secs(60), awaiting_payment).await;
            let intent = view["payment"]["intent_id"].as_str().unwrap().to_owned();
            if let Plan::Cancelled = plan {
                let r = cancel(app, buyer, &run).await;
                assert!(r.status().is_success(), "cancel: {}", r.status());
            } else {
                if let Plan::Declined = plan {
                    world.sandbox.decline(&intent).await;
                    wait_for(app, buyer, &run, Duration::from_secs(60), |v| {
                        v["payment"]["last_error"].is_object()
                    })
                    .await;
                }
                pull_deadlines(&app.db.url, &format!("id = '{run}'")).await;
            }
            let done = finish(world, buyer, &run).await;
            done["status"].as_str().unwrap().to_owned()
        }
        Plan::SoldOut => {
            let run = begin(world, buyer, order(world, HOT, TYPES[HOT].1 + 1, None)).await;
            let done = finish(world, buyer, &run).await;
            assert_eq!(done["error"]["code"], "sold_out", "{done}");
            "compensated".into()
        }
    }
}

/// Refunds and check-ins of a completed checkout.
async fn after_sale(
    world: &World<'_>,
    buyer: &TestUser,
    done: &Value,
    refund: Refund,
    check_in: bool,
) {
    let app = world.app;
    let booking = done["booking_id"].as_str().unwrap().to_owned();
    let tickets: Vec<String> = done["ticket_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let paid = done["amount_minor"].as_i64().unwrap_or(0);
    let (who, body) = match refund {
        Refund::None => (None, Value::Null),
        Refund::BuyerOneTicket => (Some(buyer), json!({ "ticket_ids": [tickets[0]] })),
        Refund::OrganizerGoodwill(_) if paid == 0 => (None, Value::Null),
        Refund::OrganizerGoodwill(amount) => (
            Some(world.organizer),
            json!({ "amount_minor": amount.min(paid) }),
        ),
        Refund::OrganizerAll => (Some(world.organizer), json!({ "ticket_ids": tickets })),
    };
    if let Some(who) = who {
        let r = app
            .client
            .post(app.url(&format!("/v1/bookings/{booking}/refunds")))
            .header("authorization", who.bearer())
            .header("idempotency-key", Uuid::new_v4().to_string())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "refund {body}: {answer}");
        let run = answer["run_id"].as_str().unwrap();
        let ended = wait_for(app, who, run, Duration::from_secs(60), is_finished).await;
        assert_eq!(ended["status"], "completed", "{ended}");
    }
    // The door admits the last ticket unless a refund took it.
    let last_refunded = match refund {
        Refund::BuyerOneTicket => tickets.len() == 1,
        Refund::OrganizerAll => true,
        Refund::None | Refund::OrganizerGoodwill(_) => false,
    };
    if check_in && !last_refunded {
        let ticket = tickets.last().unwrap();
        let payload = json_of(
            app,
            &format!("SELECT to_json(qr_payload) FROM tickets WHERE id = '{ticket}'"),
        )
        .await;
        let r = app
            .client
            .post(app.url(&format!("/v1/events/{}/check-in", world.event.event_id)))
            .header("authorization", world.organizer.bearer())
            .json(&json!({ "qr_payload": payload }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

/// The funnel outcome of a checkout run, from its row.
fn outcome(status: &str, state: &Value) -> &'static str {
    let code = state["error"]["code"].as_str();
    if status == "completed" {
        "completed"
    } else if matches!(status, "running" | "waiting" | "compensating") {
        "in_progress"
    } else if code == Some("sold_out") {
        "sold_out"
    } else if state["payment"]["last_error"].is_object() {
        "payment_declined"
    } else if code == Some("expired") {
        "expired_unpaid"
    } else if code == Some("cancelled") {
        "cancelled"
    } else {
        "other"
    }
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct RawBucket {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    start: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    orders: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    tickets: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    revenue_minor: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    refunds: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    refunds_minor: i64,
}

/// The hourly series on the venue's clock, from every booking and refund row.
async fn raw_series(app: &TestApp, event_id: Uuid) -> Vec<RawBucket> {
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    diesel::sql_query(
        "WITH moves AS (
              SELECT b.created_at AS at, 1 AS orders,
                     (SELECT count(*) FROM tickets t WHERE t.booking_id = b.id) AS tickets,
                     b.total_minor AS revenue, 0 AS refunds, 0::bigint AS refunded
                FROM bookings b WHERE b.event_id = $1
              UNION ALL
              SELECT coalesce(r.completed_at, r.created_at), 0, 0, 0, 1, r.amount_minor
                FROM refunds r JOIN bookings b ON b.id = r.booking_id
               WHERE b.event_id = $1 AND r.status = 'succeeded'
          ), zone AS (
              SELECT v.timezone AS tz FROM events e JOIN venues v ON v.id = e.venue_id WHERE e.id = $1
          )
          SELECT at - ((at AT TIME ZONE tz) - date_trunc('hour', at AT TIME ZONE tz)) AS start,
                 sum(orders)::bigint AS orders, sum(tickets)::bigint AS tickets,
                 sum(revenue)::bigint AS revenue_minor, sum(refunds)::bigint AS refunds,
                 sum(refunded)::bigint AS refunds_minor
            FROM moves, zone GROUP BY 1 ORDER BY 1",
    )
    .bind::<diesel::sql_types::Uuid, _>(event_id)
    .load(&mut conn)
    .await
    .unwrap()
}

/// Compares every figure of `a` (an event's analytics) with a computation
/// from the raw tables; returns what the comparison computed.
pub async fn assert_equal_to_raw_tables(app: &TestApp, id: Uuid, a: &Value) -> Raw {
    // Per ticket type and in total.
    let types = json_of(
        app,
        &format!(
            "SELECT json_agg(json_build_object(
                 'id', t.id, 'name', t.name, 'price_minor', t.price_minor, 'capacity', t.capacity,
                 'sold', (SELECT count(*) FROM tickets k WHERE k.ticket_type_id = t.id AND k.status <> 'void'),
                 'held', (SELECT coalesce(sum(quantity), 0) FROM holds h WHERE h.ticket_type_id = t.id AND h.status = 'active'),
                 'waiting_units', (SELECT coalesce(sum(quantity), 0) FROM waitlist_entries w
                                    WHERE w.ticket_type_id = t.id AND w.status = 'waiting'),
                 'checked_in', (SELECT count(*) FROM tickets k WHERE k.ticket_type_id = t.id AND k.checked_in_at IS NOT NULL),
                 'tickets_issued', (SELECT count(*) FROM tickets k WHERE k.ticket_type_id = t.id),
                 'tickets_refunded', (SELECT count(*) FROM tickets k WHERE k.ticket_type_id = t.id AND k.status = 'void'),
                 'paid_minor', (SELECT coalesce(sum(paid_minor), 0) FROM tickets k WHERE k.ticket_type_id = t.id)
               ) ORDER BY t.sort_order, t.id) FROM ticket_types t WHERE t.event_id = '{id}'"
        ),
    )
    .await;
    let mut expected_types = Vec::new();
    let mut totals = json!({ "capacity": 0, "sold": 0, "held": 0, "available": 0, "waiting_units": 0,
                             "checked_in": 0, "tickets_issued": 0, "tickets_refunded": 0 });
    for t in types.as_array().unwrap() {
        let n = |k: &str| t[k].as_i64().unwrap();
        let available = (n("capacity") - n("sold") - n("held") - n("waiting_units")).max(0);
        let mut t = t.clone();
        t["available"] = available.into();
        for key in [
            "capacity",
            "sold",
            "held",
            "available",
            "waiting_units",
            "checked_in",
            "tickets_issued",
            "tickets_refunded",
        ] {
            totals[key] = (totals[key].as_i64().unwrap() + t[key].as_i64().unwrap()).into();
        }
        expected_types.push(t);
    }
    assert_eq!(a["ticket_types"], Value::Array(expected_types));
    assert_eq!(a["totals"], totals);

    // Money, from what was paid.
    let money = json_of(
        app,
        &format!(
            "SELECT json_build_object('orders', count(*),
                 'gross_minor', coalesce(sum(subtotal_minor), 0),
                 'discounts_minor', coalesce(sum(discount_minor), 0),
                 'paid_minor', coalesce(sum(total_minor), 0),
                 'refunds_minor', (SELECT coalesce(sum(r.amount_minor), 0) FROM refunds r
                                     JOIN bookings b ON b.id = r.booking_id
                                    WHERE b.event_id = '{id}' AND r.status = 'succeeded'))
               FROM bookings WHERE event_id = '{id}'"
        ),
    )
    .await;
    let m = |k: &str| money[k].as_i64().unwrap();
    let (orders, paid) = (m("orders"), m("paid_minor"));
    let expected_money = json!({
        "currency": "EUR",
        "orders": orders,
        "gross_minor": m("gross_minor"),
        "discounts_minor": m("discounts_minor"),
        "paid_minor": paid,
        "refunds_minor": m("refunds_minor"),
        "net_minor": paid - m("refunds_minor"),
        "average_order_value_minor": if orders == 0 { 0 } else { (2 * paid + orders) / (2 * orders) },
    });
    assert_eq!(a["money"], expected_money);
    assert_eq!(m("gross_minor") - m("discounts_minor"), paid);

    // The funnel: every checkout run of the event, classified here from its row.
    let runs = json_of(
        app,
        &format!(
            "SELECT coalesce(json_agg(json_build_object('status', status, 'state', state)), '[]')
               FROM workflow_runs WHERE kind = 'checkout' AND state ->> 'event_id' = '{id}'"
        ),
    )
    .await;
    let runs = runs.as_array().unwrap();
    let outcomes: Vec<&str> = runs
        .iter()
        .map(|r| outcome(r["status"].as_str().unwrap(), &r["state"]))
        .collect();
    let n = |o: &str| outcomes.iter().filter(|x| **x == o).count() as i64;
    let started = runs.len() as i64;
    let expected_funnel = json!({
        "started": started,
        "completed": n("completed"),
        "in_progress": n("in_progress"),
        "sold_out": n("sold_out"),
        "payment_declined": n("payment_declined"),
        "expired_unpaid": n("expired_unpaid"),
        "cancelled": n("cancelled"),
        "other": n("other"),
        "conversion": ratio(n("completed"), started),
    });
    assert_eq!(a["funnel"], expected_funnel);
    // Coupons: uses and discount per code, unused ones too.
    let coupons = json_of(
        app,
        &format!(
            "SELECT coalesce(json_agg(json_build_object('coupon_id', c.id, 'code', c.code,
                 'uses', (SELECT count(*) FROM bookings b WHERE b.coupon_id = c.id),
                 'discount_minor', (SELECT coalesce(sum(discount_minor), 0) FROM bookings b WHERE b.coupon_id = c.id))
               ORDER BY lower(c.code)), '[]') FROM coupons c WHERE c.event_id = '{id}'"
        ),
    )
    .await;
    assert_eq!(a["coupons"], coupons);

    // Refunds by who asked.
    let refunds = json_of(
        app,
        &format!(
            "SELECT json_object_agg(who, json_build_object('count', n, 'amount_minor', minor))
               FROM (SELECT w.who, count(r.run_id) AS n, coalesce(sum(r.amount_minor), 0) AS minor
                       FROM unnest(ARRAY['buyer', 'organizer', 'admin', 'event_cancellation']) AS w(who)
                       LEFT JOIN (refunds r JOIN bookings b ON b.id = r.booking_id AND b.event_id = '{id}')
                         ON r.requested_by = w.who AND r.status = 'succeeded'
                      GROUP BY w.who) g"
        ),
    )
    .await;
    let group = |who: &str| refunds[who].clone();
    let sum = |k: &str| {
        ["buyer", "organizer", "admin", "event_cancellation"]
            .iter()
            .map(|w| refunds[*w][k].as_i64().unwrap())
            .sum::<i64>()
    };
    let expected_refunds = json!({
        "currency": "EUR",
        "count": sum("count"),
        "amount_minor": sum("amount_minor"),
        "by_buyer": group("buyer"),
        "by_organizer": group("organizer"),
        "by_admin": group("admin"),
        "by_event_cancellation": group("event_cancellation"),
    });
    assert_eq!(a["refunds"], expected_refunds);
    assert_eq!(sum("amount_minor"), m("refunds_minor"));

    // The waitlist, from its entries.
    let waitlist = json_of(
        app,
        &format!(
            "SELECT json_build_object('joined', count(*),
                 'waiting', count(*) FILTER (WHERE w.status = 'waiting'),
                 'offered', count(*) FILTER (WHERE w.offered_at IS NOT NULL),
                 'accepted', count(*) FILTER (WHERE w.status = 'accepted'),
                 'expired', count(*) FILTER (WHERE w.status = 'expired'),
                 'declined', count(*) FILTER (WHERE w.status = 'declined'),
                 'left', count(*) FILTER (WHERE w.status = 'left'),
                 'offers_sold', count(*) FILTER (WHERE w.status = 'accepted'
                     AND EXISTS (SELECT 1 FROM workflow_runs r WHERE r.id = w.checkout_run_id AND r.status = 'completed')),
                 'waiting_units', coalesce(sum(w.quantity) FILTER (WHERE w.status = 'waiting'), 0),
                 'waiting_minor', coalesce(sum(w.quantity * t.price_minor) FILTER (WHERE w.status = 'waiting'), 0))
               FROM waitlist_entries w JOIN ticket_types t ON t.id = w.ticket_type_id
              WHERE w.event_id = '{id}'"
        ),
    )
    .await;
    let w = |k: &str| waitlist[k].as_i64().unwrap();
    let expected_waitlist = json!({
        "joined": w("joined"), "waiting": w("waiting"), "offered": w("offered"),
        "accepted": w("accepted"), "expired": w("expired"), "declined": w("declined"),
        "left": w("left"), "offers_sold": w("offers_sold"),
        "offer_conversion": ratio(w("offers_sold"), w("offered")),
        "waiting_units": w("waiting_units"),
        "waiting_value": if w("joined") == 0 { json!([]) }
                         else { json!([{ "currency": "EUR", "minor": w("waiting_minor") }]) },
    });
    assert_eq!(a["waitlist"], expected_waitlist);

    // The hourly series, from every booking and refund.
    let series: Vec<RawBucket> = a["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| RawBucket {
            start: b["start"].as_str().unwrap().parse().unwrap(),
            orders: b["orders"].as_i64().unwrap(),
            tickets: b["tickets"].as_i64().unwrap(),
            revenue_minor: b["revenue_minor"].as_i64().unwrap(),
            refunds: b["refunds"].as_i64().unwrap(),
            refunds_minor: b["refunds_minor"].as_i64().unwrap(),
        })
        .collect();
    assert_eq!(series, raw_series(app, id).await);

    Raw {
        orders,
        paid,
        discounts: m("discounts_minor"),
        refunds: m("refunds_minor"),
        checked_in: totals["checked_in"].as_i64().unwrap(),
        outcomes: outcomes.iter().map(|o| (*o).to_owned()).collect(),
    }
}

/// What [`assert_equal_to_raw_tables`] computed from the raw tables.
pub struct Raw {
    pub orders: i64,
    pub paid: i64,
    pub discounts: i64,
    pub refunds: i64,
    pub checked_in: i64,
    /// Each checkout run's funnel outcome.
    pub outcomes: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_figure_equals_the_raw_tables_to_the_cent() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &TYPES, 15).await;
    execute(
        &app,
        &format!(
            "UPDATE events SET refundable_until_hours_before = 24 WHERE id = '{}'",
            event.event_id
        ),
    )
    .await;
    for (code, percent) in COUPONS {
        coupon(&app.db.url, event.event_id, code, percent, 100).await;
    }
    let mut rng = Rng::seeded(0x00A1_1A17_1C5E_ED01);
    let plans: Vec<Plan> = (0..BUYERS).map(|_| Plan::pick(&mut rng)).collect();
    let buyers = join_all((0..BUYERS).map(|_| app.create_user(&[Role::Participant]))).await;
    let world = World {
        app: &app,
        sandbox: &sandbox,
        organizer: &organizer,
        event: &event,
    };
    let ends = join_all(
        plans
            .iter()
            .zip(&buyers)
            .map(|(plan, buyer)| carry_out(&world, buyer, *plan)),
    )
    .await;
    wait_quiet(&app, Duration::from_secs(60)).await;
    let a = analytics(&app, &organizer, event.event_id, "?granularity=hour").await;
    let raw = assert_equal_to_raw_tables(&app, event.event_id, &a).await;
    let (orders, paid) = (raw.orders, raw.paid);
    let n = |o: &str| raw.outcomes.iter().filter(|x| *x == o).count() as i64;
    let started = raw.outcomes.len() as i64;
    // ... and what the buyers did.
    let planned = |f: fn(&Plan) -> bool| plans.iter().filter(|p| f(p)).count() as i64;
    assert_eq!(started, BUYERS as i64);
    assert_eq!(
        n("completed"),
        ends.iter().filter(|e| *e == "completed").count() as i64
    );
    assert_eq!(n("completed"), orders);
    assert_eq!(
        n("payment_declined"),
        planned(|p| matches!(p, Plan::Declined))
    );
    assert_eq!(n("expired_unpaid"), planned(|p| matches!(p, Plan::Expired)));
    assert_eq!(n("cancelled"), planned(|p| matches!(p, Plan::Cancelled)));
    assert!(n("sold_out") >= planned(|p| matches!(p, Plan::SoldOut)));
    assert_eq!(n("in_progress"), 0);

    // The mix really had every kind of figure in it.
    assert!(orders > 5 && raw.discounts > 0 && raw.refunds > 0, "{a}");
    assert!(raw.checked_in > 0, "{a}");
    assert!(
        a["ticket_types"][FREE]["tickets_issued"].as_i64().unwrap() > 0,
        "{a}"
    );

    // Admins' totals: the same figures (this is the only event).
    let (status, admin_view) = get(&app, &admin, "/v1/admin/analytics").await;
    assert_eq!(status, 200, "{admin_view}");
    assert_eq!(admin_view["events"], 1);
    assert_eq!(admin_view["totals"], a["totals"]);
    assert_eq!(admin_view["money"], json!([a["money"]]));
    assert_eq!(admin_view["funnel"], a["funnel"]);
    assert_eq!(admin_view["refunds"], json!([a["refunds"]]));
    assert_eq!(admin_view["waitlist"], a["waitlist"]);
    println!(
        "exact: {orders} orders, paid {paid}, discounts {}, refunds {}, funnel {}",
        raw.discounts, raw.refunds, a["funnel"]
    );
}
