//! Users for demos and administration.

use std::path::Path;

use boxoffice_models::users::{self, NewUser, Role, User};
use diesel_async::{AsyncConnection, AsyncPgConnection};

/// A demo account as printed by `boxoffice up`.
#[derive(Debug, Clone)]
pub struct DemoCredential {
    pub role: &'static str,
    pub email: String,
    pub password: String,
}

const DEMO_USERS: [(&str, &str, &str, &[Role]); 3] = [
    (
        "admin",
        "admin@boxoffice.test",
        "Demo Admin",
        &[Role::Admin],
    ),
    (
        "organizer",
        "organizer@boxoffice.test",
        "Demo Organizer",
        &[Role::Organizer],
    ),
    (
        "participant",
        "participant@boxoffice.test",
        "Demo Participant",
        &[Role::Participant],
    ),
];

/// Creates the demo users and the demo event once; returns the credentials.
/// Passwords are generated on the first run and kept in `demo-users.txt`, so a
/// second `up` prints the same ones and finds the users already there.
pub async fn demo(database_url: &str, data_dir: &Path) -> anyhow::Result<Vec<DemoCredential>> {
    let file = data_dir.join("demo-users.txt");
    let stored = std::fs::read_to_string(&file).unwrap_or_default();
    let mut credentials = Vec::new();
    for (role, email, name, roles) in DEMO_USERS {
        let password = stored
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{email} ")))
            .map(str::to_owned)
            .unwrap_or_else(|| crate::secrets::random_token(12));
        let user = ensure_user(database_url, email, name, &password, roles).await?;
        if role == "organizer" {
            let mut conn = AsyncPgConnection::establish(database_url).await?;
            super::catalog::seed_demo_catalog(&mut conn, user.id).await?;
        }
        credentials.push(DemoCredential {
            role,
            email: email.to_owned(),
            password,
        });
    }
    let text: String = credentials
        .iter()
        .map(|c| format!("{} {}\n", c.email, c.password))
        .collect();
    write_private(&file, &text)?;
    Ok(credentials)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Creates the user, or adds the roles to an existing one (the password of an
/// existing user is left alone).
pub async fn ensure_user(
    database_url: &str,
    email: &str,
    display_name: &str,
    password: &str,
    roles: &[Role],
) -> anyhow::Result<User> {
    // The same rules as registration: seeded and CLI-made users are ordinary users.
    use boxoffice_api::auth::validate::{DisplayName, Email, check_password_policy};
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("email: {e}"))?;
    DisplayName::parse(display_name).map_err(|e| anyhow::anyhow!("display name: {e}"))?;
    check_password_policy(password, &email).map_err(|e| anyhow::anyhow!("password: {e}"))?;
    let email = email.into_inner();
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    if let Some(existing) = users::find_by_email(&mut conn, &email).await? {
        let mut all = existing.roles();
        for r in roles {
            if !all.contains(r) {
                all.push(*r);
            }
        }
        let updated = users::set_roles(&mut conn, existing.id, &all).await?;
        return Ok(updated.unwrap_or(existing));
    }
    let hash = boxoffice_api::auth::password::hash_password(password).await?;
    let new = NewUser::new(email.clone(), display_name.to_owned(), hash, roles);
    match users::insert(&mut conn, &new).await? {
        Some(user) => Ok(user),
        // Created concurrently by someone else: theirs stands.
        None => users::find_by_email(&mut conn, &email)
            .await?
            .ok_or_else(|| anyhow::anyhow!("user {email} vanished")),
    }
}
