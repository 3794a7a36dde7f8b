//! The operator's tools: `boxoffice runs` (the real binary) and `/v1/ops`
//! (admins only), each action audited.

use std::time::Duration;

use boxoffice_models::users::Role;
use serde_json::Value;

use crate::checkout_support::{count, event_on_sale, order, start, wait_for};
use crate::harness::TestApp;
use crate::system::poison::{boxoffice, wait_status};

/// A paid checkout of 2 seats (of 10) waiting for its payment.
pub(crate) async fn waiting_paid_run(
    app: &TestApp,
    key: &str,
) -> (
    crate::harness::users::TestUser,
    String,
    crate::checkout_support::SaleEvent,
) {
    let organizer = app.create_user(&[Role::Organizer]).await;
    let buyer = app.create_user(&[Role::Participant]).await;
    let event = event_on_sale(&app.db.url, organizer.id, &[(2500, 10)], 15).await;
    let r = start(
        &app.base_url,
        &app.client,
        &buyer,
        order(&event, 0, 2),
        Some(key),
    )
    .await;
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = wait_for(app, &buyer, &run_id, Duration::from_secs(20), |v| {
        v["status"] == "waiting"
    })
    .await;
    assert!(view["payment"]["client_secret"].is_string(), "{view}");
    (buyer, run_id, event)
}

#[tokio::test]
async fn runs_list_show_and_cancel_through_the_cli_release_the_seats() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let (_buyer, run_id, event) = waiting_paid_run(&app, "ops-cli-1").await;

    let listed: Vec<Value> = serde_json::from_str(
        &boxoffice(
            &app,
            &[
                "runs", "list", "--status", "waiting", "--kind", "checkout", "--json",
            ],
        )
        .await,
    )
    .unwrap();
    assert!(
        listed.iter().any(|r| r["id"] == run_id.as_str()),
        "{listed:?}"
    );
    let shown: Value =
        serde_json::from_str(&boxoffice(&app, &["runs", "show", &run_id]).await).unwrap();
    assert_eq!(shown["step"], "awaiting_payment");
    assert!(
        shown["steps"].as_array().unwrap().len() >= 3,
        "full history: {shown}"
    );

    let outcome: Value =
        serde_json::from_str(&boxoffice(&app, &["runs", "cancel", &run_id]).await).unwrap();
    assert_eq!(outcome["action"], "run.cancel", "{outcome}");
    wait_status(&app, &run_id, "compensated", Duration::from_secs(20)).await;
    assert_eq!(
        crate::checkout_support::counters(&app.db.url, event.ticket_types[0]).await,
        (10, 0, 0)
    );
    let audited = count(
        &app.db.url,
        &format!("SELECT 1 FROM audit_log WHERE action = 'run.cancel' AND target_id = '{run_id}'"),
    )
    .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn ops_api_is_for_admins_and_audits_actions_with_the_request_id() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let admin = app.create_user(&[Role::Admin]).await;
    let (buyer, run_id, _event) = waiting_paid_run(&app, "ops-api-1").await;

    for path in [
        "/v1/ops/runs",
        "/v1/ops/dlq",
        "/v1/ops/queues",
        &format!("/v1/ops/runs/{run_id}"),
    ] {
        let r = app
            .client
            .get(app.url(path))
            .header("authorization", buyer.bearer())
            .send()
            .await
            .unwrap();
        crate::harness::assert_problem(r, 403, "forbidden").await;
    }
    let r = app
        .client
        .post(app.url(&format!("/v1/ops/runs/{run_id}/cancel")))
        .header("authorization", buyer.bearer())
        .send()
        .await
        .unwrap();
    crate::harness::assert_problem(r, 403, "forbidden").await;

    let get = |path: String| {
        let req = app
            .client
            .get(app.url(&path))
            .header("authorization", admin.bearer());
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let runs = get("/v1/ops/runs?status=waiting".into()).await;
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == run_id.as_str()),
        "{runs}"
    );
    let checkouts = get("/v1/ops/runs?kind=checkout&status=waiting".into()).await;
    assert!(
        checkouts
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == run_id.as_str()),
        "{checkouts}"
    );
    // An unknown status or kind is refused, a NUL in it too (PostgreSQL's
    // text cannot hold one: it once answered 500).
    for query in [
        "status=bogus",
        "kind=bogus",
        "kind=%00%C2%BF&status=completed",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/v1/ops/runs?{query}")))
            .header("authorization", admin.bearer())
            .send()
            .await
            .unwrap();
        crate::harness::assert_problem(r, 400, "invalid_request").await;
    }
    let shown = get(format!("/v1/ops/runs/{run_id}")).await;
    assert_eq!(shown["status"], "waiting");
    let queues = get("/v1/ops/queues".into()).await;
    let names: Vec<&str> = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"advance_run") && names.contains(&"run_effect"),
        "{queues}"
    );
    assert!(queues["queues"][0]["done_total"].is_u64(), "{queues}");
    assert_eq!(get("/v1/ops/dlq".into()).await, serde_json::json!([]));

    // Retrying a run that has not failed is refused; cancelling it works.
    let r = app
        .client
        .post(app.url(&format!("/v1/ops/runs/{run_id}/retry")))
        .header("authorization", admin.bearer())
        .send()
        .await
        .unwrap();
    crate::harness::assert_problem(r, 409, "not_applicable").await;
    let r = app
        .client
        .post(app.url(&format!("/v1/ops/runs/{run_id}/cancel")))
        .header("authorization", admin.bearer())
        .header("x-request-id", "ops-test-cancel-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_status(&app, &run_id, "compensated", Duration::from_secs(20)).await;
    let audited = count(
        &app.db.url,
        &format!(
            "SELECT 1 FROM audit_log WHERE action = 'run.cancel' AND target_id = '{run_id}'
               AND actor_id = '{}' AND request_id = 'ops-test-cancel-1' AND details->>'via' = 'api'",
            admin.id
        ),
    )
    .await;
    assert_eq!(audited, 1);

    // The OpenAPI document lists the operations under their tag.
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/ops/dlq",
        "/v1/ops/dlq/{id}/retry",
        "/v1/ops/dlq/{id}/discard",
        "/v1/ops/runs/{id}/cancel",
        "/v1/ops/queues",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        doc["paths"]["/v1/ops/queues"]["get"]["tags"][0],
        "operations"
    );
}
