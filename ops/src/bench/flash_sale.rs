//! The flash sale over HTTP: every buyer starts a checkout at once, long-polls
//! its run, pays as soon as the payment intent appears (the sandbox's
//! `succeed` control, which sends the signed webhook), and polls on until the
//! run ends. Then a burst of plain status reads.

use std::sync::Arc;
use std::time::Duration;

use boxoffice_workflows::engine::RunStatus;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use super::clients::{BuyerClients, Clients};
use super::seed::Buyer;
use super::stats::Samples;

/// Where the sale happens.
#[derive(Debug, Clone)]
pub struct Sale {
    /// API base URLs; buyers are spread over them.
    pub apis: Vec<String>,
    /// The sandbox provider's base URL (its `/sandbox` controls pay).
    pub sandbox: String,
    pub event_id: Uuid,
    pub ticket_type: Uuid,
    /// Nothing runs past this.
    pub deadline: Instant,
}

/// How one buyer's checkout went, as the buyer saw it.
#[derive(Debug, Clone, Default)]
pub struct BuyerOutcome {
    pub run_id: Option<Uuid>,
    /// `POST /v1/checkouts`, request to response.
    pub post: Option<Duration>,
    /// From sending the POST to seeing the run's decision: seats held, or
    /// the run ended without them (sold out).
    pub to_decision: Option<Duration>,
    /// The run held seats (a winner of the sale).
    pub held: bool,
    /// From sending the POST to seeing the run await payment.
    pub to_awaiting_payment: Option<Duration>,
    /// From asking the sandbox to pay to seeing the run completed.
    pub pay_to_completed: Option<Duration>,
    /// Answers 503 (the API shedding load) that the buyer retried, as a
    /// frontend does.
    pub retried: u32,
    /// The run's last status seen (`completed`, `compensated`, …).
    pub status: Option<String>,
    /// When the buyer saw the run end, from the start of the sale.
    pub ended_after: Option<Duration>,
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct SaleResult {
    /// One per buyer, in the buyers' order.
    pub outcomes: Vec<BuyerOutcome>,
    /// From the first POST until every buyer saw its run end (or gave up).
    pub elapsed: Duration,
}

#[derive(Debug, Deserialize)]
struct View {
    status: String,
    payment: Option<PaymentView>,
    /// Set once seats are held.
    expires_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PaymentView {
    intent_id: String,
}

/// A 202 of `POST /v1/checkouts`: the run, and its status as the run's view
/// has it.
#[derive(Debug, Deserialize)]
struct Started {
    run_id: Uuid,
    #[serde(flatten)]
    view: View,
}

pub async fn run(clients: &Clients, sale: &Sale, buyers: &[Buyer]) -> SaleResult {
    let sale = Arc::new(sale.clone());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, buyer) in buyers.iter().enumerate() {
        let (clients, sale, buyer) = (clients.for_buyer(i), sale.clone(), buyer.clone());
        tasks.spawn(async move {
            let api = sale.apis[i % sale.apis.len()].clone();
            let mut outcome = BuyerOutcome::default();
            let deadline = sale.deadline;
            match tokio::time::timeout_at(
                deadline,
                checkout(&clients, &sale, &api, &buyer, i, started, &mut outcome),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => outcome.error = Some(format!("{e:#}")),
                Err(_) => outcome.error = Some("did not finish before the deadline".into()),
            }
            (i, outcome)
        });
    }
    // In the buyers' order: outcome i is buyer i's.
    let mut outcomes = vec![BuyerOutcome::default(); buyers.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, outcome)) => outcomes[i] = outcome,
            Err(e) => tracing::warn!(error = %e, "a buyer task failed"),
        }
    }
    for outcome in &mut outcomes {
        if outcome.status.is_none() && outcome.error.is_none() {
            outcome.error = Some("the buyer task failed".into());
        }
    }
    SaleResult {
        outcomes,
        elapsed: started.elapsed(),
    }
}

async fn checkout(
    clients: &BuyerClients,
    sale: &Sale,
    api: &str,
    buyer: &Buyer,
    index: usize,
    sale_started: Instant,
    outcome: &mut BuyerOutcome,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    // The same Idempotency-Key on every attempt: a retry is the same purchase.
    let response = retrying(outcome, || {
        clients
            .api
            .post(format!("{api}/v1/checkouts"))
            .header("authorization", &buyer.authorization)
            .header("idempotency-key", format!("bench-{index}"))
            .json(&json!({ "event_id": sale.event_id, "items": [{ "ticket_type_id": sale.ticket_type, "quantity": 1 }] }))
    })
    .await?;
    let status = response.status();
    if status != StatusCode::ACCEPTED {
        anyhow::bail!(
            "POST /v1/checkouts answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    // As a frontend does: the answer is the run's status at the version its
    // ETag names, so the polls wait for what changes after it, and a
    // finished run (sold out) is not polled at all.
    let mut etag = etag_of(&response);
    let Started { run_id, mut view } = response.json().await?;
    outcome.post = Some(t0.elapsed());
    outcome.run_id = Some(run_id);
    // The API takes the hold as it starts the run: its answer is usually the
    // decision already.
    if view.expires_at.is_some()
        || RunStatus::parse(&view.status).is_some_and(RunStatus::is_finished)
    {
        outcome.to_decision = outcome.post;
        outcome.held = view.expires_at.is_some();
    }

    let url = format!("{api}/v1/workflows/{run_id}?wait=30");
    let mut paying: Option<Instant> = None;
    loop {
        outcome.status = Some(view.status.clone());
        let ended = RunStatus::parse(&view.status).is_some_and(RunStatus::is_finished);
        if outcome.to_decision.is_none() && (view.expires_at.is_some() || ended) {
            outcome.to_decision = Some(t0.elapsed());
            outcome.held = view.expires_at.is_some();
        }
        if let Some(payment) = &view.payment
            && paying.is_none()
        {
            outcome.to_awaiting_payment = Some(t0.elapsed());
            paying = Some(Instant::now());
            let paid = clients
                .sandbox
                .post(format!(
                    "{}/sandbox/payment_intents/{}/succeed",
                    sale.sandbox, payment.intent_id
                ))
                .send()
                .await?;
            if !paid.status().is_success() {
                anyhow::bail!(
                    "the sandbox refused to pay {}: {}",
                    payment.intent_id,
                    paid.status()
                );
            }
        }
        if ended {
            if view.status == "completed"
                && let Some(p) = paying
            {
                outcome.pay_to_completed = Some(p.elapsed());
            }
            outcome.ended_after = Some(sale_started.elapsed());
            return Ok(());
        }
        // Until the run changes.
        loop {
            let response = retrying(outcome, || {
                let request = clients
                    .api
                    .get(&url)
                    .header("authorization", &buyer.authorization);
                match &etag {
                    Some(tag) => request.header("if-none-match", tag),
                    None => request,
                }
            })
            .await?;
            match response.status() {
                StatusCode::NOT_MODIFIED => continue,
                StatusCode::OK => {}
                other => anyhow::bail!(
                    "GET {url} answered {other}: {}",
                    response.text().await.unwrap_or_default()
                ),
            }
            etag = etag_of(&response);
            view = response.json().await?;
            break;
        }
    }
}

fn etag_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// How long a buyer waits before asking again after a 503.
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// Sends the request `build` makes, again after each 503 (the API tells an
/// overloaded client to retry shortly); the first other answer is returned.
async fn retrying(
    outcome: &mut BuyerOutcome,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> reqwest::Result<reqwest::Response> {
    loop {
        let response = build().send().await?;
        if response.status() != StatusCode::SERVICE_UNAVAILABLE {
            return Ok(response);
        }
        outcome.retried += 1;
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

#[derive(Debug, Default)]
pub struct StatusReads {
    pub samples: Samples,
    pub failures: usize,
    pub first_error: Option<String>,
}

/// `reads` plain `GET /v1/workflows/{id}` (no wait, no ETag) from `clients`
/// concurrent clients, each reading its own runs.
pub async fn status_reads(
    client: &reqwest::Client,
    sale: &Sale,
    runs: &[(Uuid, Buyer)],
    reads: usize,
    clients: usize,
) -> StatusReads {
    let runs = Arc::new(runs.to_vec());
    let mut tasks = JoinSet::new();
    for c in 0..clients {
        let (client, runs, apis, deadline) = (
            client.clone(),
            runs.clone(),
            sale.apis.clone(),
            sale.deadline,
        );
        tasks.spawn(async move {
            let mut samples = Samples::default();
            let mut failures = 0;
            let mut first_error: Option<String> = None;
            let mut i = c;
            while i < reads && !runs.is_empty() && Instant::now() < deadline {
                let (run_id, buyer) = &runs[i % runs.len()];
                let api = &apis[i % apis.len()];
                let t = Instant::now();
                let outcome = match client
                    .get(format!("{api}/v1/workflows/{run_id}"))
                    .header("authorization", &buyer.authorization)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::OK => {
                        r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                    }
                    Ok(r) => Err(format!(
                        "{}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(()) => samples.push(t.elapsed()),
                    Err(e) => {
                        failures += 1;
                        first_error.get_or_insert(e);
                    }
                }
                i += clients;
            }
            (samples, failures, first_error)
        });
    }
    let mut reads = StatusReads::default();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((samples, failed, error)) = joined {
            reads.samples.extend(samples);
            reads.failures += failed;
            if reads.first_error.is_none() {
                reads.first_error = error;
            }
        }
    }
    reads
}
