//! `services`: private Postgres and Redis only, until SIGINT/SIGTERM.

use anyhow::Context;

use crate::cli::ServicesArgs;
use crate::local_services::{Durability, LocalServices};

pub async fn run(args: ServicesArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal();
    let durability = if args.ephemeral {
        Durability::Ephemeral
    } else {
        Durability::Durable
    };
    let services = LocalServices::start(&args.data_dir, durability, true, true, &[]).await?;
    let database_url = services
        .postgres
        .as_ref()
        .context("postgres started")?
        .database_url();
    let redis_url = services.redis.as_ref().context("redis started")?.url();
    // Written whole and then renamed, so a reader never sees half a file.
    let tmp = args.env_file.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!("DATABASE_URL={database_url}\nREDIS_URL={redis_url}\n"),
    )?;
    std::fs::rename(&tmp, &args.env_file)?;
    tracing::info!(env_file = %args.env_file.display(), "services ready");
    shutdown.cancelled().await;
    services.stop().await;
    Ok(())
}
