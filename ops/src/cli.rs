//! The command line: one clap enum, one file per subcommand under `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "boxoffice",
    version,
    about = "Event ticketing built as durable workflows"
)]
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
    /// Benchmarks that print figures (they bring up their own system unless
    /// given a running one).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Dead-lettered jobs: list, show, retry, discard.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Workflow runs: list, show, retry a failed one, cancel one.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Queue health: depth, in flight, dead, throughput, outbox backlog and
    /// relay lag, breaker states.
    Queues(QueuesArgs),
    /// Check every invariant of the books (and, with --provider, against the
    /// payment provider's records); exits non-zero naming each violation.
    Audit(AuditArgs),
    /// A chaos soak: its own system under a mixed load while faults are
    /// injected at random (reproducibly from the seed); then every run must
    /// finish and the audit be clean. Prints a report; exits non-zero if not.
    Chaos(ChaosArgs),
}

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// How long the load and the faults last (fractions allowed).
    #[arg(long, default_value_t = 2.0)]
    pub minutes: f64,
    /// Draws the faults, their order, targets and lengths, the buyers' moves
    /// and the cancellations.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `boxoffice serve` processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub apis: u16,
    /// `boxoffice work` processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub workers: u16,
    /// Buyers acting at once.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub buyers: u16,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
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

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// A flash sale over HTTP: N buyers check out one hot ticket type of C seats
    /// at once, the sandbox pays; prints rates, latencies, oversold count, peak
    /// memory, and the raw single-row rate of the same Postgres.
    Checkout(BenchCheckoutArgs),
    /// An event's analytics on a big event: seeds N bookings and R refunds
    /// (bulk SQL), then prints the endpoint's p50/p95 under concurrent readers
    /// beside one plain indexed read of the same database.
    Analytics(BenchAnalyticsArgs),
}

#[derive(Debug, Args)]
pub struct BenchAnalyticsArgs {
    /// Bookings of the event (one to three tickets each).
    #[arg(long, default_value_t = 100_000)]
    pub bookings: usize,
    /// Refunds that succeeded, one ticket each.
    #[arg(long, default_value_t = 20_000)]
    pub refunds: usize,
    /// Clients reading the analytics at once.
    #[arg(long, default_value_t = 8)]
    pub readers: usize,
    /// Analytics reads in all.
    #[arg(long, default_value_t = 2000)]
    pub reads: usize,
    /// Start Postgres and Redis without fsync (faster, less like production).
    #[arg(long)]
    pub ephemeral: bool,
    /// Everything, start-up included, ends within this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct BenchCheckoutArgs {
    /// Buyers, each starting one checkout of one ticket at the same moment.
    #[arg(long, default_value_t = 2000)]
    pub buyers: usize,
    /// Seats of the hot ticket type.
    #[arg(long, default_value_t = 500)]
    pub capacity: i32,
    /// API base URL of a running system instead of starting one; needs
    /// DATABASE_URL and BOXOFFICE_JWT_SECRET of that system and --sandbox.
    #[arg(long)]
    pub target: Option<String>,
    /// Base URL of the target's payment sandbox (with --target).
    #[arg(long, requires = "target")]
    pub sandbox: Option<String>,
    /// The processes to start, by role (serve, work, all), comma-separated;
    /// e.g. `serve,serve,work,work`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "serve,work",
        conflicts_with = "target"
    )]
    pub processes: Vec<String>,
    /// Start Postgres and Redis without fsync (faster, less like production).
    #[arg(long, conflicts_with = "target")]
    pub ephemeral: bool,
    /// Buyers reach the API as through a proxy that speaks HTTP/2 to it:
    /// their requests are streams on a few cleartext HTTP/2 connections
    /// (100 buyers to a connection) instead of one HTTP/1.1 connection each.
    #[arg(long)]
    pub http2: bool,
    /// Connections of the raw single-row baseline.
    #[arg(long, default_value_t = 32)]
    pub raw_connections: usize,
    /// Seconds the raw baseline runs.
    #[arg(long, default_value_t = 3.0)]
    pub raw_secs: f64,
    /// Plain status reads in the burst after the sale.
    #[arg(long, default_value_t = 2000)]
    pub status_reads: usize,
    /// Seconds of status reads by `wrk` (2 threads, 32 connections) after the
    /// burst; 0 for none.
    #[arg(long, default_value_t = 5)]
    pub status_load_secs: u64,
    /// Statements listed by database time after the sale, with their calls
    /// per completed checkout (all of them: e.g. 100).
    #[arg(long, default_value_t = 12)]
    pub statements: u32,
    /// An earlier build of `boxoffice`: it runs the same sale first, on a
    /// system of its own, and the two builds' costs are compared.
    #[arg(long, conflicts_with = "target")]
    pub baseline_bin: Option<std::path::PathBuf>,
    /// The `boxoffice` binary the system's processes run (default: this one).
    #[arg(long, conflicts_with = "target")]
    pub bin: Option<std::path::PathBuf>,
    /// The log filter of the system's processes (`BOXOFFICE_LOG`), e.g.
    /// `warn,boxoffice_api::routes::checkouts=debug` to see each batch of
    /// checkout starts. Logging more costs the sale's figures something.
    #[arg(long, default_value = "warn", conflicts_with = "target")]
    pub processes_log: String,
    /// A folder to copy the processes' logs into before their system is
    /// removed (one subfolder per build measured).
    #[arg(long, conflicts_with = "target")]
    pub keep_logs: Option<std::path::PathBuf>,
    /// Everything, start-up included, ends within this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead jobs with their queue, run, step, attempts, last error and age.
    List {
        #[arg(long)]
        queue: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One dead job with its arguments (JSON).
    Show { id: String },
    /// Queue a dead job again (its run resumes where it stopped).
    Retry {
        /// The dead job's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead job (of --queue).
        #[arg(long)]
        all: bool,
        #[arg(long, requires = "all")]
        queue: Option<String>,
    },
    /// Drop a dead job, deciding its run's fate so nothing is left half-done.
    Discard {
        id: String,
        #[arg(long, value_enum)]
        fate: FateArg,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FateArg {
    /// Undo what the run did and end it.
    Compensate,
    /// Leave the run failed for good (refused while it has an open payment).
    Fail,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A run: state, full step history, signals, errors (JSON).
    Show { id: uuid::Uuid },
    /// Re-drive a failed run from its failed step.
    Retry { id: uuid::Uuid },
    /// Compensate and end a run.
    Cancel { id: uuid::Uuid },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Audit one event only.
    #[arg(long = "event")]
    pub event_id: Option<uuid::Uuid>,
    /// Print JSON: `{"clean": bool, "violations": [...]}`.
    #[arg(long)]
    pub json: bool,
    /// Also compare with the payment provider's intents and refunds
    /// (BOXOFFICE_STRIPE_API_BASE, BOXOFFICE_STRIPE_SECRET_KEY).
    #[arg(long)]
    pub provider: bool,
}

#[derive(Debug, Args)]
pub struct QueuesArgs {
    /// Print JSON (one report, no throughput sampling).
    #[arg(long)]
    pub json: bool,
    /// Seconds between the two samples throughput is computed from.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
}
