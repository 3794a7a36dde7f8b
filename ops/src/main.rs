use clap::Parser;

use boxoffice_ops::cli::Cli;

/// Every request and step allocates: glibc's allocator spent a fifth of the
/// API's CPU under load, a third of that in its arena locks between tokio's
/// threads (see the README's "Benchmark"). jemalloc's per-thread caches avoid
/// the locks, and it holds less memory than glibc's arenas did.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A missing .env is normal; a malformed one is reported by clap's parse below.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    boxoffice_ops::telemetry::init(cli.settings.log_format(), &cli.settings.log_filter);
    match boxoffice_ops::commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("boxoffice: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
