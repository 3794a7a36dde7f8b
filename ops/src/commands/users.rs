//! `users create-admin`.

use std::io::Read;

use crate::cli::UsersCommand;
use crate::config::Settings;

pub async fn run(settings: &Settings, command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::CreateAdmin {
            email,
            password_stdin: _,
            display_name,
        } => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            let user = crate::seed::ensure_user(
                settings.database_url()?,
                &email,
                &display_name,
                password,
                &[boxoffice_models::users::Role::Admin],
            )
            .await?;
            println!("admin {} ({})", user.email, user.id);
            Ok(())
        }
    }
}
