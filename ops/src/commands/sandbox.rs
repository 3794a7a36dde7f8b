//! `sandbox`: the local payment provider, until SIGINT/SIGTERM.

use anyhow::Context;

use crate::cli::SandboxArgs;
use crate::config::Settings;
use crate::sandbox::SandboxConfig;

/// Listens on the global `--http` address (`BOXOFFICE_HTTP_ADDR`): give it one
/// other than the API's.
pub async fn run(settings: &Settings, args: SandboxArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal();
    let listener = tokio::net::TcpListener::bind(settings.http_addr)
        .await
        .with_context(|| format!("binding {}", settings.http_addr))?;
    let mut config = SandboxConfig::new(args.webhook_url, args.webhook_secret);
    config.secret_key = args.secret_key;
    println!(
        "sandbox payment provider: http://{} (controls under /sandbox, e.g. POST /sandbox/payment_intents/{{id}}/succeed)",
        listener.local_addr()?
    );
    crate::sandbox::serve(config, listener, shutdown).await
}

/// For `up` when no payment API is configured (`BOXOFFICE_STRIPE_API_BASE`
/// unset): runs a sandbox in this process on a free loopback port and points
/// the settings at it — API base, secret key and webhook secret, generated
/// unless given — with webhooks going to this process's own API.
pub async fn start_for_up(
    settings: &mut Settings,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<crate::sandbox::Sandbox>> {
    if settings.stripe_api_base.is_some() {
        return Ok(None);
    }
    let secret_key = settings
        .stripe_secret_key
        .get_or_insert_with(|| format!("sk_test_{}", crate::secrets::random_token(24)))
        .clone();
    if settings.stripe_webhook_secrets.iter().all(|s| s.is_empty()) {
        settings.stripe_webhook_secrets =
            vec![format!("whsec_{}", crate::secrets::random_token(24))];
    }
    let webhook_secret = settings
        .stripe_webhook_secrets
        .iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_default();
    let mut api = settings.http_addr;
    if api.ip().is_unspecified() {
        api.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the sandbox")?;
    let config = SandboxConfig::new(format!("http://{api}/v1/webhooks/stripe"), webhook_secret)
        .with_secret_key(secret_key);
    let sandbox = crate::sandbox::spawn(config, listener, shutdown).await?;
    settings.stripe_api_base = Some(sandbox.base_url());
    Ok(Some(sandbox))
}
