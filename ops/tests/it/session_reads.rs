//! Sessions an API process has not kept in memory yet are read together:
//! the requests that come while a read waits are answered by one query, and
//! each request gets its own session's answer.

use std::time::Duration;

use futures::future::join_all;

use crate::harness::TestApp;
use crate::harness::users::TestUser;

const BUYERS: usize = 24;

/// `session_read_batch_size`'s count and sum in the process's metrics: how
/// many batches were read, and how many sessions in them (none yet: 0, 0).
async fn batches_and_reads(app: &TestApp) -> (u64, u64) {
    let text = app.metrics().await;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    (
        value("session_read_batch_size_count"),
        value("session_read_batch_size_sum"),
    )
}

#[tokio::test]
async fn sessions_asked_for_at_once_are_read_in_one_query_and_each_gets_its_own() {
    let first = TestApp::spawn().await;
    let mut buyers: Vec<TestUser> = Vec::with_capacity(BUYERS);
    for _ in 0..BUYERS {
        buyers.push(first.create_user(&[]).await);
    }
    // One buyer has logged out: its token is signed, its session revoked.
    let left = &buyers[0];
    let r = first
        .client
        .post(first.url("/v1/auth/logout"))
        .header("authorization", left.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // A second process of the same system has kept none of these sessions.
    let second = TestApp::builder().replica_of(&first).spawn().await;
    // Its pool's connections taken, so that the requests below gather while
    // the first read waits for one, as they do in a flood.
    let taken = second.take_every_connection().await;
    let (batches_before, reads_before) = batches_and_reads(&second).await;

    // Every buyer asks twice at once (a page and its poll).
    let asking = buyers.iter().flat_map(|buyer| {
        let second = &second;
        (0..2).map(move |_| async move {
            let r = second
                .client
                .get(second.url("/v1/me"))
                .header("authorization", buyer.bearer())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (buyer.id, status, body)
        })
    });
    let answers = {
        let all = join_all(asking);
        tokio::pin!(all);
        // Let every request reach the reader, then give the pool back.
        tokio::select! {
            answers = &mut all => panic!("answered while the pool was taken: {answers:?}"),
            () = tokio::time::sleep(Duration::from_millis(1500)) => {}
        }
        drop(taken);
        all.await
    };

    for (id, status, body) in &answers {
        if *id == left.id {
            assert_eq!(*status, 401, "{body}");
            assert_eq!(body["code"], "unauthorized", "{body}");
        } else {
            assert_eq!(*status, 200, "{body}");
            assert_eq!(body["id"], id.to_string(), "{body}");
        }
    }
    let (batches_after, reads_after) = batches_and_reads(&second).await;
    let reads = reads_after - reads_before;
    let batches = batches_after - batches_before;
    assert_eq!(reads, 2 * BUYERS as u64, "every request read its session");
    assert!(
        batches <= 3,
        "{reads} sessions were read in {batches} queries, not gathered"
    );
}
