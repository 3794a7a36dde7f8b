//! `bench`: benchmarks that print figures (the code is in `crate::bench`).

use crate::cli::BenchCommand;
use crate::config::Settings;

pub async fn run(settings: Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Checkout(args) => crate::bench::checkout(settings, args).await,
        BenchCommand::Analytics(args) => crate::bench::analytics(settings, args).await,
    }
}
