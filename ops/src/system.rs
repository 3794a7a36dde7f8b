//! A whole Boxoffice system of its own, for the benchmarks and the chaos soak:
//! private Postgres and Redis in a temporary folder, the sandbox provider in
//! this process, and real `boxoffice serve` / `boxoffice work` child processes
//! of this same binary, configured through their environment.
//!
//! Each part can be broken and brought back where its clients expect it: a
//! child `kill -9`ed and started again on its port, Redis restarted empty,
//! Postgres restarted. [`System::stop`] ends all of it; the children are also
//! killed if this process drops them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::local_services::ports::free_loopback_port_except;
use crate::local_services::{Durability, LocalPostgres, LocalRedis, LocalServices};
use crate::sandbox::{Sandbox, SandboxConfig};

/// One `boxoffice <role>` child.
pub struct Process {
    child: Child,
    pub role: String,
    port: Option<u16>,
    pub api_url: Option<String>,
    pub log: PathBuf,
}

impl Process {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The end of its log, for error messages.
    pub fn log_tail(&self) -> String {
        crate::local_services::tail(&self.log, 20)
    }
}

pub struct System {
    pub data_dir: PathBuf,
    durability: Durability,
    services: Option<LocalServices>,
    sandbox: Option<Sandbox>,
    sandbox_shutdown: CancellationToken,
    pub sandbox_url: String,
    pub database_url: String,
    pub jwt_secret: String,
    /// The key the children present to the sandbox provider.
    pub stripe_key: String,
    pub processes: Vec<Process>,
    /// The environment every child gets.
    env: Vec<(String, String)>,
    /// The `boxoffice` binary the children run.
    exe: PathBuf,
}

impl System {
    /// Starts everything; on failure stops whatever had started.
    pub async fn start(
        settings: &Settings,
        roles: &[String],
        durability: Durability,
    ) -> anyhow::Result<System> {
        Self::start_with(settings, roles, durability, &[]).await
    }

    /// [`System::start`] with more environment for the children (it wins
    /// over the defaults).
    pub async fn start_with(
        settings: &Settings,
        roles: &[String],
        durability: Durability,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<System> {
        let exe = std::env::current_exe().context("finding this binary")?;
        Self::start_binary(&exe, settings, roles, durability, extra_env).await
    }

    /// [`System::start_with`] with children running another `boxoffice`
    /// binary (an earlier build, measured beside this one).
    pub async fn start_binary(
        exe: &std::path::Path,
        settings: &Settings,
        roles: &[String],
        durability: Durability,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<System> {
        // Under the system temp folder: when running as root, the unprivileged
        // database user must be able to reach it.
        let data_dir =
            std::env::temp_dir().join(format!("boxoffice-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data_dir)?;
        // The services restart in the very folder they started in.
        let data_dir = std::fs::canonicalize(&data_dir)?;
        let mut system = System {
            data_dir: data_dir.clone(),
            durability,
            services: None,
            sandbox: None,
            sandbox_shutdown: CancellationToken::new(),
            sandbox_url: String::new(),
            database_url: String::new(),
            jwt_secret: crate::secrets::random_token(48),
            stripe_key: format!("sk_test_{}", crate::secrets::random_token(24)),
            processes: Vec::new(),
            env: Vec::new(),
            exe: exe.to_owned(),
        };
        match system.bring_up(settings, roles, extra_env).await {
            Ok(()) => Ok(system),
            Err(e) => {
                system.stop().await;
                Err(e)
            }
        }
    }

    async fn bring_up(
        &mut self,
        settings: &Settings,
        roles: &[String],
        extra_env: &[(String, String)],
    ) -> anyhow::Result<()> {
        let services =
            LocalServices::start(&self.data_dir, self.durability, true, true, &[]).await?;
        let postgres = services
            .postgres
            .as_ref()
            .context("postgres did not start")?;
        let redis = services.redis.as_ref().context("redis did not start")?;
        self.database_url = postgres.database_url();
        let redis_url = redis.url();
        self.services = Some(services);
        // The schema of the binary the children run (an earlier build measured
        // beside this one has its own migrations).
        let migrated = Command::new(&self.exe)
            .arg("migrate")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("BOXOFFICE_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .context("running `boxoffice migrate`")?;
        anyhow::ensure!(
            migrated.status.success(),
            "`boxoffice migrate` failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );

        // Ports first: the sandbox posts its webhooks to the first API.
        // Each API its own port: one already chosen is still free to the OS.
        let mut ports: Vec<Option<u16>> = Vec::with_capacity(roles.len());
        for role in roles {
            let chosen: Vec<u16> = ports.iter().flatten().copied().collect();
            ports.push(if role == "serve" || role == "all" {
                Some(free_loopback_port_except(&chosen)?)
            } else {
                None
            });
        }
        let webhook_port = ports
            .iter()
            .flatten()
            .next()
            .copied()
            .context("--processes needs at least one `serve` or `all`")?;
        anyhow::ensure!(
            roles.iter().any(|r| r == "work" || r == "all"),
            "--processes needs at least one `work` or `all`"
        );
        let webhook_secret = format!("whsec_{}", crate::secrets::random_token(24));
        // The stand-in for the provider takes a crowd of payments at once,
        // as the real one does.
        let listener = crate::listener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("binding the sandbox")?;
        let config = SandboxConfig::new(
            format!("http://127.0.0.1:{webhook_port}/v1/webhooks/stripe"),
            webhook_secret.clone(),
        )
        .with_secret_key(self.stripe_key.clone());
        let sandbox =
            crate::sandbox::spawn(config, listener, self.sandbox_shutdown.clone()).await?;
        self.sandbox_url = sandbox.base_url();
        self.sandbox = Some(sandbox);

        let env: Vec<(&str, String)> = vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("REDIS_URL", redis_url),
            ("BOXOFFICE_REDIS_PREFIX", "bench".into()),
            ("BOXOFFICE_JWT_SECRET", self.jwt_secret.clone()),
            ("BOXOFFICE_JWT_ISSUER", settings.jwt_issuer.clone()),
            ("BOXOFFICE_JWT_AUDIENCE", settings.jwt_audience.clone()),
            (
                "BOXOFFICE_TICKET_SIGNING_KEY",
                boxoffice_models::ticket_codes::TicketSigner::generate_seed_base64(),
            ),
            ("BOXOFFICE_STRIPE_API_BASE", self.sandbox_url.clone()),
            ("BOXOFFICE_STRIPE_SECRET_KEY", self.stripe_key.clone()),
            ("BOXOFFICE_STRIPE_WEBHOOK_SECRETS", webhook_secret),
            ("BOXOFFICE_RATE_LIMIT_PER_IP", "1000000000".into()),
            ("BOXOFFICE_RATE_LIMIT_PER_USER", "1000000000".into()),
            ("BOXOFFICE_DB_POOL_SIZE", settings.db_pool_size.to_string()),
            (
                "BOXOFFICE_MAIL_DIR",
                self.data_dir.join("mail").display().to_string(),
            ),
            ("BOXOFFICE_LOG", "warn".into()),
            ("BOXOFFICE_LOG_FORMAT", "text".into()),
        ];
        self.env = env
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .filter(|(k, _)| !extra_env.iter().any(|(extra, _)| extra == k))
            .chain(extra_env.iter().cloned())
            .collect();
        for (i, (role, port)) in roles.iter().zip(&ports).enumerate() {
            let log = self.data_dir.join(format!("{role}-{i}.log"));
            let child = self.spawn(role, *port, &log)?;
            self.processes.push(Process {
                child,
                role: role.clone(),
                port: *port,
                api_url: port.map(|p| format!("http://127.0.0.1:{p}")),
                log,
            });
        }
        for process in &mut self.processes {
            wait_ready(process, Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    /// `boxoffice <role>` with the system's environment, its output appended
    /// to `log`.
    fn spawn(&self, role: &str, port: Option<u16>, log: &std::path::Path) -> anyhow::Result<Child> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        if let Some(port) = port {
            cmd.env("BOXOFFICE_HTTP_ADDR", format!("127.0.0.1:{port}"));
        }
        cmd.spawn()
            .with_context(|| format!("starting `boxoffice {role}`"))
    }

    /// `kill -9` of child `index`, waiting for it to be gone.
    pub async fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        let process = self.processes.get_mut(index).context("no such process")?;
        process.child.kill().await.context("kill -9")?;
        Ok(())
    }

    /// Starts child `index` again, as it was (same role, port and log), and
    /// waits until it is ready.
    pub async fn respawn(&mut self, index: usize) -> anyhow::Result<()> {
        let (role, port, log) = {
            let p = self.processes.get(index).context("no such process")?;
            (p.role.clone(), p.port, p.log.clone())
        };
        let child = self.spawn(&role, port, &log)?;
        let process = &mut self.processes[index];
        process.child = child;
        wait_ready(process, Duration::from_secs(60)).await
    }

    /// Whether child `index` is still running.
    pub fn is_running(&mut self, index: usize) -> bool {
        self.processes
            .get_mut(index)
            .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)))
    }

    /// Stops Redis and starts it again on its port, empty: every queue, lock
    /// and cached key is gone, as after a crash of an unpersisted server.
    pub async fn restart_redis_empty(&mut self) -> anyhow::Result<()> {
        let services = self.services.as_mut().context("no services")?;
        let redis = services.redis.take().context("no redis")?;
        let port = redis.port;
        redis.stop().await;
        // Whatever it persisted goes too.
        let _ = std::fs::remove_dir_all(self.data_dir.join("redis"));
        services.redis = Some(LocalRedis::start_on(&self.data_dir, self.durability, port).await?);
        Ok(())
    }

    /// A fast shutdown of Postgres (open transactions rolled back, clients
    /// cut off) and a start on the same port.
    pub async fn restart_postgres(&mut self) -> anyhow::Result<()> {
        let services = self.services.as_mut().context("no services")?;
        let postgres = services.postgres.take().context("no postgres")?;
        let port = postgres.port;
        postgres.stop().await;
        services.postgres =
            Some(LocalPostgres::start_on(&self.data_dir, self.durability, port).await?);
        Ok(())
    }

    /// The Postgres postmaster's process id.
    pub fn postgres_pid(&self) -> Option<u32> {
        self.services.as_ref()?.postgres.as_ref()?.pid()
    }

    pub fn redis_pid(&self) -> Option<u32> {
        self.services.as_ref()?.redis.as_ref()?.pid()
    }

    pub fn redis_url(&self) -> Option<String> {
        Some(self.services.as_ref()?.redis.as_ref()?.url())
    }

    pub fn api_urls(&self) -> Vec<String> {
        self.processes
            .iter()
            .filter_map(|p| p.api_url.clone())
            .collect()
    }

    /// Stops the children (SIGTERM, then SIGKILL after 15 s), the sandbox and
    /// the services, and removes the temporary folder.
    pub async fn stop(mut self) {
        for process in &self.processes {
            if let Some(pid) = process.child.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for process in &mut self.processes {
            if tokio::time::timeout(Duration::from_secs(15), process.child.wait())
                .await
                .is_err()
            {
                let _ = process.child.kill().await;
            }
        }
        self.sandbox_shutdown.cancel();
        if let Some(sandbox) = self.sandbox.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), sandbox.stopped()).await;
        }
        if let Some(services) = self.services.take() {
            services.stop().await;
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// An API is ready when `/readyz` answers 200; a worker when it is still
/// running a moment after its start.
async fn wait_ready(process: &mut Process, within: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Some(status) = process.child.try_wait()? {
            anyhow::bail!(
                "`boxoffice {}` exited during start-up ({status}):\n{}",
                process.role,
                process.log_tail()
            );
        }
        match &process.api_url {
            Some(url) => {
                if let Ok(r) = client.get(format!("{url}/readyz")).send().await
                    && r.status() == 200
                {
                    return Ok(());
                }
            }
            None if started.elapsed() > Duration::from_millis(500) => return Ok(()),
            None => {}
        }
        anyhow::ensure!(
            started.elapsed() < within,
            "`boxoffice {}` not ready in {within:?}:\n{}",
            process.role,
            process.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
