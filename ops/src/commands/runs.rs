//! `boxoffice runs list|show|retry|cancel`: workflow runs (see `workers::operator`).

use crate::cli::RunsCommand;
use crate::config::Settings;

pub async fn run(settings: &Settings, command: RunsCommand) -> anyhow::Result<()> {
    let conns = crate::runtime::connect(settings).await?;
    let operator = crate::operator::operator(settings, &conns)?;
    let actor = super::dlq::cli_actor();
    match command {
        RunsCommand::List {
            status,
            kind,
            limit,
            json,
        } => {
            let runs = operator
                .list_runs(status.as_deref(), kind.as_deref(), limit)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(());
            }
            println!(
                "{:<38} {:<10} {:<13} {:<26} {:>7} {:<25}  ERROR",
                "ID", "KIND", "STATUS", "STEP", "VERSION", "UPDATED"
            );
            for run in &runs {
                println!(
                    "{:<38} {:<10} {:<13} {:<26} {:>7} {:<25}  {}",
                    run.id,
                    run.kind,
                    run.status,
                    run.step,
                    run.version,
                    run.updated_at.to_rfc3339(),
                    run.last_error
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                );
            }
            println!("{} run(s)", runs.len());
        }
        RunsCommand::Show { id } => println!(
            "{}",
            serde_json::to_string_pretty(&operator.show_run(id).await?)?
        ),
        RunsCommand::Retry { id } => println!(
            "{}",
            serde_json::to_string_pretty(&operator.retry_run(id, &actor).await?)?
        ),
        RunsCommand::Cancel { id } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&operator.cancel_run(id, &actor).await?)?
            )
        }
    }
    Ok(())
}
