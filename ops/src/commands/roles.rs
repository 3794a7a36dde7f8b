//! `serve`, `work` and `all`: production roles against given Postgres and Redis.

use crate::config::Settings;
use crate::runtime::{Roles, run_roles};

pub async fn run(settings: Settings, api: bool, workers: bool) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal();
    run_roles(&settings, Roles { api, workers }, shutdown).await
}
