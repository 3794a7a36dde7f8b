//! The audit's two surfaces on healthy books and then on planted faults:
//! `boxoffice audit` (exit status, report, `--json`, `--provider` against the
//! sandbox over HTTP) and `GET /v1/ops/audit` (admins only).

use std::process::Output;
use std::time::Duration;

use boxoffice_models::users::Role;
use diesel_async::SimpleAsyncConnection;
use serde_json::Value;

use super::books;
use crate::harness::processes::BOXOFFICE;
use crate::harness::sandbox::TestSandbox;
use crate::harness::{TEST_STRIPE_KEY, TestApp, assert_problem};

/// `boxoffice audit <args>` against the app's database and the sandbox.
async fn audit_cli(app: &TestApp, sandbox: &TestSandbox, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(BOXOFFICE)
        .arg("audit")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.db.url)
        .env("BOXOFFICE_STRIPE_API_BASE", &sandbox.base_url)
        .env("BOXOFFICE_STRIPE_SECRET_KEY", TEST_STRIPE_KEY)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("boxoffice audit finished within 60 s")
        .expect("running boxoffice audit")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn named(report: &Value) -> Vec<(String, String)> {
    report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["invariant"].as_str().unwrap().to_owned(),
                v["row_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn route(app: &TestApp, bearer: &str, query: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/v1/ops/audit{query}")))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_cli_and_the_admin_route_report_clean_books_then_each_planted_fault() {
    let app = TestApp::spawn().await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let books = books::build(&app, &sandbox).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let event = books.event.event_id.to_string();

    // Healthy: exit 0, a clean report, against the books and the provider.
    let out = audit_cli(&app, &sandbox, &["--event", &event]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("clean: no violation"), "{stdout}");
    println!("{stdout}");
    let out = audit_cli(&app, &sandbox, &["--json", "--provider"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_of(&out);
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["violations"], Value::Array(vec![]));

    let r = route(&app, &admin.bearer(), &format!("?event_id={event}")).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "clean": true, "violations": [] }));
    let r = route(&app, &books.buyer.bearer(), "").await;
    assert_problem(r, 403, "forbidden").await;
    let r = route(&app, &admin.bearer(), "?event_id=not-a-uuid").await;
    assert_problem(r, 400, "invalid_query").await;

    // The sandbox lists intents page by page, as Stripe does.
    let page = |query: String| {
        let client = sandbox.client.clone();
        let url = format!("{}/v1/payment_intents{query}", sandbox.base_url);
        async move {
            client
                .get(url)
                .bearer_auth(TEST_STRIPE_KEY)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let first = page("?limit=1".into()).await;
    assert_eq!(first["object"], "list");
    assert_eq!(first["has_more"], true, "{first}");
    let cursor = first["data"][0]["id"].as_str().unwrap().to_owned();
    let second = page(format!("?limit=1&starting_after={cursor}")).await;
    assert_eq!(second["has_more"], false, "two intents in all: {second}");
    assert_ne!(second["data"][0]["id"], first["data"][0]["id"]);

    // A payment the provider took that no booking or refund accounts for
    // (made directly at the provider, for no checkout of ours).
    let r = sandbox
        .client
        .post(format!("{}/v1/payment_intents", sandbox.base_url))
        .bearer_auth(TEST_STRIPE_KEY)
        .form(&[("amount", "1500"), ("currency", "eur")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stray = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sandbox.pay(&stray).await;
    let out = audit_cli(&app, &sandbox, &["--json", "--provider"]).await;
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    assert_eq!(report["clean"], false);
    assert_eq!(
        named(&report),
        vec![("provider_intent_accounted".to_owned(), stray.clone())],
        "{report}"
    );
    // The books alone are still right.
    let out = audit_cli(&app, &sandbox, &["--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A booking whose confirmation email is gone.
    let paid = books.paid.booking.clone();
    app.raw_conn()
        .await
        .batch_execute(&format!(
            "DELETE FROM notifications WHERE dedupe_key = 'booking:{paid}:confirmation'"
        ))
        .await
        .unwrap();
    let out = audit_cli(&app, &sandbox, &["--event", &event]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "VIOLATION booking_confirmation_email: bookings {paid}"
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 violation(s): booking_confirmation_email"),
        "{stderr}"
    );
    println!("{stdout}{stderr}");
    let out = audit_cli(&app, &sandbox, &["--json", "--event", &event]).await;
    assert_eq!(out.status.code(), Some(1));
    let expected = vec![("booking_confirmation_email".to_owned(), paid.clone())];
    assert_eq!(named(&json_of(&out)), expected);

    let r = route(&app, &admin.bearer(), &format!("?event_id={event}")).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["clean"], false);
    assert_eq!(named(&body), expected, "{body}");
    let r = route(
        &app,
        &admin.bearer(),
        &format!("?event_id={}", uuid::Uuid::now_v7()),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["clean"], true);
}
