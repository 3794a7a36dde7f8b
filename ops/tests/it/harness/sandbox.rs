//! The payment sandbox for tests: the real `boxoffice sandbox` server, in-process
//! on a loopback port, sending signed webhooks to a test app.

use boxoffice_ops::sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{TEST_STRIPE_KEY, TEST_WEBHOOK_SECRET, TestApp};

pub struct TestSandbox {
    pub base_url: String,
    pub client: reqwest::Client,
    _server: Sandbox,
    shutdown: CancellationToken,
}

impl TestSandbox {
    /// A sandbox whose webhooks go to `webhook_url`.
    pub async fn start(webhook_url: &str) -> TestSandbox {
        let mut config = SandboxConfig::new(webhook_url, TEST_WEBHOOK_SECRET);
        config.secret_key = Some(TEST_STRIPE_KEY.to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let server = boxoffice_ops::sandbox::spawn(config, listener, shutdown.clone())
            .await
            .unwrap();
        TestSandbox {
            base_url: format!("http://{}", server.addr),
            client: reqwest::Client::new(),
            _server: server,
            shutdown,
        }
    }

    /// The buyer pays: the intent succeeds and the webhook is sent.
    pub async fn pay(&self, intent_id: &str) {
        let r = self
            .client
            .post(format!(
                "{}/sandbox/payment_intents/{intent_id}/succeed",
                self.base_url
            ))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "paying {intent_id}: {}",
            r.status()
        );
    }

    /// A payment that raced the cancel and won: the provider pays an intent we
    /// had already cancelled (what a late payment looks like to us).
    pub async fn pay_late(&self, intent_id: &str) {
        let r = self
            .client
            .post(format!(
                "{}/sandbox/payment_intents/{intent_id}/succeed?force=true",
                self.base_url
            ))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "paying {intent_id} late: {}",
            r.status()
        );
    }

    /// The buyer's card is declined.
    pub async fn decline(&self, intent_id: &str) {
        let r = self
            .client
            .post(format!(
                "{}/sandbox/payment_intents/{intent_id}/fail",
                self.base_url
            ))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "failing {intent_id}: {}",
            r.status()
        );
    }

    pub async fn stats(&self) -> Value {
        self.client
            .get(format!("{}/sandbox/stats", self.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn configure(&self, switches: Value) {
        let r = self
            .client
            .post(format!("{}/sandbox/config", self.base_url))
            .json(&switches)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    /// A sandbox sending its webhooks to this app; start the workers against it.
    pub async fn sandbox(&self) -> TestSandbox {
        TestSandbox::start(&self.url("/v1/webhooks/stripe")).await
    }
}
