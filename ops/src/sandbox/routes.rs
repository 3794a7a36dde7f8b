//! The sandbox's HTTP surface: Stripe's API subset (behind the fault switches
//! and the key check) and the `/sandbox` controls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::state::{
    Intent, Ledger, OutageMode, Outcome, REFUND_FAILURE_REASON, RefundRecord, Switches,
    SwitchesPatch, Traffic,
};
use super::webhooks::emit;

type Params = Vec<(String, String)>;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/v1/payment_intents", post(create_intent).get(list_intents))
        .route("/v1/payment_intents/{id}", get(retrieve_intent))
        .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
        .route("/v1/refunds", post(create_refund).get(list_refunds))
        .route("/v1/refunds/{id}", get(retrieve_refund))
        .layer(from_fn_with_state(shared.clone(), faults_and_key));
    let controls = Router::new()
        .route("/sandbox/payment_intents/{id}/succeed", post(succeed))
        .route("/sandbox/payment_intents/{id}/fail", post(fail))
        .route("/sandbox/config", get(show_config).post(change_config))
        .route("/sandbox/stats", get(stats))
        .route("/sandbox/events", get(events));
    api.merge(controls)
        .fallback(|| async {
            into_response(Outcome::error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                None,
                "Unrecognized request URL: the sandbox speaks only payment intents and refunds.",
            ))
        })
        .with_state(shared)
}

/// `pi_…`, `re_…`, `ch_…`, `evt_…`: Stripe's id shape (prefix, underscore, alphanumerics).
pub(super) fn new_id(prefix: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &random[..24])
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn into_response(outcome: Outcome) -> Response {
    (outcome.status, axum::Json(outcome.body)).into_response()
}

/// Sends the outcome's events (after the ledger lock is released) and answers.
fn respond(shared: &Shared, outcome: Outcome, replayed: bool) -> Response {
    for (kind, object) in &outcome.events {
        emit(shared, kind, object.clone());
    }
    let mut response = into_response(outcome);
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn api_error(status: StatusCode, message: &str) -> Response {
    into_response(Outcome::error(status, "api_error", None, message))
}

/// Counts every API call, then applies latency, outage, error rate and the key
/// check, in that order; a lost response is decided up front and applied after
/// the call did its work.
async fn faults_and_key(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    Traffic::bump(&shared.traffic.api_calls);
    let switches = shared.switches();
    if switches.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(switches.latency_ms)).await;
    }
    if switches.outage {
        Traffic::bump(&shared.traffic.injected_errors);
        if switches.outage_mode == OutageMode::Timeout {
            // Hangs past any client timeout; released when the sandbox stops.
            shared.shutdown.cancelled().await;
        }
        return api_error(StatusCode::INTERNAL_SERVER_ERROR, "sandbox outage");
    }
    if switches.error_rate > 0.0 && rand::random_bool(switches.error_rate) {
        Traffic::bump(&shared.traffic.injected_errors);
        return api_error(StatusCode::INTERNAL_SERVER_ERROR, "sandbox injected error");
    }
    if let Some(refusal) = check_key(&shared, request.headers()) {
        Traffic::bump(&shared.traffic.unauthorized);
        return refusal;
    }
    let lose = switches.lost_response_rate > 0.0 && rand::random_bool(switches.lost_response_rate);
    let response = next.run(request).await;
    if lose {
        Traffic::bump(&shared.traffic.injected_errors);
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sandbox lost the response",
        );
    }
    response
}

fn check_key(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(presented_key);
    let accepted = match (&shared.secret_key, presented) {
        (_, None) => false,
        (None, Some(key)) => !key.is_empty(),
        (Some(expected), Some(key)) => *expected == key,
    };
    if accepted {
        return None;
    }
    Some(into_response(Outcome::error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        None,
        "Invalid API Key provided.",
    )))
}

/// The key from `Bearer <key>`, or from Basic auth with the key as user name
/// (`curl -u sk_test_…:`, as Stripe's documentation does).
fn presented_key(authorization: &str) -> Option<String> {
    use base64::Engine;
    if let Some(key) = authorization.strip_prefix("Bearer ") {
        return Some(key.to_owned());
    }
    let encoded = authorization.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let credentials = String::from_utf8(decoded).ok()?;
    let (user, _password) = credentials.split_once(':')?;
    Some(user.to_owned())
}

/// The form parameters. A body without the form content type reads as no
/// parameters (Stripe accepts an empty POST to `/cancel`).
fn params(form: Result<Form<Params>, FormRejection>) -> Result<Params, Outcome> {
    match form {
        Ok(Form(params)) => Ok(params),
        Err(FormRejection::InvalidFormContentType(_)) => Ok(Vec::new()),
        Err(other) => Err(Outcome::invalid(
            "parameter_invalid",
            format!("Invalid request body: {}", other.body_text()),
        )),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// What an idempotent request is compared by.
fn fingerprint(route: &str, params: &Params) -> String {
    let mut sorted = params.clone();
    sorted.sort();
    let encoded: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{route} {}", encoded.join("&"))
}

fn unknown_parameter(name: &str) -> Outcome {
    Outcome::invalid(
        "parameter_unknown",
        format!("Received unknown parameter: {name}"),
    )
    .with_error_field("param", Value::from(name))
}

fn positive_amount(name: &str, value: &str) -> Result<i64, Outcome> {
    match value.parse::<i64>() {
        Ok(amount) if amount >= 1 => Ok(amount),
        _ => Err(Outcome::invalid(
            "parameter_invalid_integer",
            format!("Invalid integer: {value}; {name} must be a positive integer"),
        )
        .with_error_field("param", Value::from(name))),
    }
}

// ------------------------------------------------------------------ the API

async fn create_intent(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let params = match params(form) {
        Ok(params) => params,
        Err(refusal) => return into_response(refusal),
    };
    let key = idempotency_key(&headers);
    let (outcome, replayed) = shared.store.idempotent(
        key.as_deref(),
        fingerprint("POST /v1/payment_intents", &params),
        |ledger| create(ledger, &params, key.clone()).unwrap_or_else(|refusal| refusal),
    );
    respond(&shared, outcome, replayed)
}

fn create(ledger: &mut Ledger, params: &Params, key: Option<String>) -> Result<Outcome, Outcome> {
    let mut amount = None;
    let mut currency = None;
    let mut metadata = BTreeMap::new();
    for (name, value) in params {
        match name.as_str() {
            "amount" => amount = Some(positive_amount(name, value)?),
            "currency" => {
                if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(Outcome::invalid(
                        "parameter_invalid_string",
                        format!("Invalid currency: {value}"),
                    )
                    .with_error_field("param", Value::from("currency")));
                }
                currency = Some(value.to_ascii_lowercase());
            }
            "description"
            | "automatic_payment_methods[enabled]"
            | "automatic_payment_methods[allow_redirects]" => {}
            other => match other
                .strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
            {
                Some(meta_key) if !meta_key.is_empty() => {
                    metadata.insert(meta_key.to_owned(), value.clone());
                }
                _ => return Err(unknown_parameter(other)),
            },
        }
    }
    let missing = |param: &str| {
        Outcome::invalid(
            "parameter_missing",
            format!("Missing required param: {param}."),
        )
        .with_error_field("param", Value::from(param))
    };
    let amount = amount.ok_or_else(|| missing("amount"))?;
    let currency = currency.ok_or_else(|| missing("currency"))?;
    let id = new_id("pi");
    let intent = Intent {
        client_secret: format!("{id}_secret_{}", &new_id("s")[2..]),
        id: id.clone(),
        amount,
        currency,
        metadata,
        status: "requires_payment_method",
        created: now(),
        idempotency_key: key.clone(),
        charge_id: None,
        amount_refunded: 0,
        last_payment_error: None,
        canceled_at: None,
    };
    let body = intent.to_json();
    ledger.intents.insert(id, intent);
    ledger.counts.intents_created += 1;
    let key = key.unwrap_or_else(|| "(none)".to_owned());
    *ledger
        .counts
        .intents_by_idempotency_key
        .entry(key)
        .or_default() += 1;
    Ok(Outcome::ok(body))
}

async fn retrieve_intent(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let outcome = shared.store.with(|ledger| match ledger.intents.get(&id) {
        Some(intent) => Outcome::ok(intent.to_json()),
        None => Outcome::missing("payment_intent", &id),
    });
    into_response(outcome)
}

async fn cancel_intent(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let params = match params(form) {
        Ok(params) => params,
        Err(refusal) => return into_response(refusal),
    };
    let key = idempotency_key(&headers);
    let route = format!("POST /v1/payment_intents/{id}/cancel");
    let (outcome, replayed) =
        shared
            .store
            .idempotent(key.as_deref(), fingerprint(&route, &params), |ledger| {
                cancel(ledger, &id, &params).unwrap_or_else(|refusal| refusal)
            });
    respond(&shared, outcome, replayed)
}

fn cancel(ledger: &mut Ledger, id: &str, params: &Params) -> Result<Outcome, Outcome> {
    if let Some((name, _)) = params
        .iter()
        .find(|(name, _)| name != "cancellation_reason")
    {
        return Err(unknown_parameter(name));
    }
    let intent = ledger
        .intents
        .get_mut(id)
        .ok_or_else(|| Outcome::missing("payment_intent", id))?;
    if !intent.is_open() {
        return Err(Outcome::invalid(
            "payment_intent_unexpected_state",
            format!(
                "You cannot cancel this PaymentIntent because it has a status of {}. Only a \
                 PaymentIntent with one of the following statuses may be canceled: \
                 requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.",
                intent.status
            ),
        )
        .with_error_field("payment_intent", intent.to_json()));
    }
    intent.status = "canceled";
    intent.canceled_at = Some(now());
    let body = intent.to_json();
    ledger.counts.cancellations += 1;
    Ok(Outcome::ok(body.clone()).with_event("payment_intent.canceled", body))
}

async fn create_refund(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let params = match params(form) {
        Ok(params) => params,
        Err(refusal) => return into_response(refusal),
    };
    let key = idempotency_key(&headers);
    let switches = shared.switches();
    let (outcome, replayed) = shared.store.idempotent(
        key.as_deref(),
        fingerprint("POST /v1/refunds", &params),
        |ledger| {
            let made = refund(ledger, &params, &switches);
            if made.is_ok() {
                let key = key.clone().unwrap_or_else(|| "(none)".to_owned());
                *ledger
                    .counts
                    .refunds_by_idempotency_key
                    .entry(key)
                    .or_default() += 1;
            }
            made.unwrap_or_else(|refusal| refusal)
        },
    );
    let pending =
        !replayed && outcome.status == StatusCode::OK && outcome.body["status"] == "pending";
    if pending && let Some(id) = outcome.body["id"].as_str() {
        tokio::spawn(settle_later(
            shared.clone(),
            id.to_owned(),
            Duration::from_millis(switches.refund_pending_ms),
        ));
    }
    respond(&shared, outcome, replayed)
}

/// The reasons Stripe accepts.
const REFUND_REASONS: [&str; 3] = ["duplicate", "fraudulent", "requested_by_customer"];

fn refund(ledger: &mut Ledger, params: &Params, switches: &Switches) -> Result<Outcome, Outcome> {
    let mut intent_id = None;
    let mut amount = None;
    let mut reason = None;
    let mut metadata = BTreeMap::new();
    for (name, value) in params {
        match name.as_str() {
            "payment_intent" => intent_id = Some(value.clone()),
            "amount" => amount = Some(positive_amount(name, value)?),
            "reason" if REFUND_REASONS.contains(&value.as_str()) => reason = Some(value.clone()),
            "reason" => {
                return Err(Outcome::invalid(
                    "parameter_invalid_string",
                    format!(
                        "Invalid reason: must be one of {}",
                        REFUND_REASONS.join(", ")
                    ),
                )
                .with_error_field("param", Value::from("reason")));
            }
            other => match other
                .strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
            {
                Some(meta_key) if !meta_key.is_empty() => {
                    metadata.insert(meta_key.to_owned(), value.clone());
                }
                _ => return Err(unknown_parameter(other)),
            },
        }
    }
    let intent_id = intent_id.ok_or_else(|| {
        Outcome::invalid(
            "parameter_missing",
            "Missing required param: payment_intent.",
        )
        .with_error_field("param", Value::from("payment_intent"))
    })?;
    let intent = ledger
        .intents
        .get_mut(&intent_id)
        .ok_or_else(|| Outcome::missing("payment_intent", &intent_id))?;
    if intent.status != "succeeded" {
        return Err(Outcome::invalid(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent ({intent_id}) does not have a successful charge to refund."
            ),
        ));
    }
    let remaining = intent.amount - intent.amount_refunded;
    let over = if remaining <= 0 {
        Some(Outcome::invalid(
            "charge_already_refunded",
            format!(
                "Charge {} has already been refunded.",
                intent.charge_id.as_deref().unwrap_or("")
            ),
        ))
    } else {
        amount.filter(|a| *a > remaining).map(|amount| {
            Outcome::invalid(
                "amount_too_large",
                format!(
                    "Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"
                ),
            )
            .with_error_field("param", Value::from("amount"))
        })
    };
    if let Some(refusal) = over {
        *ledger
            .counts
            .refunds_refused_by_intent
            .entry(intent_id)
            .or_default() += 1;
        return Err(refusal);
    }
    let amount = amount.unwrap_or(remaining);
    let fails = switches.refund_fail_intents.contains(&intent_id);
    let settles_as = if fails { "failed" } else { "succeeded" };
    let status = if switches.refund_pending_ms > 0 {
        "pending"
    } else {
        settles_as
    };
    if status != "failed" {
        intent.amount_refunded += amount;
    }
    let record = RefundRecord {
        id: new_id("re"),
        payment_intent: intent_id,
        charge: intent.charge_id.clone(),
        amount,
        currency: intent.currency.clone(),
        metadata,
        reason,
        status,
        settles_as,
        failure_reason: (status == "failed").then_some(REFUND_FAILURE_REASON),
        created: now(),
    };
    let intent = intent.clone();
    let body = record.to_json();
    ledger.refunds.insert(record.id.clone(), record);
    let outcome = Outcome::ok(body.clone());
    Ok(if status == "failed" {
        // Stripe answers the refund (not an error) and reports its failure.
        outcome.with_event("refund.failed", body)
    } else {
        outcome.with_event("charge.refunded", ledger.charge_json(&intent))
    })
}

/// A pending refund settles as decided when it was made, and says so by
/// webhook, as Stripe does: `refund.updated`, and `refund.failed` when it failed.
async fn settle_later(shared: Arc<Shared>, refund_id: String, delay: Duration) {
    tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        _ = tokio::time::sleep(delay) => {}
    }
    let events = shared.store.with(|ledger| {
        let refund = ledger.refunds.get_mut(&refund_id)?;
        if refund.status != "pending" {
            return None;
        }
        refund.status = refund.settles_as;
        let failed = refund.status == "failed";
        if failed {
            refund.failure_reason = Some(REFUND_FAILURE_REASON);
        }
        let (intent_id, amount, body) = (
            refund.payment_intent.clone(),
            refund.amount,
            refund.to_json(),
        );
        if failed && let Some(intent) = ledger.intents.get_mut(&intent_id) {
            // The money was not given back: it can be refunded again.
            intent.amount_refunded -= amount;
        }
        let mut events = vec![("refund.updated", body.clone())];
        if failed {
            events.push(("refund.failed", body));
        }
        Some(events)
    });
    for (kind, object) in events.unwrap_or_default() {
        emit(&shared, kind, object);
    }
}

async fn retrieve_refund(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let outcome = shared.store.with(|ledger| match ledger.refunds.get(&id) {
        Some(refund) => Outcome::ok(refund.to_json()),
        None => Outcome::missing("refund", &id),
    });
    into_response(outcome)
}

/// Stripe's list parameters: `limit` (1 to 100, 10 by default) and the
/// `starting_after` cursor; refunds may be narrowed to one `payment_intent`.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    starting_after: Option<String>,
    payment_intent: Option<String>,
}

/// `GET /v1/payment_intents`: newest first, as Stripe lists them.
async fn list_intents(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let outcome = shared.store.with(|ledger| {
        let items: Vec<(i64, String, Value)> = ledger
            .intents
            .values()
            .map(|intent| (intent.created, intent.id.clone(), intent.to_json()))
            .collect();
        list_page("/v1/payment_intents", items, &query)
    });
    into_response(outcome)
}

/// `GET /v1/refunds`: newest first, optionally of one `payment_intent`.
async fn list_refunds(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let outcome = shared.store.with(|ledger| {
        let items: Vec<(i64, String, Value)> = ledger
            .refunds
            .values()
            .filter(|refund| {
                query
                    .payment_intent
                    .as_ref()
                    .is_none_or(|intent| *intent == refund.payment_intent)
            })
            .map(|refund| (refund.created, refund.id.clone(), refund.to_json()))
            .collect();
        list_page("/v1/refunds", items, &query)
    });
    into_response(outcome)
}

/// One page of a Stripe list object. Items are ordered newest first (ties by
/// id, so the order is total and the cursor stable).
fn list_page(url: &str, mut items: Vec<(i64, String, Value)>, query: &ListQuery) -> Outcome {
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => 10,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => {
            return Outcome::invalid(
                "parameter_invalid_integer",
                "Invalid integer: limit must be between 1 and 100",
            )
            .with_error_field("param", Value::from("limit"));
        }
    };
    items.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    let start = match &query.starting_after {
        None => 0,
        Some(cursor) => match items.iter().position(|(_, id, _)| id == cursor) {
            Some(position) => position + 1,
            None => {
                return Outcome::invalid("resource_missing", format!("No such object: '{cursor}'"))
                    .with_error_field("param", Value::from("starting_after"));
            }
        },
    };
    let rest = &items[start.min(items.len())..];
    let data: Vec<Value> = rest.iter().take(limit).map(|(_, _, v)| v.clone()).collect();
    Outcome::ok(json!({
        "object": "list",
        "url": url,
        "has_more": rest.len() > limit,
        "data": data,
    }))
}

// ------------------------------------------------------------ the controls

#[derive(Debug, Default, Deserialize)]
struct SucceedQuery {
    #[serde(default)]
    force: bool,
}

/// The buyer paid.
async fn succeed(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<SucceedQuery>,
) -> Response {
    let outcome = shared.store.with(|ledger| {
        let Some(intent) = ledger.intents.get_mut(&id) else {
            return Outcome::missing("payment_intent", &id);
        };
        let payable = intent.is_open() || (query.force && intent.status == "canceled");
        if !payable {
            return Outcome::error(
                StatusCode::CONFLICT,
                "invalid_request_error",
                Some("payment_intent_unexpected_state"),
                format!(
                    "the intent's status is {}; it cannot be paid",
                    intent.status
                ),
            );
        }
        intent.status = "succeeded";
        intent.charge_id = Some(new_id("ch"));
        intent.last_payment_error = None;
        intent.canceled_at = None;
        let snapshot = intent.clone();
        ledger.record_charge(&snapshot);
        let body = snapshot.to_json();
        Outcome::ok(body.clone()).with_event("payment_intent.succeeded", body)
    });
    respond(&shared, outcome, false)
}

/// The buyer's card was declined; the intent stays payable, as at Stripe.
async fn fail(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let outcome = shared.store.with(|ledger| {
        let Some(intent) = ledger.intents.get_mut(&id) else {
            return Outcome::missing("payment_intent", &id);
        };
        if !intent.is_open() {
            return Outcome::error(
                StatusCode::CONFLICT,
                "invalid_request_error",
                Some("payment_intent_unexpected_state"),
                format!(
                    "the intent's status is {}; a payment cannot fail now",
                    intent.status
                ),
            );
        }
        intent.status = "requires_payment_method";
        intent.last_payment_error = Some(json!({
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
        }));
        let body = intent.to_json();
        Outcome::ok(body.clone()).with_event("payment_intent.payment_failed", body)
    });
    respond(&shared, outcome, false)
}

async fn show_config(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.switches()).into_response()
}

async fn change_config(
    State(shared): State<Arc<Shared>>,
    axum::Json(patch): axum::Json<SwitchesPatch>,
) -> Response {
    let mut switches = shared
        .switches
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match switches.apply(patch) {
        Ok(()) => {
            tracing::info!(sandbox.switches = ?*switches, "sandbox switches changed");
            axum::Json(switches.clone()).into_response()
        }
        Err(message) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
        )
            .into_response(),
    }
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let (counts, refunds) = shared
        .store
        .with(|ledger| (ledger.counts.clone(), ledger.refund_counts()));
    let mut body = serde_json::to_value(counts).unwrap_or_else(|_| json!({}));
    let refunds = serde_json::to_value(refunds).unwrap_or_else(|_| json!({}));
    if let (Some(body), Value::Object(refunds), Value::Object(traffic)) =
        (body.as_object_mut(), refunds, shared.traffic.to_json())
    {
        body.extend(refunds);
        body.extend(traffic);
    }
    axum::Json(body).into_response()
}

async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let events = shared.store.with(|ledger| ledger.events.clone());
    axum::Json(events).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_as_bearer_or_as_the_basic_auth_user() {
        assert_eq!(
            presented_key("Bearer sk_test_1").as_deref(),
            Some("sk_test_1")
        );
        // `curl -u sk_test_1:` sends base64("sk_test_1:").
        assert_eq!(
            presented_key("Basic c2tfdGVzdF8xOg==").as_deref(),
            Some("sk_test_1")
        );
        assert_eq!(presented_key("Basic !!!"), None);
        assert_eq!(presented_key("Token sk_test_1"), None);
    }

    #[test]
    fn the_fingerprint_ignores_parameter_order() {
        let a = vec![
            ("amount".to_owned(), "1".to_owned()),
            ("currency".to_owned(), "eur".to_owned()),
        ];
        let b = vec![
            ("currency".to_owned(), "eur".to_owned()),
            ("amount".to_owned(), "1".to_owned()),
        ];
        assert_eq!(fingerprint("POST /v1/x", &a), fingerprint("POST /v1/x", &b));
        assert_ne!(fingerprint("POST /v1/x", &a), fingerprint("POST /v1/y", &a));
    }
}
