//! Issue point 3: optimistic concurrency on events. Two (or more) PATCHes sent
//! at the same moment with the same `If-Match` version: exactly one wins, the
//! others get 412, and nothing is lost (the loser retries on the new version and
//! both changes end up in the event). Also the race-free guards on capacity.

use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::json;

use crate::catalog_fixtures::*;
use crate::harness::{TestApp, assert_problem, counts_moved_sql};

#[tokio::test]
async fn two_concurrent_patches_with_the_same_version_one_wins_one_gets_412() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let event = create_event(
        &app,
        &alice,
        json!({"title": "Original", "description": "Original"}),
    )
    .await;
    let e = id_of(&event);

    for round in 0..10_i64 {
        let seen = expect(
            send(
                &app,
                Method::GET,
                &format!("/v1/events/{e}"),
                Some(&alice),
                None,
            )
            .await,
            200,
        )
        .await;
        let version = seen["version"].as_i64().unwrap();
        assert_eq!(
            version,
            1 + 2 * round,
            "each round adds exactly two versions"
        );
        let title = format!("Title from round {round}");
        let description = format!("Description from round {round}");

        // Really concurrent: both requests are in flight together.
        let (a, b) = tokio::join!(
            patch_event(&app, &alice, e, version, json!({"title": title})),
            patch_event(
                &app,
                &alice,
                e,
                version,
                json!({"description": description})
            ),
        );
        let (a_status, b_status) = (a.status().as_u16(), b.status().as_u16());
        let mut statuses = [a_status, b_status];
        statuses.sort();
        assert_eq!(statuses, [200, 412], "round {round}: exactly one wins");
        let (winner, loser, loser_body) = if a_status == 200 {
            (a, b, json!({"description": description}))
        } else {
            (b, a, json!({"title": title}))
        };
        assert_eq!(winner.headers()["etag"], format!("\"{}\"", version + 1));
        let won = expect(winner, 200).await;
        assert_eq!(won["version"], version + 1);
        let refused = assert_problem(loser, 412, "version_mismatch").await;
        assert_eq!(refused["current_version"], version + 1);

        // The loser's change was not half-applied: the event is the winner's.
        let now = expect(
            send(
                &app,
                Method::GET,
                &format!("/v1/events/{e}"),
                Some(&alice),
                None,
            )
            .await,
            200,
        )
        .await;
        assert_eq!(now, won);

        // Nothing is lost: the loser re-reads and applies its change.
        let retried = expect(
            patch_event(&app, &alice, e, version + 1, loser_body).await,
            200,
        )
        .await;
        assert_eq!(retried["title"], title);
        assert_eq!(retried["description"], description);
        assert_eq!(retried["version"], version + 2);
    }
}

#[tokio::test]
async fn of_many_concurrent_patches_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let e = id_of(&create_event(&app, &alice, json!({})).await);

    let attempts = (0..8).map(|i| {
        let app = &app;
        let alice = &alice;
        async move { patch_event(app, alice, e, 1, json!({"title": format!("Writer {i}")})).await }
    });
    let responses = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for response in responses {
        match response.status().as_u16() {
            200 => winners.push(expect(response, 200).await),
            _ => {
                assert_problem(response, 412, "version_mismatch").await;
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    let now = get_event_as(&app, &alice, e).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["title"], winners[0]["title"]);
}

async fn get_event_as(
    app: &TestApp,
    user: &crate::harness::users::TestUser,
    e: uuid::Uuid,
) -> serde_json::Value {
    expect(
        send(
            app,
            Method::GET,
            &format!("/v1/events/{e}"),
            Some(user),
            None,
        )
        .await,
        200,
    )
    .await
}

#[tokio::test]
async fn if_match_is_required_and_must_be_current() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let e = id_of(&create_event(&app, &alice, json!({})).await);
    let path = format!("/v1/events/{e}");

    let r = send(
        &app,
        Method::PATCH,
        &path,
        Some(&alice),
        Some(json!({"title": "x"})),
    )
    .await;
    assert_problem(r, 428, "precondition_required").await;
    let send_if_match = |tag: &'static str, title: String| {
        app.client
            .patch(app.url(&path))
            .header("authorization", alice.bearer())
            .header("if-match", tag)
            .json(&json!({ "title": title }))
            .send()
    };
    // Malformed (RFC 9110: `*` alone, or quoted entity tags): 400.
    for bad in [
        "abc",
        "1",
        "-3",
        "1, 2",
        "\"1",
        "W/1",
        "*, \"1\"",
        "\"1\" \"2\"",
    ] {
        let r = send_if_match(bad, "x".into()).await.unwrap();
        assert_problem(r, 400, "invalid_if_match").await;
    }
    // Well-formed but naming another version (weak tags never match): 412.
    for other in ["\"0\"", "\"\"", "\"abc\"", "W/\"1\"", "\"2\", \"3\""] {
        let r = send_if_match(other, "x".into()).await.unwrap();
        let body = assert_problem(r, 412, "version_mismatch").await;
        assert_eq!(body["current_version"], 1, "{other}");
    }
    // The current version, alone or in a list, and `*`, match.
    for (i, tag) in ["\"1\"", "\"7\", \"2\"", "*"].into_iter().enumerate() {
        let r = send_if_match(tag, format!("t{i}")).await.unwrap();
        assert_eq!(expect(r, 200).await["version"], i as i64 + 2, "{tag}");
    }
    let r = patch_event(&app, &alice, e, 1, json!({"title": "stale"})).await;
    let body = assert_problem(r, 412, "version_mismatch").await;
    assert_eq!(body["current_version"], 4);
    // Publishing and cancelling move the version too, so stale edits can't follow them.
    create_ticket_type(&app, &alice, e, json!({})).await;
    publish(&app, &alice, e).await;
    assert_problem(
        patch_event(&app, &alice, e, 4, json!({"title": "x"})).await,
        412,
        "version_mismatch",
    )
    .await;
}

#[tokio::test]
async fn capacity_never_drops_below_sold_and_held_even_under_concurrent_holds() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let (event, ticket_type) = published_event(&app, &alice, json!({})).await;
    let (e, tt) = (id_of(&event), id_of(&ticket_type));
    let path = format!("/v1/events/{e}/ticket-types/{tt}");

    let mut conn = app.raw_conn().await;
    diesel::sql_query(counts_moved_sql(tt, 30, 12))
        .execute(&mut conn)
        .await
        .unwrap();
    let r = send(
        &app,
        Method::PATCH,
        &path,
        Some(&alice),
        Some(json!({"capacity": 41, "name": "Renamed"})),
    )
    .await;
    let body = assert_problem(r, 409, "capacity_below_committed").await;
    assert_eq!(
        (
            body["sold"].as_i64(),
            body["held"].as_i64(),
            body["minimum"].as_i64()
        ),
        (Some(30), Some(12), Some(42))
    );
    // Refused as a whole: the name did not change either.
    assert_eq!(
        get_json(&app, &format!("/v1/events/{e}")).await["ticket_types"][0]["name"],
        "General"
    );
    let ok = expect(
        send(
            &app,
            Method::PATCH,
            &path,
            Some(&alice),
            Some(json!({"capacity": 42})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (ok["capacity"].as_i64(), ok["available"].as_i64()),
        (Some(42), Some(0))
    );

    // Holds (as the checkout takes them, DESIGN.md §5) racing capacity cuts: whatever
    // interleaving happens, the row never holds more than its capacity.
    diesel::sql_query(format!(
        "UPDATE ticket_types SET capacity = 100 WHERE id = '{tt}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(counts_moved_sql(tt, -30, -12))
        .execute(&mut conn)
        .await
        .unwrap();
    let holds = async {
        let mut conn = app.raw_conn().await;
        let mut taken = 0;
        for _ in 0..60 {
            taken += diesel::sql_query(format!(
                "UPDATE ticket_type_rows SET taken = taken + 1 WHERE id = '{tt}' AND capacity - taken >= 1"
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        taken
    };
    let cuts = async {
        let mut refused = 0;
        for capacity in (40..100).rev() {
            let r = send(
                &app,
                Method::PATCH,
                &path,
                Some(&alice),
                Some(json!({"capacity": capacity})),
            )
            .await;
            match r.status().as_u16() {
                200 => {}
                _ => {
                    assert_problem(r, 409, "capacity_below_committed").await;
                    refused += 1;
                }
            }
        }
        refused
    };
    let (taken, _refused) = tokio::join!(holds, cuts);
    let now = expect(
        send(
            &app,
            Method::GET,
            &format!("/v1/events/{e}"),
            Some(&alice),
            None,
        )
        .await,
        200,
    )
    .await;
    let tt_now = &now["ticket_types"][0];
    assert_eq!(tt_now["held"].as_i64(), Some(taken as i64));
    assert!(
        tt_now["held"].as_i64() <= tt_now["capacity"].as_i64(),
        "{tt_now}"
    );
    assert!(tt_now["available"].as_i64().unwrap() >= 0, "{tt_now}");
}
