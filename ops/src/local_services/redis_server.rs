//! A private Redis server as a child process on a free loopback port, with a password.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

use super::postgres::{stop_child, tail};
use super::{Durability, ports, service_dir, stored_secret};

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct LocalRedis {
    child: Child,
    pub port: u16,
    password: String,
    pub log_file: PathBuf,
}

fn server_binary() -> PathBuf {
    std::env::var("BOXOFFICE_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("redis-server"))
}

impl LocalRedis {
    pub async fn start(data_dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        Self::start_on(data_dir, durability, ports::free_loopback_port()?).await
    }

    /// [`LocalRedis::start`] on a given port (tests restart a server where its
    /// clients expect it).
    pub async fn start_on(
        data_dir: &Path,
        durability: Durability,
        port: u16,
    ) -> anyhow::Result<Self> {
        let dir = service_dir(data_dir, "redis")?;
        let password = stored_secret(&data_dir.join("redis-password"))?;
        let log_file = data_dir.join("redis.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)?;
        let mut cmd = Command::new(server_binary());
        cmd.args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--requirepass", &password])
            .arg("--dir")
            .arg(&dir)
            .args(["--daemonize", "no", "--protected-mode", "yes"]);
        match durability {
            Durability::Durable => {
                cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
            }
            Durability::Ephemeral => {
                cmd.args(["--save", "", "--appendonly", "no"]);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd.spawn().context(
            "starting redis-server (install the `redis-server` package; \
             ops/scripts/install-services does)",
        )?;
        let mut server = LocalRedis {
            child,
            port,
            password,
            log_file,
        };
        if let Err(e) = server.wait_until_ready().await {
            server.stop().await;
            return Err(e);
        }
        Ok(server)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}/", self.password, self.port)
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let client = redis::Client::open(self.url())?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "redis-server exited during start-up ({status}); its log:\n{}",
                    tail(&self.log_file, 20)
                );
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                anyhow::bail!("redis-server did not answer within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM: Redis writes its data (when durable) and exits.
    pub async fn stop(mut self) {
        stop_child(&mut self.child, nix::sys::signal::Signal::SIGTERM, "redis").await;
    }
}
