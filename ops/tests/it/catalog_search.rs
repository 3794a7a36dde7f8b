//! Issue point 4: the public listing. Title matches rank first; filters combine;
//! keyset pages over 1,000 events return each exactly once even while events
//! are inserted between page requests.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, SecondsFormat, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog_fixtures::*;
use crate::harness::{TestApp, assert_problem};

/// `/v1/events` with `query` URL-encoded.
fn listing_url(app: &TestApp, query: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(&app.url("/v1/events"), query).unwrap()
}

async fn list(app: &TestApp, query: &[(&str, String)]) -> Value {
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app
        .client
        .get(listing_url(app, &pairs))
        .send()
        .await
        .unwrap();
    expect(r, 200).await
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn title_matches_rank_first() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let hamburg = id_of(&create_venue(&app, &alice, "Hamburg").await);
    let cellar = expect(
        send(
            &app,
            Method::POST,
            "/v1/venues",
            Some(&alice),
            Some(json!({"name": "Jazz Cellar", "address": "Kellerweg 2", "city": "Köln", "country": "DE", "timezone": "Europe/Berlin"})),
        )
        .await,
        201,
    )
    .await;
    // Created in the reverse of the expected order, so insertion order can't explain the result.
    for (title, description, category, venue) in [
        ("Rock night", "Guitars until late", "music", None),
        (
            "Late session",
            "Improvised music downstairs",
            "music",
            Some(id_of(&cellar)),
        ),
        (
            "Open air brunch",
            "Brunch with a jazz trio playing",
            "food",
            Some(hamburg),
        ),
        (
            "Summer Jazz Festival",
            "Three stages in the park",
            "music",
            Some(hamburg),
        ),
    ] {
        let mut body = json!({"title": title, "description": description, "category": category});
        if let Some(venue) = venue {
            body = merged(body, json!({"venue_id": venue, "online": false}));
        }
        published_event(&app, &alice, body).await;
    }

    let found = list(&app, &[("q", "jazz".into())]).await;
    assert_eq!(
        titles(&found),
        ["Summer Jazz Festival", "Open air brunch", "Late session"],
        "title match, then description, then venue name; no non-match"
    );
    // Stemming and web-search syntax.
    assert_eq!(
        titles(&list(&app, &[("q", "festivals".into())]).await),
        ["Summer Jazz Festival"]
    );
    // Negation excludes (Postgres ranks every match of a negated query alike).
    let without_brunch: HashSet<String> =
        titles(&list(&app, &[("q", "jazz -brunch".into())]).await)
            .into_iter()
            .collect();
    assert_eq!(
        without_brunch,
        HashSet::from(["Summer Jazz Festival".to_owned(), "Late session".to_owned()])
    );
    assert_eq!(
        titles(&list(&app, &[("q", "\"jazz trio\"".into())]).await),
        ["Open air brunch"]
    );
    // The venue's city is searchable.
    let in_hamburg = titles(&list(&app, &[("q", "hamburg".into())]).await);
    assert_eq!(
        in_hamburg.iter().collect::<HashSet<_>>(),
        HashSet::from([
            &"Summer Jazz Festival".to_owned(),
            &"Open air brunch".to_owned()
        ])
    );
    // Sorting by start instead of relevance is allowed with q; relevance needs q.
    assert_eq!(
        list(&app, &[("q", "jazz".into()), ("sort", "starts_at".into())]).await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let r = app
        .client
        .get(app.url("/v1/events?sort=relevance"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_problem(r, 400, "invalid_query").await["field"],
        "sort"
    );
}

#[tokio::test]
async fn filters_combine() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let berlin = id_of(&create_venue(&app, &alice, "Berlin").await);
    let hamburg = id_of(&create_venue(&app, &alice, "Hamburg").await);

    let event = |title: &str, category: &str, venue: Uuid, days: i64| {
        json!({
            "title": title, "category": category, "venue_id": venue, "online": false,
            "starts_at": in_days(days), "ends_at": in_days(days) + Duration::hours(2),
        })
    };
    let mut ids = HashMap::new();
    for (title, category, venue, days, price) in [
        ("match", "music", berlin, 10, 2000),
        ("too expensive", "music", berlin, 10, 9000),
        ("other city", "music", hamburg, 10, 2000),
        ("other category", "comedy", berlin, 10, 2000),
        ("sold out", "music", berlin, 10, 2000),
        ("too late", "music", berlin, 40, 2000),
    ] {
        let e = id_of(&create_event(&app, &alice, event(title, category, venue, days)).await);
        create_ticket_type(
            &app,
            &alice,
            e,
            json!({"price_minor": price, "capacity": 10}),
        )
        .await;
        publish(&app, &alice, e).await;
        ids.insert(title, e);
    }
    // Never listed: a draft, and an event that has ended.
    create_event(&app, &alice, event("draft", "music", berlin, 10)).await;
    let mut conn = app.raw_conn().await;
    let past = published_event(&app, &alice, event("ended", "music", berlin, 10))
        .await
        .0;
    diesel::sql_query(format!(
        "UPDATE events SET starts_at = now() - interval '3 hours', ends_at = now() - interval '1 hour' WHERE id = '{}'",
        id_of(&past)
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(format!(
        "WITH t AS (UPDATE ticket_type_rows SET taken = 10 WHERE event_id = '{}' RETURNING id)
         SELECT ticket_type_counted(id, 7, 0, 0, 0, 0) FROM t",
        ids["sold out"]
    ))
    .execute(&mut conn)
    .await
    .unwrap();

    let at =
        |days: i64| (Utc::now() + Duration::days(days)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let all_filters = vec![
        ("category", "music".to_owned()),
        ("city", "BERLIN".to_owned()),
        ("price_max", "2500".to_owned()),
        ("available", "true".to_owned()),
        ("from", at(5)),
        ("to", at(20)),
    ];
    let sorted = |page: &Value| {
        let mut t = titles(page);
        t.sort();
        t
    };
    assert_eq!(sorted(&list(&app, &all_filters).await), ["match"]);
    // Dropping one filter at a time lets exactly the event it kept out back in.
    for (dropped, also) in [
        ("category", "other category"),
        ("city", "other city"),
        ("price_max", "too expensive"),
        ("available", "sold out"),
        ("to", "too late"),
    ] {
        let query: Vec<_> = all_filters
            .iter()
            .filter(|(k, _)| *k != dropped)
            .cloned()
            .collect();
        let mut expected = vec!["match", also];
        expected.sort();
        assert_eq!(
            sorted(&list(&app, &query).await),
            expected,
            "without {dropped}"
        );
    }
    let everything = sorted(&list(&app, &[]).await);
    assert_eq!(
        everything.len(),
        6,
        "published and not ended: {everything:?}"
    );
    assert!(!everything.contains(&"draft".to_owned()) && !everything.contains(&"ended".to_owned()));
    // The listing shows what a browser needs.
    let page = list(&app, &all_filters).await;
    let item = &page["items"][0];
    assert_eq!(
        (item["min_price_minor"].as_i64(), item["available"].as_i64()),
        (Some(2000), Some(10))
    );
    assert_eq!(
        (item["currency"].as_str(), item["venue"]["city"].as_str()),
        (Some("EUR"), Some("Berlin"))
    );
}

/// 1,000 published events (four per start time, so ids break ties) with a
/// ticket type each, in one statement; returns their ids.
async fn insert_many(conn: &mut AsyncPgConnection, organizer: Uuid, n: i32) -> HashSet<Uuid> {
    diesel::sql_query(format!(
        "WITH inserted AS (
             INSERT INTO events (id, organizer_id, title, description, category, currency, online,
                                 starts_at, ends_at, status, published_at)
             SELECT gen_random_uuid(), '{organizer}', 'Concert number ' || i,
                    CASE WHEN i % 3 = 0 THEN 'a concert of concerts' WHEN i % 3 = 1 THEN 'music' ELSE 'concert' END,
                    'music', 'EUR', true,
                    date_trunc('hour', now()) + make_interval(hours => 24 + i / 4),
                    date_trunc('hour', now()) + make_interval(hours => 27 + i / 4),
                    'published', now()
             FROM generate_series(1, {n}) AS i
             RETURNING id)
         INSERT INTO ticket_types (id, event_id, name, price_minor, currency, capacity)
         SELECT gen_random_uuid(), id, 'General', 1000, 'EUR', 50 FROM inserted"
    ))
    .execute(conn)
    .await
    .expect("inserting events");
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    let rows: Vec<Id> = diesel::sql_query(format!(
        "SELECT id FROM events WHERE organizer_id = '{organizer}'"
    ))
    .load(conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

/// Events that start before, among and after the ones being paged, including at
/// the same instant as the page boundary.
async fn insert_disturbance(
    conn: &mut AsyncPgConnection,
    organizer: Uuid,
    boundary: &str,
    round: usize,
) {
    diesel::sql_query(format!(
        "WITH inserted AS (
             INSERT INTO events (id, organizer_id, title, category, currency, online, starts_at, ends_at, status, published_at)
             SELECT gen_random_uuid(), '{organizer}', 'Late concert ' || {round} || '-' || i, 'music', 'EUR', true,
                    s, s + interval '2 hours', 'published', now()
             FROM generate_series(1, 25) AS i,
                  LATERAL (SELECT CASE i % 3 WHEN 0 THEN now() + interval '1 minute'
                                             WHEN 1 THEN '{boundary}'::timestamptz
                                             ELSE now() + interval '5000 hours' END AS s) starts
             RETURNING id)
         INSERT INTO ticket_types (id, event_id, name, price_minor, currency, capacity)
         SELECT gen_random_uuid(), id, 'General', 1000, 'EUR', 50 FROM inserted"
    ))
    .execute(conn)
    .await
    .expect("inserting more events");
}

async fn page_through(
    app: &TestApp,
    conn: &mut AsyncPgConnection,
    organizer: Uuid,
    base: &[(&str, String)],
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0.. {
        let mut query = base.to_vec();
        query.push(("limit", "100".into()));
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = list(app, &query).await;
        let page_items = page["items"].as_array().unwrap().clone();
        assert!(page_items.len() <= 100);
        items.extend(page_items);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        // Rows arrive between page requests, some of them right at the boundary.
        let boundary = items.last().unwrap()["starts_at"]
            .as_str()
            .unwrap()
            .to_owned();
        insert_disturbance(conn, organizer, &boundary, round).await;
        assert!(round < 100, "paging does not end");
    }
    items
}

fn assert_each_once(items: &[Value], originals: &HashSet<Uuid>) {
    let ids: Vec<Uuid> = items.iter().map(id_of).collect();
    let distinct: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "an event came twice");
    let missing = originals.iter().filter(|id| !distinct.contains(id)).count();
    assert_eq!(missing, 0, "{missing} of the original events never came");
}

#[tokio::test]
async fn paging_through_a_thousand_events_returns_each_exactly_once_while_more_arrive() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let mut conn = app.raw_conn().await;
    let originals = insert_many(&mut conn, alice.id, 1000).await;
    assert_eq!(originals.len(), 1000);

    // By start time.
    let items = page_through(&app, &mut conn, alice.id, &[]).await;
    assert_each_once(&items, &originals);
    let keys: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            (
                i["starts_at"].as_str().unwrap().to_owned(),
                i["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let parsed: Vec<(chrono::DateTime<Utc>, Uuid)> = keys
        .iter()
        .map(|(at, id)| (at.parse().unwrap(), id.parse().unwrap()))
        .collect();
    assert!(
        parsed.windows(2).all(|w| w[0] < w[1]),
        "pages follow (starts_at, id) order"
    );

    // By relevance: ranks tie in large groups, and the id breaks the ties.
    let items = page_through(&app, &mut conn, alice.id, &[("q", "concert".into())]).await;
    assert_each_once(&items, &originals);
}

#[tokio::test]
async fn a_cursor_only_works_with_its_own_query() {
    let app = TestApp::spawn().await;
    let alice = organizer(&app).await;
    let mut conn = app.raw_conn().await;
    insert_many(&mut conn, alice.id, 30).await;

    let page = list(&app, &[("q", "concert".into()), ("limit", "10".into())]).await;
    let cursor = page["next_cursor"].as_str().expect("more pages").to_owned();
    let r = app
        .client
        .get(listing_url(
            &app,
            &[("q", "music"), ("limit", "10"), ("cursor", &cursor)],
        ))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_cursor").await;
    let r = app
        .client
        .get(listing_url(&app, &[("limit", "10"), ("cursor", &cursor)]))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_cursor").await;
    let next = list(
        &app,
        &[
            ("q", "concert".into()),
            ("limit", "10".into()),
            ("cursor", cursor),
        ],
    )
    .await;
    assert_eq!(next["items"].as_array().unwrap().len(), 10);
}
