//! `boxoffice audit [--event ID] [--json] [--provider]`: the ledger audit
//! (`models::ledger_audit`), printed for a person or as JSON; the process
//! fails (exit status 1) when anything is wrong, naming each violation.

use anyhow::Context;
use boxoffice_models::ledger_audit::provider::{self, ProviderIntent, ProviderRefund};
use boxoffice_models::ledger_audit::{self, Violation};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{Value, json};

use crate::cli::AuditArgs;
use crate::config::Settings;

/// Stripe's largest page.
const PAGE: usize = 100;

pub async fn run(settings: &Settings, args: AuditArgs) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(settings.database_url()?)
        .await
        .context("connecting to Postgres")?;
    let mut violations = ledger_audit::audit(&mut conn, args.event_id)
        .await
        .context("auditing the books")?;
    if args.provider {
        let books = ledger_audit::payment_records(&mut conn, args.event_id)
            .await
            .context("reading the books' payment intents")?;
        let base = settings
            .stripe_api_base
            .as_deref()
            .context("--provider needs BOXOFFICE_STRIPE_API_BASE")?;
        let key = settings
            .stripe_secret_key
            .as_deref()
            .context("--provider needs BOXOFFICE_STRIPE_SECRET_KEY")?;
        let (intents, refunds) = provider_records(base, key).await?;
        violations.extend(provider::compare(
            &books,
            &intents,
            &refunds,
            args.event_id.is_some(),
        ));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "clean": violations.is_empty(),
                "violations": violations,
            }))?
        );
    } else {
        print_report(&args, &violations);
    }
    if violations.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = violations.iter().map(|v| v.invariant.clone()).collect();
    anyhow::bail!(
        "the audit found {} violation(s): {}",
        violations.len(),
        names.join(", ")
    )
}

fn print_report(args: &AuditArgs, violations: &[Violation]) {
    let scope = args
        .event_id
        .map_or_else(|| "every event".to_owned(), |id| format!("event {id}"));
    let checked = ledger_audit::invariants().len();
    let provider = if args.provider {
        " and the payment provider's records"
    } else {
        ""
    };
    println!("Ledger audit of {scope}{provider}: {checked} invariants of the books checked.");
    if violations.is_empty() {
        println!("clean: no violation");
        return;
    }
    for violation in violations {
        println!("VIOLATION {violation}");
    }
    println!("{} violation(s)", violations.len());
}

/// Every payment intent and refund the provider at `base` has, page by page.
pub(crate) async fn provider_records(
    base: &str,
    key: &str,
) -> anyhow::Result<(Vec<ProviderIntent>, Vec<ProviderRefund>)> {
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let intents = list_all(&client, &format!("{base}/v1/payment_intents"), key)
        .await?
        .iter()
        .map(|item| ProviderIntent {
            id: text(item, "id"),
            amount: item["amount"].as_i64().unwrap_or_default(),
            status: text(item, "status"),
            run_id: item["metadata"]["run_id"].as_str().map(str::to_owned),
        })
        .collect();
    let refunds = list_all(&client, &format!("{base}/v1/refunds"), key)
        .await?
        .iter()
        .map(|item| ProviderRefund {
            id: text(item, "id"),
            payment_intent: text(item, "payment_intent"),
            amount: item["amount"].as_i64().unwrap_or_default(),
            status: text(item, "status"),
        })
        .collect();
    Ok((intents, refunds))
}

fn text(item: &Value, field: &str) -> String {
    item[field].as_str().unwrap_or_default().to_owned()
}

/// Follows a Stripe list (`has_more`, `starting_after`) to its end.
async fn list_all(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<Vec<Value>> {
    let mut items: Vec<Value> = Vec::new();
    loop {
        // Ids are letters, digits and underscores: nothing to escape.
        let page_url = match items.last().and_then(|item| item["id"].as_str()) {
            Some(last) => format!("{url}?limit={PAGE}&starting_after={last}"),
            None => format!("{url}?limit={PAGE}"),
        };
        let response = client
            .get(&page_url)
            .bearer_auth(key)
            .send()
            .await
            .with_context(|| format!("listing {url}"))?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("listing {url}: the provider answered {status}");
        }
        let page: Value = response
            .json()
            .await
            .with_context(|| format!("reading the list at {url}"))?;
        let data = page["data"]
            .as_array()
            .with_context(|| format!("{url} did not answer a list"))?;
        items.extend(data.iter().cloned());
        if !page["has_more"].as_bool().unwrap_or(false) || data.is_empty() {
            return Ok(items);
        }
    }
}
