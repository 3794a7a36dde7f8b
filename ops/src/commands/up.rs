//! `up`: the whole system on one machine, for development and demos.

use std::path::Path;

use crate::cli::UpArgs;
use crate::config::Settings;
use crate::local_services::{Durability, LocalServices};
use crate::runtime::{Roles, run_roles};

pub async fn run(mut settings: Settings, args: UpArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal();
    std::fs::create_dir_all(&args.data_dir)?;
    let services = LocalServices::start(
        &args.data_dir,
        Durability::Durable,
        settings.database_url.is_none(),
        settings.redis_url.is_none(),
        // The API binds its address only later: the services must not take it.
        &[settings.http_addr.port()],
    )
    .await?;
    if let Some(pg) = &services.postgres {
        settings.database_url = Some(pg.database_url());
        println!(
            "postgres: 127.0.0.1:{} (data in {})",
            pg.port,
            pg.cluster_dir.display()
        );
    }
    if let Some(redis) = &services.redis {
        settings.redis_url = Some(redis.url());
        println!("redis:    127.0.0.1:{}", redis.port);
    }
    let result = run_with_services(&mut settings, &args.data_dir, shutdown).await;
    services.stop().await;
    result
}

async fn run_with_services(
    settings: &mut Settings,
    data_dir: &Path,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    if settings.jwt_secret.is_none() {
        settings.jwt_secret = Some(dev_jwt_secret(data_dir)?);
    }
    if settings.ticket_signing_key.is_none() {
        settings.ticket_signing_key = Some(dev_ticket_signing_key(data_dir)?);
    }
    match &settings.smtp_url {
        Some(_) => println!("mail:     through the SMTP server of BOXOFFICE_SMTP_URL"),
        None => println!("mail:     .eml files in {}", settings.mail_dir.display()),
    }
    let sandbox = super::sandbox::start_for_up(settings, shutdown.clone()).await?;
    if let Some(sandbox) = &sandbox {
        println!(
            "payments: sandbox provider at {} (pay with POST /sandbox/payment_intents/{{id}}/succeed)",
            sandbox.base_url()
        );
    }
    let database_url = settings.database_url()?.to_owned();
    let applied = boxoffice_models::migrations::run_pending(&database_url).await?;
    println!("migrations: {} applied", applied.len());

    let credentials = crate::seed::demo(&database_url, data_dir).await?;
    println!(
        "\nDemo users (password in {}):",
        data_dir.join("demo-users.txt").display()
    );
    for c in &credentials {
        println!("  {:<12} {:<28} {}", c.role, c.email, c.password);
    }
    println!(
        "\nAPI:  http://{addr}/v1   docs: http://{addr}/docs   ready: http://{addr}/readyz\n",
        addr = settings.http_addr
    );
    run_roles(
        settings,
        Roles {
            api: true,
            workers: true,
        },
        shutdown,
    )
    .await
}

/// A development JWT key, generated once and kept in the data folder.
fn dev_jwt_secret(data_dir: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.trim().len() >= 32
    {
        return Ok(existing.trim().to_owned());
    }
    let secret = crate::secrets::random_token(48);
    std::fs::write(&path, &secret)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(secret)
}

/// A ticket signing key (base64 Ed25519 seed), generated once and kept in the
/// data folder: tickets issued in one session still verify after a restart.
fn dev_ticket_signing_key(data_dir: &Path) -> anyhow::Result<String> {
    use boxoffice_models::ticket_codes::TicketSigner;
    use std::os::unix::fs::PermissionsExt;
    let path = data_dir.join("ticket-signing-key");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && TicketSigner::from_base64_seed(existing.trim()).is_ok()
    {
        return Ok(existing.trim().to_owned());
    }
    let seed = TicketSigner::generate_seed_base64();
    std::fs::write(&path, &seed)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(seed)
}
