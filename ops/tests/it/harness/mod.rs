//! The test harness: [`TestApp`] serves the real application on a loopback port
//! with a database and a Redis namespace of its own.

#![allow(dead_code)] // Each test module uses a different part of the harness.

pub mod processes;
pub mod sandbox;
pub mod users;
pub mod wait;

use std::net::SocketAddr;
use std::sync::Arc;

use boxoffice_api::config::ApiConfig;
use boxoffice_api::starts_in_flight::StartsInFlight;
use boxoffice_api::state::{AppState, Services};
use boxoffice_models::testing::{StatementCounts, TestDatabase};
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::{DbConn, DbPool};
use boxoffice_ops::runtime::{Connections, Schedules, WorkerServices, connect_to, serve_on};
use boxoffice_workers::adapters::mailer::{MailSettings, Mailer};
use boxoffice_workers::adapters::payments::{StripeClient, StripeConfig};
use boxoffice_workers::engine::RemoteCalls;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tokio_util::sync::CancellationToken;

/// The test suite's Redis, from `BOXOFFICE_TEST_REDIS_URL` (set by ops/scripts/test).
pub fn redis_url() -> String {
    std::env::var("BOXOFFICE_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("BOXOFFICE_TEST_REDIS_URL is not set: run the tests with ops/scripts/test")
    })
}

/// Logs of the app under test go to the test's output when
/// `BOXOFFICE_TEST_LOG` is set (a tracing filter, e.g. `info,boxoffice_workers=debug`):
/// nextest shows them for a failed test, which is where a flaky run is read.
fn init_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("BOXOFFICE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// The ticket signing seed of test apps (test-only).
pub const TEST_TICKET_SEED: [u8; 32] = [7; 32];
/// The webhook signing secret shared by test apps and their sandbox (test-only).
pub const TEST_WEBHOOK_SECRET: &str = "whsec_test_boxoffice";
/// The payment API key tests use against the sandbox (test-only).
pub const TEST_STRIPE_KEY: &str = "sk_test_boxoffice";

/// The JWT key of test apps (a test-only value, never a deployment's).
pub const TEST_JWT_SECRET: &[u8] = b"test-only-jwt-key-0123456789-abcdefghijklmnop";

pub struct TestApp {
    pub base_url: String,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub db: TestDatabase,
    pub redis_prefix: String,
    pub conns: Connections,
    shutdown: CancellationToken,
}

/// A change to the API configuration, applied before the app starts.
type ConfigEdit = Box<dyn FnOnce(&mut ApiConfig)>;

pub struct TestAppBuilder {
    redis_url: String,
    configure: Vec<ConfigEdit>,
    database: Option<TestDatabase>,
    redis_prefix: Option<String>,
    statement_counts: StatementCounts,
    first_steps: bool,
    /// The payment API the first steps call, if they do.
    first_steps_payments: Option<String>,
}

impl TestAppBuilder {
    /// An API that leaves new runs' first steps to the workers, as they find
    /// them when the API process died right after committing a run: the
    /// runs wait at their start for a worker.
    pub fn leaving_first_steps_to_workers(mut self) -> Self {
        self.first_steps = false;
        self
    }

    /// An API that creates a paid checkout's payment intent itself, at
    /// `payments_api`, right after the answer (as `serve` does when it has
    /// the provider's settings), instead of leaving it to a worker.
    pub fn first_steps_calling(mut self, payments_api: &str) -> Self {
        self.first_steps_payments = Some(payments_api.to_owned());
        self
    }

    /// An app whose database counts the statements its sessions send, for a
    /// test that reads `pg_stat_statements` (others' databases count none).
    pub fn counting_statements(mut self) -> Self {
        self.statement_counts = StatementCounts::TopLevel;
        self
    }

    /// Points the app's Redis somewhere else (e.g. a closed port, to test outages).
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = url.into();
        self
    }

    /// Changes the API configuration before the app starts.
    pub fn config(mut self, f: impl FnOnce(&mut ApiConfig) + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Shares a database (and Redis prefix) with another app, as two replicas would.
    pub fn replica_of(mut self, other: &TestApp) -> Self {
        self.database = Some(other.db.clone());
        self.redis_prefix = Some(other.redis_prefix.clone());
        self
    }

    pub async fn spawn(self) -> TestApp {
        init_logs();
        let db = match self.database {
            Some(db) => db,
            None => TestDatabase::create_counting(self.statement_counts)
                .await
                .expect("creating a test database"),
        };
        let redis_prefix = self
            .redis_prefix
            .unwrap_or_else(|| format!("t{}", uuid::Uuid::new_v4().simple()));
        let conns = connect_to(&db.url, &self.redis_url, 8).expect("connecting");
        let mut config = ApiConfig::for_development(TEST_JWT_SECRET.to_vec(), redis_prefix.clone());
        config.stripe_webhook_secrets = vec![TEST_WEBHOOK_SECRET.to_owned()];
        // Check-in verifies what the test workers sign.
        config.ticket_public_key = TicketSigner::from_seed(&TEST_TICKET_SEED).public_key();
        for f in self.configure {
            f(&mut config);
        }
        let run_watcher = boxoffice_api::routes::workflows::RunWatcher::start(conns.db.clone());
        let state = AppState::new(Services {
            db: conns.db.clone(),
            starts_db: conns.starts_db.clone(),
            redis: conns.redis_fast.clone(),
            config: Arc::new(config),
            metrics: boxoffice_api::metrics_recorder::install(),
            ops: Some(Arc::new(boxoffice_ops::operator::OperatorBackend(
                boxoffice_ops::operator::operator_with(
                    &conns,
                    &redis_prefix,
                    TicketSigner::from_seed(&TEST_TICKET_SEED),
                ),
            ))),
            first_steps: self.first_steps.then(|| {
                let signer = Arc::new(TicketSigner::from_seed(&TEST_TICKET_SEED));
                let steps = boxoffice_ops::first_steps::EngineFirstSteps::new(
                    conns.holds_db.clone(),
                    signer.clone(),
                );
                let steps = match &self.first_steps_payments {
                    Some(api) => steps
                        .calling(RemoteCalls {
                            db: conns.calls_db.clone(),
                            ticket_signer: signer,
                            payments: Arc::new(
                                StripeClient::new(StripeConfig::new(api, TEST_STRIPE_KEY))
                                    .expect("payments client"),
                            ),
                            relay_nudge: Arc::new(tokio::sync::Notify::new()),
                        })
                        .expect("the first steps' calls thread"),
                    None => steps,
                };
                Arc::new(steps) as Arc<dyn boxoffice_api::first_steps::FirstSteps>
            }),
            run_watcher: run_watcher.clone(),
            change_feed: boxoffice_api::change_feed::ChangeFeed::start(
                conns.db.clone(),
                run_watcher,
            ),
            session_reads: boxoffice_api::auth::session_reads::SessionReads::start(
                conns.db.clone(),
            ),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding");
        let addr = listener.local_addr().expect("bound address");
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_on(listener, state.clone(), shutdown.clone()));
        TestApp {
            base_url: format!("http://{addr}"),
            addr,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            state,
            db,
            redis_prefix,
            conns,
            shutdown,
        }
    }
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            redis_url: redis_url(),
            configure: Vec::new(),
            database: None,
            redis_prefix: None,
            statement_counts: StatementCounts::Off,
            first_steps: true,
            first_steps_payments: None,
        }
    }

    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The process's metrics, as `GET /metrics` exports them.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn pool(&self) -> &DbPool {
        &self.state.db
    }

    /// Takes every connection of the API's pool, each waited for as long as
    /// the pool lets a request wait (opening one on a busy machine can take
    /// a while), and checks that none is left: what the API does next waits
    /// until they are dropped.
    pub async fn take_every_connection(&self) -> Vec<DbConn> {
        let size = self.pool().status().max_size;
        let mut taken = Vec::with_capacity(size);
        for _ in 0..size {
            taken.push(self.pool().get().await.expect("a pooled connection"));
        }
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(1), self.pool().get())
                .await
                .is_err(),
            "the pool still had a connection free"
        );
        taken
    }

    /// The API's count of checkout starts between their arrival and their
    /// answer, which its payment intents wait on in a flood.
    pub fn starts_in_flight(&self) -> StartsInFlight {
        self.state
            .first_steps
            .as_ref()
            .expect("the API takes first steps")
            .starts_in_flight()
    }

    /// A direct connection to the test's database, for raw SQL.
    pub async fn raw_conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.db.url)
            .await
            .expect("connecting to the test database")
    }

    /// The key that signs test tickets.
    pub fn ticket_signer(&self) -> TicketSigner {
        TicketSigner::from_seed(&TEST_TICKET_SEED)
    }

    /// Runs the workers and schedules in this process until the app is dropped:
    /// payments go to `payments_api` (the sandbox, in tests that pay), mail to
    /// `.eml` files in [`TestApp::mail_dir`].
    pub fn start_workers(&self, payments_api: &str) {
        let mailer = boxoffice_workers::adapters::mailer::build(&MailSettings {
            smtp_url: None,
            mail_dir: self.mail_dir(),
            from: "Boxoffice <tickets@boxoffice.test>".into(),
            smtp_timeout: std::time::Duration::from_secs(5),
        })
        .expect("mailer");
        self.start_workers_with_mailer(payments_api, mailer);
    }

    /// [`TestApp::start_workers`] with mail going to `mailer` (e.g. SMTP to a sink).
    pub fn start_workers_with_mailer(&self, payments_api: &str, mailer: Arc<dyn Mailer>) {
        self.start_workers_tuned(
            payments_api,
            mailer,
            boxoffice_workers::jobs::dispatch_waitlists::HEAD_WAIT,
        );
    }

    /// [`TestApp::start_workers`] with the waitlist's head-wait window set.
    pub fn start_workers_with_head_wait(&self, payments_api: &str, head_wait: std::time::Duration) {
        let mailer = boxoffice_workers::adapters::mailer::build(&MailSettings {
            smtp_url: None,
            mail_dir: self.mail_dir(),
            from: "Boxoffice <tickets@boxoffice.test>".into(),
            smtp_timeout: std::time::Duration::from_secs(5),
        })
        .expect("mailer");
        self.start_workers_tuned(payments_api, mailer, head_wait);
    }

    fn start_workers_tuned(
        &self,
        payments_api: &str,
        mailer: Arc<dyn Mailer>,
        waitlist_head_wait: std::time::Duration,
    ) {
        let conns = self.conns.clone();
        let prefix = self.redis_prefix.clone();
        let schedules = Schedules {
            purge_sessions: "0 0 * * * *".into(),
            // Every second: tests wait for deadlines measured in seconds.
            sweep_runs: "* * * * * *".into(),
            plan_reminders: "* * * * * *".into(),
            cleanup: "0 0 0 1 1 *".into(),
            retention: Default::default(),
            stalled_after: boxoffice_workers::jobs::sweep_runs::STALLED_AFTER,
            waitlist_head_wait,
        };
        let services = WorkerServices {
            ticket_signer: Arc::new(self.ticket_signer()),
            payments: Arc::new(
                StripeClient::new(StripeConfig::new(payments_api, TEST_STRIPE_KEY))
                    .expect("payments client"),
            ),
            mailer,
            // Links in emails lead to this app, signed with its JWT secret.
            mail_links: Arc::new(self.mail_links()),
        };
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            boxoffice_ops::runtime::run_workers_with(
                &conns, &prefix, &schedules, services, shutdown,
            )
            .await
        });
    }

    /// What this app's workers build links in emails from.
    pub fn mail_links(&self) -> boxoffice_workers::mail::LinkSettings {
        boxoffice_workers::mail::LinkSettings {
            public_url: self.base_url.clone(),
            unsubscribe_secret: TEST_JWT_SECRET.to_vec(),
        }
    }

    /// Where this app's workers write `.eml` files.
    pub fn mail_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("boxoffice-mail-{}", self.redis_prefix))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // The mail of a passing test has been read; a failing test's is kept
        // to look at.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(self.mail_dir());
        }
    }
}

/// SQL that moves a ticket type's counts as sales and holds would, without
/// them: `sold` more units sold and `held` more held (either may be negative,
/// and either an SQL expression). `taken` (= sold + held) is on the type's row;
/// `sold` on its sales rows.
pub fn counts_moved_sql(
    ticket_type: impl std::fmt::Display,
    sold: impl std::fmt::Display,
    held: impl std::fmt::Display,
) -> String {
    format!(
        "WITH t AS (UPDATE ticket_type_rows SET taken = taken + ({sold})::int + ({held})::int
                     WHERE id = '{ticket_type}' RETURNING id)
         SELECT ticket_type_counted(id, ({sold})::int, 0, 0, 0, 0) FROM t"
    )
}

/// Asserts an error response is a problem document with `status` and `code`,
/// and returns its body.
pub async fn assert_problem(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "content-type {content_type:?}, body: {text}"
    );
    let body: serde_json::Value = serde_json::from_str(&text).expect("problem body is JSON");
    assert_eq!(body["code"], code, "problem: {body}");
    assert_eq!(body["status"], status, "problem: {body}");
    assert!(
        body["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "problem: {body}"
    );
    body
}
