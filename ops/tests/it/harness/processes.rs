//! Real `boxoffice` processes for system tests: started with their own
//! environment, logs kept in a file (printed when a test fails), killed when
//! dropped so a failing test leaves nothing behind.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

pub const BOXOFFICE: &str = env!("CARGO_BIN_EXE_boxoffice");

/// `TEST_TICKET_SEED` ([7; 32]) in base64, for processes.
pub const TEST_TICKET_SEED_BASE64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// The environment shared by the processes of one deployment.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub extra_env: Vec<(String, String)>,
    /// Variables of the shared environment this deployment's processes go without.
    pub removed_env: Vec<String>,
}

impl Deployment {
    pub fn new(database_url: &str, redis_url: &str, redis_prefix: &str) -> Self {
        Deployment {
            database_url: database_url.to_owned(),
            redis_url: redis_url.to_owned(),
            redis_prefix: redis_prefix.to_owned(),
            extra_env: Vec::new(),
            removed_env: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The deployment without `key` in its processes' environment.
    pub fn without(mut self, key: &str) -> Self {
        self.removed_env.push(key.to_owned());
        self
    }

    /// Where the deployment's processes write their mail (`.eml` files).
    pub fn mail_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("boxoffice-mail-{}", self.redis_prefix))
    }
}

pub struct BoxofficeProcess {
    child: Child,
    pub role: String,
    pub base_url: Option<String>,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl BoxofficeProcess {
    /// `boxoffice <role>` (serve, work, all) against the deployment.
    pub async fn start(deployment: &Deployment, role: &str) -> Self {
        let serves = role == "serve" || role == "all";
        // A deployment may pin the API's address (e.g. a sandbox's webhook target).
        let port = deployment
            .extra_env
            .iter()
            .rev()
            .find(|(k, _)| k == "BOXOFFICE_HTTP_ADDR")
            .and_then(|(_, v)| v.rsplit(':').next()?.parse().ok())
            .unwrap_or_else(free_port);
        let log = std::env::temp_dir().join(format!(
            "boxoffice-{role}-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(BOXOFFICE);
        cmd.arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &deployment.database_url)
            .env("REDIS_URL", &deployment.redis_url)
            .env("BOXOFFICE_REDIS_PREFIX", &deployment.redis_prefix)
            .env(
                "BOXOFFICE_JWT_SECRET",
                std::str::from_utf8(super::TEST_JWT_SECRET).unwrap(),
            )
            .env("BOXOFFICE_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("BOXOFFICE_LOG_FORMAT", "json")
            // A tracing filter for the processes' own logs (e.g.
            // `info,apalis_core::backend::persistence=debug`), to read what a
            // flaky run's workers did. Keep `info` in it: tests read info events.
            .env(
                "BOXOFFICE_LOG",
                std::env::var("BOXOFFICE_TEST_PROCESS_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("BOXOFFICE_DB_POOL_SIZE", "8")
            .env("BOXOFFICE_TICKET_SIGNING_KEY", TEST_TICKET_SEED_BASE64)
            .env(
                "BOXOFFICE_STRIPE_WEBHOOK_SECRETS",
                super::TEST_WEBHOOK_SECRET,
            )
            .env("BOXOFFICE_STRIPE_SECRET_KEY", super::TEST_STRIPE_KEY)
            // Closed unless a test gives the sandbox's address.
            .env("BOXOFFICE_STRIPE_API_BASE", "http://127.0.0.1:1")
            .env("BOXOFFICE_MAIL_DIR", deployment.mail_dir())
            .envs(
                deployment
                    .extra_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
        for key in &deployment.removed_env {
            cmd.env_remove(key);
        }
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("starting boxoffice");
        let mut process = BoxofficeProcess {
            child,
            role: role.to_owned(),
            base_url: serves.then(|| format!("http://127.0.0.1:{port}")),
            log,
        };
        if serves {
            process.wait_ready(Duration::from_secs(60)).await;
        }
        process
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, within: Duration) {
        let url = format!("{}/readyz", self.base_url.as_ref().expect("an API process"));
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited during start-up ({status}):\n{}",
                    self.role,
                    self.logs()
                );
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                started.elapsed() < within,
                "{} not ready in {within:?}:\n{}",
                self.role,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.as_ref().expect("an API process"))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// How the process ended, or `None` while it runs. Reaps an exited process:
    /// until then its zombie keeps the pid, and a signal to it would succeed.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("polling the process")
    }

    /// SIGTERM, then wait for a clean exit; returns whether it exited successfully.
    pub async fn terminate(&mut self) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = self.child.kill().await;
                false
            }
        }
    }

    /// Freezes the process (`SIGSTOP`) until [`BoxofficeProcess::resume`].
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.id().expect("a running process");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .expect("signalling the process");
    }

    /// `kill -9` a running process and reap it: its exit status. An error when
    /// the process had already exited (nothing was killed) or the kill failed.
    pub async fn kill(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.exit_status() {
            return Err(std::io::Error::other(format!(
                "{} had already exited ({status})",
                self.role
            )));
        }
        self.child.start_kill()?;
        self.child.wait().await
    }
}

impl Drop for BoxofficeProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ({}) ---\n{}",
                self.role,
                self.log.display(),
                self.logs()
            );
        } else {
            // A passing test's log has served; kept, they fill /tmp run after run.
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// What a command that brings up a system of its own printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `boxoffice <args>` as on a machine of its own (none of the test
/// suite's environment; logs at `warn`) and waits for it, at most `within`.
/// Its output is printed, for the test's report.
pub async fn run_on_its_own(args: &[&str], within: Duration) -> Finished {
    let child = Command::new(BOXOFFICE)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BOXOFFICE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting boxoffice {args:?}: {e}"));
    let out = tokio::time::timeout(within, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("boxoffice {args:?} did not end within {within:?}"))
        .expect("its output");
    let finished = Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!("{}", finished.stdout);
    assert!(
        finished.status.success(),
        "boxoffice {args:?} failed ({}):\n{}\n{}",
        finished.status,
        finished.stdout,
        finished.stderr
    );
    finished
}
