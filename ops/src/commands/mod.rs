//! One file per subcommand.

pub(crate) mod audit;
mod bench;
mod dlq;
mod migrate;
mod queues;
mod roles;
mod runs;
mod sandbox;
mod services;
mod up;
mod users;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { settings, command } = cli;
    match command {
        Command::Up(args) => up::run(settings, args).await,
        Command::Serve => roles::run(settings, true, false).await,
        Command::Work => roles::run(settings, false, true).await,
        Command::All => roles::run(settings, true, true).await,
        Command::Migrate => migrate::run(&settings).await,
        Command::Users(cmd) => users::run(&settings, cmd).await,
        Command::Services(args) => services::run(args).await,
        Command::Sandbox(args) => sandbox::run(&settings, args).await,
        Command::Bench(cmd) => bench::run(settings, cmd).await,
        Command::Dlq(cmd) => dlq::run(&settings, cmd).await,
        Command::Runs(cmd) => runs::run(&settings, cmd).await,
        Command::Queues(args) => queues::run(&settings, args).await,
        Command::Audit(args) => audit::run(&settings, args).await,
        Command::Chaos(args) => crate::chaos::run(settings, args).await,
    }
}
