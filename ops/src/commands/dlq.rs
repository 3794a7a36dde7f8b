//! `boxoffice dlq list|show|retry|discard`: dead-lettered jobs (see
//! `workers::operator`). Actions are audited with no actor and `via: cli`.

use boxoffice_workflows::operator::{Actor, Fate};

use crate::cli::{DlqCommand, FateArg};
use crate::config::Settings;

pub(crate) fn cli_actor() -> Actor {
    Actor {
        user_id: None,
        request_id: None,
        via: "cli",
    }
}

pub async fn run(settings: &Settings, command: DlqCommand) -> anyhow::Result<()> {
    let conns = crate::runtime::connect(settings).await?;
    let operator = crate::operator::operator(settings, &conns)?;
    match command {
        DlqCommand::List { queue, json } => {
            let jobs = operator.dead_jobs(queue.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
                return Ok(());
            }
            println!(
                "{:<28} {:<14} {:<38} {:<26} {:>8} {:>8}  LAST ERROR",
                "ID", "QUEUE", "RUN", "STEP", "ATTEMPTS", "AGE"
            );
            for job in &jobs {
                println!(
                    "{:<28} {:<14} {:<38} {:<26} {:>8} {:>8}  {}",
                    job.id,
                    job.queue,
                    job.run_id
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into()),
                    job.step.as_deref().unwrap_or("-"),
                    job.attempts,
                    job.age_secs
                        .map(|a| format!("{a}s"))
                        .unwrap_or_else(|| "-".into()),
                    job.last_error.as_deref().unwrap_or("-").replace('\n', " "),
                );
            }
            println!("{} dead job(s)", jobs.len());
        }
        DlqCommand::Show { id } => println!(
            "{}",
            serde_json::to_string_pretty(&operator.dead_job(&id).await?)?
        ),
        DlqCommand::Retry { id: Some(id), .. } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&operator.retry_dead(&id, &cli_actor()).await?)?
            )
        }
        DlqCommand::Retry {
            id: None, queue, ..
        } => {
            let outcome = operator
                .retry_all_dead(queue.as_deref(), &cli_actor())
                .await?;
            println!("{}", serde_json::to_string_pretty(&outcome)?)
        }
        DlqCommand::Discard { id, fate } => {
            let fate = match fate {
                FateArg::Compensate => Fate::Compensate,
                FateArg::Fail => Fate::Fail,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &operator.discard_dead(&id, fate, &cli_actor()).await?
                )?
            )
        }
    }
    Ok(())
}
