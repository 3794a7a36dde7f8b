//! A private PostgreSQL cluster: `initdb` on first use, then `postgres` as a child
//! process on a free loopback port, with password authentication even on loopback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::process::{Child, Command};

use super::unprivileged::{self, RunAs};
use super::{Durability, ports, stored_secret};

const SUPERUSER: &str = "boxoffice";
const APP_DATABASE: &str = "boxoffice";
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct LocalPostgres {
    child: Child,
    pub port: u16,
    password: String,
    pub cluster_dir: PathBuf,
    pub log_file: PathBuf,
}

/// The PostgreSQL server binaries: `BOXOFFICE_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), or `pg_config --bindir`.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("BOXOFFICE_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        return Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    anyhow::bail!(
        "PostgreSQL server binaries not found: install the `postgresql` package \
         (ops/scripts/install-services does) or set BOXOFFICE_PG_BIN"
    )
}

fn command(bin: &Path, run_as: Option<RunAs>) -> Command {
    let mut cmd = Command::new(bin);
    if let Some(r) = run_as {
        cmd.uid(r.uid.as_raw()).gid(r.gid.as_raw());
    }
    cmd
}

impl LocalPostgres {
    pub async fn start(data_dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        Self::start_on(data_dir, durability, ports::free_loopback_port()?).await
    }

    /// [`LocalPostgres::start`] on a given port (tests restart a server where
    /// its clients expect it).
    pub async fn start_on(
        data_dir: &Path,
        durability: Durability,
        port: u16,
    ) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let run_as = unprivileged::run_as()?;
        let cluster_dir = unprivileged::cluster_dir(data_dir, run_as)?;
        let password = stored_secret(&data_dir.join("postgres-password"))?;

        if !cluster_dir.join("PG_VERSION").exists() {
            init_cluster(&bin, &cluster_dir, run_as, &password).await?;
        }
        if let Some(r) = run_as {
            unprivileged::give_to(&cluster_dir, r)?;
        }

        let log_file = data_dir.join("postgres.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)?;
        let mut cmd = command(&bin.join("postgres"), run_as);
        cmd.arg("-D")
            .arg(&cluster_dir)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            // No Unix socket: nothing outside this folder, no /var/run/postgresql.
            .args(["-c", "unix_socket_directories="])
            .args(settings(durability).iter().flat_map(|s| ["-c", s]))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd.spawn().context("starting postgres")?;
        let mut server = LocalPostgres {
            child,
            port,
            password,
            cluster_dir,
            log_file,
        };
        if let Err(e) = server.wait_until_ready().await {
            server.stop().await;
            return Err(e);
        }
        server.ensure_app_database().await?;
        Ok(server)
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The URL of the application database.
    pub fn database_url(&self) -> String {
        self.url_for(APP_DATABASE)
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = self.url_for("postgres");
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "postgres exited during start-up ({status}); its log:\n{}",
                    tail(&self.log_file, 20)
                );
            }
            if AsyncPgConnection::establish(&url).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                anyhow::bail!(
                    "postgres did not accept connections within {START_TIMEOUT:?}; its log:\n{}",
                    tail(&self.log_file, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn ensure_app_database(&self) -> anyhow::Result<()> {
        let mut conn = AsyncPgConnection::establish(&self.url_for("postgres")).await?;
        #[derive(diesel::QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            found: bool,
        }
        let exists: Found = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found",
        )
        .bind::<diesel::sql_types::Text, _>(APP_DATABASE)
        .get_result(&mut conn)
        .await?;
        if !exists.found {
            diesel::sql_query(format!("CREATE DATABASE {APP_DATABASE}"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Fast shutdown (SIGINT: roll back open transactions, then stop), waiting for it.
    pub async fn stop(mut self) {
        stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGINT,
            "postgres",
        )
        .await;
    }
}

/// Sends `signal` and waits up to 30 s, then kills.
pub(super) async fn stop_child(child: &mut Child, signal: nix::sys::signal::Signal, name: &str) {
    if let Some(pid) = child.id() {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(_) => return,
            Err(_) => tracing::warn!(service = name, "did not stop within 30 s; killing it"),
        }
    }
    let _ = child.kill().await;
}

fn settings(durability: Durability) -> Vec<&'static str> {
    let mut s = vec![
        "max_connections=400",
        "shared_buffers=256MB",
        "log_min_messages=warning",
        // Statement counts for `boxoffice bench checkout` and for operators.
        "shared_preload_libraries=pg_stat_statements",
        // When each transaction committed: `boxoffice bench checkout` counts
        // a hold from its commit (`pg_xact_commit_timestamp`).
        "track_commit_timestamp=on",
    ];
    if durability == Durability::Ephemeral {
        // Test data is thrown away: durability costs time and buys nothing.
        s.extend([
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ]);
    }
    s
}

async fn init_cluster(
    bin: &Path,
    cluster_dir: &Path,
    run_as: Option<RunAs>,
    password: &str,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(cluster_dir)?;
    std::fs::set_permissions(cluster_dir, std::fs::Permissions::from_mode(0o700))?;
    // initdb reads the superuser's password from a file the service user can read;
    // it lives inside the (private) cluster folder's parent only for this call.
    let parent = cluster_dir
        .parent()
        .context("cluster folder has a parent")?;
    let pwfile = parent.join(".postgres-initdb-password");
    std::fs::write(&pwfile, password)?;
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))?;
    if let Some(r) = run_as {
        unprivileged::give_to(cluster_dir, r)?;
        unprivileged::give_to(&pwfile, r)?;
    }
    let output = command(&bin.join("initdb"), run_as)
        .arg("-D")
        .arg(cluster_dir)
        .args([
            "-U",
            SUPERUSER,
            "--auth=scram-sha-256",
            "--no-locale",
            "--encoding=UTF8",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .arg("--no-instructions")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running initdb")?;
    let _ = std::fs::remove_file(&pwfile);
    anyhow::ensure!(
        output.status.success(),
        "initdb failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The last `lines` lines of a log file (empty when it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
