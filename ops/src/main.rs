use clap::Parser;

use boxoffice_ops::cli::Cli;

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
