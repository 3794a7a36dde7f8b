//! How the soak's users reach Boxoffice: any of its API processes, like a
//! load balancer would, moving on to the next one when a process is down.
//! Every answer is counted by status class, and every 4xx by its stable code.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// What came back from one call.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The problem's stable code (`sold_out`, `offer_expired`, …), if any.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub struct Api {
    urls: Vec<String>,
    pub sandbox: String,
    http: reqwest::Client,
    next: AtomicUsize,
    /// `"2xx"`, `"5xx"`, `"unreachable"`, `"4xx <code>"` → count.
    answers: Mutex<BTreeMap<String, u64>>,
}

/// Tries per call: every API once, then one more round for a restart.
const ROUNDS: usize = 2;

impl Api {
    pub fn new(urls: Vec<String>, sandbox: String) -> anyhow::Result<Api> {
        Ok(Api {
            urls,
            sandbox,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
            next: AtomicUsize::new(0),
            answers: Mutex::default(),
        })
    }

    /// One call to `path` (under `/v1`) on the next API in turn; on a refused
    /// connection or a timeout, the same request (with the same idempotency
    /// key) goes to the next one. `None` when no API answered at all.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Option<Answer> {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for attempt in 0..self.urls.len() * ROUNDS {
            let base = &self.urls[(first + attempt) % self.urls.len()];
            let mut request = self
                .http
                .request(method.clone(), format!("{base}/v1{path}"))
                .header("authorization", bearer);
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.json().await.unwrap_or(Value::Null);
                    let answer = Answer { status, body };
                    self.count(&answer);
                    return Some(answer);
                }
                Err(_) if attempt + 1 < self.urls.len() * ROUNDS => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => {}
            }
        }
        self.bump("unreachable".into());
        None
    }

    /// The buyer at the payment page: pays (`succeed`) or is declined
    /// (`fail`). Whether the provider took it.
    pub async fn settle_at_provider(&self, intent_id: &str, action: &str) -> bool {
        let url = format!(
            "{}/sandbox/payment_intents/{intent_id}/{action}",
            self.sandbox
        );
        for _ in 0..5 {
            if let Ok(r) = self.http.post(&url).send().await
                && !r.status().is_server_error()
            {
                return r.status().is_success();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        false
    }

    /// Changes the provider's fault switches (`POST /sandbox/config`).
    pub async fn provider_switches(&self, switches: &Value) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/sandbox/config", self.sandbox))
            .json(switches)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "the sandbox refused {switches}");
        Ok(())
    }

    fn count(&self, answer: &Answer) {
        let class = match answer.status {
            200..=299 => "2xx".to_owned(),
            400..=499 => format!("4xx {}", answer.code()),
            500..=599 => "5xx".to_owned(),
            other => format!("{other}"),
        };
        self.bump(class);
    }

    fn bump(&self, class: String) {
        *self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(class)
            .or_default() += 1;
    }

    pub fn answers(&self) -> BTreeMap<String, u64> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
