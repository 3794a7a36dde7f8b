//! The audit reads a snapshot: it neither waits for a writer's locks nor sees
//! what a writer has not committed.

use std::time::Duration;

use boxoffice_models::ledger_audit;
use boxoffice_models::users::Role;
use diesel_async::SimpleAsyncConnection;

use crate::checkout_support::event_on_sale;
use crate::harness::{TestApp, counts_moved_sql};

#[tokio::test]
async fn the_audit_does_not_wait_for_a_writer_nor_see_its_uncommitted_change() {
    let app = TestApp::spawn().await;
    let organizer = app.create_user(&[Role::Organizer]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(1000, 5)], 15).await;
    let ticket_type = event.ticket_types[0];

    // A writer holds the ticket type's row lock with a change not committed
    // (a `sold` no ticket accounts for).
    let mut writer = app.raw_conn().await;
    writer
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM ticket_type_rows WHERE id = '{ticket_type}' FOR UPDATE;
             {}",
            counts_moved_sql(ticket_type, 1, 0)
        ))
        .await
        .unwrap();
    let mut auditor = app.raw_conn().await;
    let seen = tokio::time::timeout(
        Duration::from_secs(5),
        ledger_audit::audit(&mut auditor, Some(event.event_id)),
    )
    .await
    .expect("the audit did not wait for the writer's lock")
    .unwrap();
    assert!(
        seen.is_empty(),
        "an uncommitted change is not in the snapshot: {seen:?}"
    );

    writer.batch_execute("COMMIT").await.unwrap();
    let seen = ledger_audit::audit(&mut auditor, Some(event.event_id))
        .await
        .unwrap();
    let named: Vec<(&str, String)> = seen
        .iter()
        .map(|v| (v.invariant.as_str(), v.row_id.clone()))
        .collect();
    assert_eq!(named, vec![("ticket_type_sold", ticket_type.to_string())]);
}
