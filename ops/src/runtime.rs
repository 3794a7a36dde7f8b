//! Connecting to Postgres and Redis and running the API and the workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::Request;
use axum::serve::ListenerExt;
use boxoffice_api::auth::session_reads::SessionReads;
use boxoffice_api::change_feed::ChangeFeed;
use boxoffice_api::routes::workflows::RunWatcher;
use boxoffice_api::state::{AppState, Services};
use boxoffice_models::DbPool;
use boxoffice_models::prime::Primer;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_workers::JobDeps;
use boxoffice_workers::adapters::mailer::Mailer;
use boxoffice_workers::adapters::payments::PaymentProvider;
use boxoffice_workers::engine::RemoteCalls;
use boxoffice_workers::registry::WorkerSetup;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// Which roles this process plays.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub api: bool,
    pub workers: bool,
}

/// The shared connections of one process.
#[derive(Clone)]
pub struct Connections {
    pub db: DbPool,
    /// The outbox relay's own connections, apart from the jobs' pool: when
    /// every job connection is busy (a burst of steps queued on one hot
    /// row after an outage), the relay still moves messages to Redis and
    /// the system keeps draining instead of stalling.
    pub relay_db: DbPool,
    /// The API's hold lanes' own connections (`first_steps`): a request
    /// keeps its connection while its hold is taken, so the lanes' batch
    /// statements never wait behind the requests that wait for them.
    pub holds_db: DbPool,
    /// The API's own connections for what follows a first step after the
    /// answer (a paid checkout's payment intent, fed to its run): runs
    /// already decided go first, not behind every new `POST` of a flood in
    /// the requests' pool (where they waited 5 s at 2,000 buyers and timed
    /// out).
    pub calls_db: DbPool,
    /// The connection of the API's writer of checkout starts
    /// (`routes::checkouts::gathered`): every start of a flood waits for its
    /// batch, and the batch waited for a connection behind the requests'
    /// other work (webhooks, session and status reads) in their pool.
    pub starts_db: DbPool,
    /// For request paths: fails fast while Redis is down, so a Redis outage
    /// slows requests down instead of hanging them.
    pub redis_fast: ConnectionManager,
    /// For workers: patient, rides out short Redis restarts.
    pub redis_patient: ConnectionManager,
}

/// The relay's pass and its backlog measurement, one after the other.
const RELAY_POOL_SIZE: usize = 2;
/// Hot ticket types being held at once by one API process's lanes.
const HOLD_LANES_POOL_SIZE: usize = 4;
/// Runs an API process advances at once after its answers (each holds a
/// connection for one short transaction; the provider calls are capped apart).
const CALLS_POOL_SIZE: usize = 4;
/// The writer of an API process's checkout starts writes one batch at a time.
const STARTS_POOL_SIZE: usize = 1;

pub async fn connect(settings: &Settings) -> anyhow::Result<Connections> {
    connect_to(
        settings.database_url()?,
        settings.redis_url()?,
        settings.db_pool_size,
    )
}

pub fn connect_to(
    database_url: &str,
    redis_url: &str,
    pool_size: usize,
) -> anyhow::Result<Connections> {
    let db = boxoffice_models::pool::build_pool(database_url, pool_size)?;
    let relay_db = boxoffice_models::pool::build_pool(database_url, RELAY_POOL_SIZE)?;
    let holds_db = boxoffice_models::pool::build_pool(database_url, HOLD_LANES_POOL_SIZE)?;
    let calls_db = boxoffice_models::pool::build_pool(database_url, CALLS_POOL_SIZE)?;
    let starts_db = boxoffice_models::pool::build_pool(database_url, STARTS_POOL_SIZE)?;
    let client = redis::Client::open(redis_url).context("parsing REDIS_URL")?;
    let fast = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let patient = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_max_delay(Duration::from_secs(2));
    Ok(Connections {
        db,
        relay_db,
        holds_db,
        calls_db,
        starts_db,
        redis_fast: ConnectionManager::new_lazy_with_config(client.clone(), fast)?,
        redis_patient: ConnectionManager::new_lazy_with_config(client, patient)?,
    })
}

/// `host-pid`: unique per process, so worker names never collide across
/// processes or restarts.
pub fn process_name() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}", std::process::id())
}

pub fn app_state(settings: &Settings, conns: &Connections) -> anyhow::Result<AppState> {
    let run_watcher = RunWatcher::start(conns.db.clone());
    Ok(AppState::new(Services {
        db: conns.db.clone(),
        starts_db: conns.starts_db.clone(),
        redis: conns.redis_fast.clone(),
        config: Arc::new(settings.api_config()?),
        metrics: boxoffice_api::metrics_recorder::install(),
        ops: Some(Arc::new(crate::operator::OperatorBackend(
            crate::operator::operator(settings, conns)?,
        ))),
        first_steps: Some(Arc::new(first_steps(settings, conns)?)),
        run_watcher: run_watcher.clone(),
        change_feed: ChangeFeed::start(conns.db.clone(), run_watcher),
        session_reads: SessionReads::start(conns.db.clone()),
    }))
}

/// The API's first steps: the hold, and the payment intent right after the
/// answer when the payment provider is configured (without it, the workers
/// create intents: an API process may run without the provider's key).
fn first_steps(
    settings: &Settings,
    conns: &Connections,
) -> anyhow::Result<crate::first_steps::EngineFirstSteps> {
    let signer = Arc::new(settings.ticket_signer()?);
    let steps = crate::first_steps::EngineFirstSteps::new(conns.holds_db.clone(), signer.clone());
    let payments = match settings.payments() {
        Ok(payments) => payments,
        Err(crate::config::ConfigError::Missing(_)) => return Ok(steps),
        Err(e) => return Err(e.into()),
    };
    Ok(steps.calling(RemoteCalls {
        db: conns.calls_db.clone(),
        ticket_signer: signer,
        payments,
        // No relay runs here: the outbox's trigger wakes the workers' relays.
        relay_nudge: Arc::new(tokio::sync::Notify::new()),
    })?)
}

/// Serves the API on `addr` until `shutdown`, then finishes open requests and
/// the provider calls their first steps issued.
pub async fn serve_api(
    state: AppState,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = crate::listener::bind(addr).with_context(|| format!("binding {addr}"))?;
    serve_on(listener, state, shutdown).await
}

/// Serves the API on a bound listener (tests bind port 0 and read the port).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(http.addr = %listener.local_addr()?, "API listening");
    let first_steps = state.first_steps.clone();
    let run_watcher = state.run_watcher.clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        run_watcher.end_waits();
    });
    let app = boxoffice_api::app(state);
    // Each answer leaves in one write as soon as it is ready: with Nagle's
    // algorithm an HTTP/2 connection carrying many buyers' streams would
    // hold small frames back until the peer acknowledged the last ones.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await?;
    // Every request has been answered: what their first steps issued is all
    // there is left to carry out.
    if let Some(first_steps) = first_steps {
        first_steps.finish().await;
    }
    Ok(())
}

/// What workers need besides connections: outside services and keys.
#[derive(Clone)]
pub struct WorkerServices {
    pub ticket_signer: Arc<TicketSigner>,
    pub payments: Arc<dyn PaymentProvider>,
    pub mailer: Arc<dyn Mailer>,
    /// Links in emails: the public URL, the unsubscribe key.
    pub mail_links: Arc<boxoffice_workers::mail::LinkSettings>,
}

/// Cron expressions of the schedules.
#[derive(Clone, Debug)]
pub struct Schedules {
    pub purge_sessions: String,
    pub sweep_runs: String,
    pub plan_reminders: String,
    pub cleanup: String,
    pub retention: boxoffice_workers::jobs::cleanup::Retention,
    /// How long a busy run may go without moving before the sweep re-drives it.
    pub stalled_after: Duration,
    /// The waitlist's head-wait window (see `jobs::dispatch_waitlists`).
    pub waitlist_head_wait: Duration,
}

/// Runs the workers and schedules until `shutdown`.
pub async fn run_workers(
    settings: &Settings,
    conns: &Connections,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let services = WorkerServices {
        ticket_signer: Arc::new(settings.ticket_signer()?),
        payments: settings.payments()?,
        mailer: boxoffice_workers::adapters::mailer::build(&settings.mail_settings())?,
        mail_links: Arc::new(settings.mail_links()),
    };
    let schedules = Schedules {
        purge_sessions: settings.schedule_purge_sessions.clone(),
        sweep_runs: settings.schedule_sweep_runs.clone(),
        plan_reminders: settings.schedule_plan_reminders.clone(),
        cleanup: settings.schedule_cleanup.clone(),
        retention: boxoffice_workers::jobs::cleanup::Retention {
            run_history_days: settings.retention_run_history_days,
            webhook_days: settings.retention_webhook_days,
            email_body_days: settings.retention_email_body_days,
            audit_days: settings.retention_audit_days,
        },
        stalled_after: Duration::from_secs(settings.stalled_after_secs),
        waitlist_head_wait: Duration::from_secs(settings.waitlist_head_wait_secs),
    };
    run_workers_with(
        conns,
        &settings.redis_prefix,
        &schedules,
        services,
        shutdown,
    )
    .await
}

/// [`run_workers`] with its settings spelled out (tests run workers in-process).
pub async fn run_workers_with(
    conns: &Connections,
    prefix: &str,
    schedules: &Schedules,
    services: WorkerServices,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let process = process_name();
    let workers = boxoffice_workers::registry::run_all(
        WorkerSetup {
            deps: JobDeps {
                db: conns.db.clone(),
                ticket_signer: services.ticket_signer,
                payments: services.payments,
                mailer: services.mailer,
                mail_links: services.mail_links,
                holds: boxoffice_workers::engine::HoldBatcher::new(conns.db.clone()),
                relay_nudge: Arc::new(tokio::sync::Notify::new()),
                stalled_after: schedules.stalled_after,
                waitlist_head_wait: schedules.waitlist_head_wait,
            },
            relay_db: conns.relay_db.clone(),
            redis: conns.redis_patient.clone(),
            prefix: prefix.to_owned(),
            process: process.clone(),
        },
        shutdown.clone(),
    );
    let schedules = boxoffice_schedules::run_all(
        boxoffice_schedules::ScheduleSetup {
            redis: conns.redis_patient.clone(),
            prefix: prefix.to_owned(),
            process,
            purge_sessions: schedules.purge_sessions.clone(),
            sweep_runs: schedules.sweep_runs.clone(),
            plan_reminders: schedules.plan_reminders.clone(),
            cleanup: schedules.cleanup.clone(),
            retention: schedules.retention,
        },
        shutdown,
    );
    let ((), schedules) = tokio::join!(workers, schedules);
    schedules
}

/// Prometheus `/metrics` for a process without the API (a `work` process).
async fn serve_metrics(addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<()> {
    let handle = boxoffice_api::metrics_recorder::install();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} for metrics"))?;
    tracing::info!(metrics.addr = %addr, "metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// Runs the given roles until `shutdown`.
pub async fn run_roles(
    settings: &Settings,
    roles: Roles,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    settings.validate()?;
    let conns = connect(settings).await?;
    // In the background: the roles start at once, and an unreachable Postgres
    // only leaves the pool as cold as it was.
    let (db, pool_size) = (conns.db.clone(), settings.db_pool_size);
    tokio::spawn(async move {
        let opened = boxoffice_models::pool::warm(&db, pool_size, Primer::Requests).await;
        tracing::info!(
            db.connections = opened,
            "Postgres connections opened ahead of work"
        );
    });
    // The hold lanes' too: a sale's first batch of holds, which every winner
    // of it waits for, would otherwise open its connection first.
    if roles.api {
        let holds_db = conns.holds_db.clone();
        tokio::spawn(async move {
            let size = holds_db.status().max_size;
            boxoffice_models::pool::warm(&holds_db, size, Primer::HoldLanes).await;
        });
    }
    // Before any role starts: what is recorded while no recorder is installed is
    // lost, e.g. the breakers' initial state, set when the workers build them.
    if roles.api || settings.metrics_addr.is_some() {
        boxoffice_api::metrics_recorder::install();
    }
    let api = async {
        if roles.api {
            serve_api(
                app_state(settings, &conns)?,
                settings.http_addr,
                shutdown.clone(),
            )
            .await
        } else {
            Ok(())
        }
    };
    let workers = async {
        if roles.workers {
            run_workers(settings, &conns, shutdown.clone()).await
        } else {
            Ok(())
        }
    };
    let metrics = async {
        match settings.metrics_addr {
            Some(addr) if !roles.api => serve_metrics(addr, shutdown.clone()).await,
            _ => Ok(()),
        }
    };
    let (api, workers, metrics) = tokio::join!(api, workers, metrics);
    let workers = workers.and(metrics);
    // If one role fails the other must not keep the process half-alive.
    if api.is_err() || workers.is_err() {
        shutdown.cancel();
    }
    api.and(workers)
}
