//! The command line: one clap enum, one file per subcommand under `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(name = "boxoffice", version, about = "Event ticketing built as durable workflows")]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Development all-in-one: private Postgres and Redis (unless DATABASE_URL /
    /// REDIS_URL are set), migrations, demo data, then API + workers + schedules.
    Up(UpArgs),
    /// Run the API only (scale out by running several).
    Serve,
    /// Run workers and schedules only (scale out by running several).
    Work,
    /// Run the API, workers and schedules in one process.
    All,
    /// Apply pending database migrations.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Start only private Postgres and Redis and write their URLs to a file;
    /// stops them on SIGINT/SIGTERM. The test suite's setup uses this.
    Services(ServicesArgs),
    /// A local Stripe-compatible payment provider that sends signed webhooks,
    /// for development and tests; listens on --http.
    Sandbox(SandboxArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the private services keep their data and `up` its secrets.
    #[arg(long, default_value = ".boxoffice")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an admin (or grant admin to an existing user). The password is read
    /// from standard input so it never appears in the process list or history.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long, default_value = "Administrator")]
        display_name: String,
    },
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
    /// File to write `DATABASE_URL=` and `REDIS_URL=` lines to once both are up.
    #[arg(long)]
    pub env_file: PathBuf,
    /// Throwaway data: no fsync, no snapshots (for tests).
    #[arg(long)]
    pub ephemeral: bool,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Where signed webhooks are posted, e.g. http://127.0.0.1:8080/v1/webhooks/stripe.
    #[arg(long)]
    pub webhook_url: String,
    /// The endpoint secret webhooks are signed with (one of the API's
    /// BOXOFFICE_STRIPE_WEBHOOK_SECRETS).
    #[arg(long)]
    pub webhook_secret: String,
    /// The API key clients must send (BOXOFFICE_STRIPE_SECRET_KEY); any key is
    /// accepted when unset.
    #[arg(long)]
    pub secret_key: Option<String>,
}
