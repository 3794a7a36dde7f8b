//! What one participant may hold of an event: one open checkout at a time (also
//! under simultaneous starts), and the event's `max_tickets_per_participant`
//! over confirmed bookings and open checkouts.

use std::time::Duration;

use boxoffice_models::users::Role;
use futures::future::join_all;
use serde_json::{Value, json};

use super::fixtures::{
    cancel, count, event_on_sale, is_finished, order, start, started_run, wait_for,
    waiting_checkout,
};
use crate::harness::{TestApp, assert_problem};

#[tokio::test]
async fn a_second_open_checkout_of_the_same_event_is_refused_until_the_first_ends() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 10)], 15).await;
    let other_event = event_on_sale(&app.db.url, organizer.id, &[(4500, 10)], 15).await;

    let (first, _) = waiting_checkout(&app, &buyer, order(&event, 0, 2), "hoard-1").await;
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 2),
        Some("hoard-2"),
    )
    .await;
    let problem = assert_problem(r, 409, "checkout_in_progress").await;
    assert_eq!(problem["run_id"], first.as_str(), "{problem}");
    assert_eq!(
        problem["status_url"],
        format!("/v1/workflows/{first}"),
        "{problem}"
    );
    // A retry of the first start still answers with its run.
    let again = started_run(
        start(
            &app.base_url,
            &app.client,
            &buyer,
            order(&event, 0, 2),
            Some("hoard-1"),
        )
        .await,
    )
    .await;
    assert_eq!(again, first);
    // Another event is another matter.
    started_run(
        start(
            &app.base_url,
            &app.client,
            &buyer,
            order(&other_event, 0, 1),
            Some("hoard-3"),
        )
        .await,
    )
    .await;

    // Once the first is cancelled, the second key starts a run.
    assert_eq!(cancel(&app, &buyer, &first).await.status(), 202);
    let ended = wait_for(&app, &buyer, &first, Duration::from_secs(20), is_finished).await;
    assert_eq!(ended["status"], "compensated", "{ended}");
    let second = started_run(
        start(
            &app.base_url,
            &app.client,
            &buyer,
            order(&event, 0, 2),
            Some("hoard-2"),
        )
        .await,
    )
    .await;
    assert_ne!(second, first);
}

/// Twenty starts of one participant for one event, each with its own key, sent
/// at once, five times over: one run each time, the others are told its id.
#[tokio::test]
async fn simultaneous_starts_with_different_keys_make_one_run() {
    const STARTS: usize = 20;
    let app = TestApp::spawn().await;
    // No workers: the runs stay open, as a hoarder's would.
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    for round in 0..5 {
        let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 100)], 15).await;
        let answers = join_all((0..STARTS).map(|i| {
            let key = format!("race-{round}-{i}");
            let body = order(&event, 0, 1);
            let (app, buyer) = (&app, &buyer);
            async move {
                let r = start(&app.base_url, &app.client, buyer, body, Some(&key)).await;
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            }
        }))
        .await;
        let created: Vec<&Value> = answers
            .iter()
            .filter(|(s, _)| *s == 202)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(created.len(), 1, "round {round}: {answers:?}");
        let run_id = created[0]["run_id"].as_str().unwrap();
        for (status, body) in answers.iter().filter(|(s, _)| *s != 202) {
            assert_eq!(*status, 409, "{body}");
            assert_eq!(body["code"], "checkout_in_progress", "{body}");
            assert_eq!(body["run_id"], run_id, "{body}");
        }
        assert_eq!(
            count(
                &app.db.url,
                &format!(
                    "SELECT 1 FROM workflow_runs WHERE owner_id = '{}' AND state ->> 'event_id' = '{}'",
                    buyer.id, event.event_id
                )
            )
            .await,
            1,
            "round {round}"
        );
    }
}

async fn patch_event(
    app: &TestApp,
    organizer: &crate::harness::users::TestUser,
    event_id: &str,
    body: Value,
) -> reqwest::Response {
    let current: Value = app
        .client
        .get(app.url(&format!("/v1/events/{event_id}")))
        .header("authorization", organizer.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    app.client
        .patch(app.url(&format!("/v1/events/{event_id}")))
        .header("authorization", organizer.bearer())
        .header("if-match", format!("\"{}\"", current["version"]))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn max_tickets_per_participant_counts_confirmed_bookings_and_open_checkouts() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let neighbour = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(4500, 20)], 15).await;
    let event_id = event.event_id.to_string();

    // Set when the event is created…
    let in_days = |d: i64| (chrono::Utc::now() + chrono::Duration::days(d)).to_rfc3339();
    let r = app
        .client
        .post(app.url("/v1/events"))
        .header("authorization", organizer.bearer())
        .json(
            &json!({"title": "Limited", "category": "music", "online": true,
            "starts_at": in_days(3), "ends_at": in_days(4), "max_tickets_per_participant": 6}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["max_tickets_per_participant"], 6, "{created}");
    // …or later; the event shows it; out of range is refused.
    let r = patch_event(
        &app,
        &organizer,
        &event_id,
        json!({"max_tickets_per_participant": 0}),
    )
    .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(problem["field"], "max_tickets_per_participant", "{problem}");
    let r = patch_event(
        &app,
        &organizer,
        &event_id,
        json!({"max_tickets_per_participant": 4}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["max_tickets_per_participant"], 4, "{shown}");

    // Two tickets bought.
    let (paid_run, intent) = waiting_checkout(&app, &buyer, order(&event, 0, 2), "limit-1").await;
    sandbox.pay(&intent).await;
    let done = wait_for(
        &app,
        &buyer,
        &paid_run,
        Duration::from_secs(20),
        is_finished,
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    // Three would make five.
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 3),
        Some("limit-2"),
    )
    .await;
    let problem = assert_problem(r, 409, "ticket_limit_reached").await;
    assert_eq!(problem["tickets_already"], 2, "{problem}");
    assert_eq!(problem["max_tickets_per_participant"], 4, "{problem}");
    // One more is within the limit, and stays open.
    let (_open, _) = waiting_checkout(&app, &buyer, order(&event, 0, 1), "limit-3").await;
    // Bought and held together: 3; two more would make five.
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 2),
        Some("limit-4"),
    )
    .await;
    let problem = assert_problem(r, 409, "ticket_limit_reached").await;
    assert_eq!(problem["tickets_already"], 3, "{problem}");
    // One more would fit the limit, but the open checkout comes first.
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 1),
        Some("limit-5"),
    )
    .await;
    assert_problem(r, 409, "checkout_in_progress").await;
    // The limit is per participant.
    waiting_checkout(&app, &neighbour, order(&event, 0, 4), "limit-6").await;

    // Lifting it lets the participant buy again (after the open checkout).
    let r = patch_event(
        &app,
        &organizer,
        &event_id,
        json!({"max_tickets_per_participant": null}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let shown: Value = r.json().await.unwrap();
    assert!(shown["max_tickets_per_participant"].is_null(), "{shown}");
}
