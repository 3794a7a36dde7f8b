//! `migrate`: apply pending migrations.

use crate::config::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let applied = boxoffice_models::migrations::run_pending(settings.database_url()?).await?;
    if applied.is_empty() {
        println!("migrations: up to date");
    } else {
        for version in applied {
            println!("migrations: applied {version}");
        }
    }
    Ok(())
}
