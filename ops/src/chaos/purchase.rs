//! A buyer's purchase as the soak plays it: start a checkout, wait for its
//! payment page, pay, decline or walk away, and watch the run to its end.
//! The load's buyers, the waitlist's accepted offers and the recovery probes
//! all buy this way.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use super::load::{Load, outcome_of};

/// How long a buyer waits for its run to reach the next state.
const PATIENCE: Duration = Duration::from_secs(45);

/// A confirmed booking the buyer keeps, to refund or to show at the door.
pub struct Booking {
    pub id: String,
    pub event_id: Uuid,
    pub tickets: Vec<String>,
}

/// What the buyer does at the payment page.
#[derive(Clone, Copy, PartialEq)]
pub enum Payment {
    Pay,
    Decline,
    Abandon,
}

impl Load {
    /// Starts a checkout, waits for its payment, pays, declines or walks
    /// away, and waits for the end. The booking, when one was confirmed.
    pub async fn checkout(
        &self,
        op: &str,
        bearer: &str,
        body: &Value,
        payment: Payment,
        event_id: Uuid,
    ) -> Option<Booking> {
        let key = Uuid::new_v4().to_string();
        let started = self
            .api
            .call(Method::POST, "/checkouts", bearer, Some(&key), Some(body))
            .await;
        let run = match &started {
            Some(a) if a.status == 202 => a.body["run_id"].as_str().unwrap_or_default().to_owned(),
            other => {
                self.tally
                    .add(op, &format!("not started ({})", outcome_of(other.clone())));
                return None;
            }
        };
        self.follow(op, bearer, &run, payment, event_id).await
    }

    /// A run that was started: its payment and its end.
    pub(super) async fn follow(
        &self,
        op: &str,
        bearer: &str,
        run: &str,
        payment: Payment,
        event_id: Uuid,
    ) -> Option<Booking> {
        let view = self
            .wait(bearer, run, |v| {
                v["payment"]["intent_id"].is_string() || is_finished(v)
            })
            .await;
        let Some(view) = view else {
            self.tally.add(op, "left waiting for its payment page");
            return None;
        };
        let done = if is_finished(&view) {
            // Sold out, cancelled…: over before any payment page.
            view
        } else {
            let intent = view["payment"]["intent_id"].as_str().unwrap_or_default();
            match payment {
                Payment::Abandon => {
                    self.tally.add(op, "abandoned at the payment page");
                    return None;
                }
                Payment::Decline => {
                    // As at Stripe, a declined card leaves the intent open for
                    // another try: the run waits until its hold expires.
                    let declined = self.api.settle_at_provider(intent, "fail").await;
                    let outcome = if declined {
                        "declined at the provider (the hold then expires)"
                    } else {
                        "decline not taken by the provider"
                    };
                    self.tally.add(op, outcome);
                    return None;
                }
                Payment::Pay => {
                    if !self.api.settle_at_provider(intent, "succeed").await {
                        self.tally.add(op, "paid: the provider did not take it");
                        return None;
                    }
                }
            }
            let Some(done) = self.wait(bearer, run, is_finished).await else {
                self.tally.add(op, "paid: left before its end");
                return None;
            };
            done
        };
        let status = done["status"].as_str().unwrap_or_default();
        let outcome = match done["error"]["code"].as_str() {
            Some(code) => format!("{status} ({code})"),
            None => status.to_owned(),
        };
        self.tally.add(op, &outcome);
        if status != "completed" {
            return None;
        }
        Some(Booking {
            id: done["booking_id"].as_str()?.to_owned(),
            event_id,
            tickets: done["ticket_ids"]
                .as_array()?
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        })
    }

    /// Polls the run until `until` holds, for up to [`PATIENCE`] or until
    /// the load stops (the run goes on without its buyer watching).
    pub(super) async fn wait(
        &self,
        bearer: &str,
        run: &str,
        until: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline && !self.stop.is_cancelled() {
            if let Some(a) = self
                .api
                .call(
                    Method::GET,
                    &format!("/workflows/{run}"),
                    bearer,
                    None,
                    None,
                )
                .await
                && a.is_success()
                && until(&a.body)
            {
                return Some(a.body);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        None
    }
}

pub fn is_finished(view: &Value) -> bool {
    matches!(
        view["status"].as_str(),
        Some("completed" | "compensated" | "failed" | "cancelled")
    )
}
