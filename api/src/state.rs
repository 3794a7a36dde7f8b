//! Shared state handed to every handler.

use std::ops::Deref;
use std::sync::Arc;

use boxoffice_models::DbPool;
use metrics_exporter_prometheus::PrometheusHandle;
use redis::aio::ConnectionManager;

use crate::config::ApiConfig;
use crate::error::AppResult;
use crate::routes::checkouts::gathered::GatheredStarts;

/// What every handler reaches, behind one pointer: axum clones the state into
/// each request's future (the `State` extractor and the handler's own copy),
/// and a request that waits keeps both. One `Arc` is 8 bytes and one count
/// to raise; the services themselves were 96 bytes, and a count to raise for
/// each of them (README, "The answer held in place").
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The services, and what the process builds of them itself.
struct Shared {
    services: Services,
    /// Writes checkout starts in batches; only where the process takes the
    /// first steps.
    gathered_starts: Option<GatheredStarts>,
}

impl AppState {
    /// Starts the writer of checkout starts, on a thread of its own, where
    /// the process takes the first steps.
    pub fn new(services: Services) -> Self {
        let gathered_starts = services
            .first_steps
            .clone()
            .map(|steps| GatheredStarts::start(services.starts_db.clone(), steps));
        AppState(Arc::new(Shared {
            services,
            gathered_starts,
        }))
    }

    /// Where a checkout start is written with the others that arrive with
    /// it (`routes::checkouts::gathered`).
    pub fn gathered_starts(&self) -> Option<&GatheredStarts> {
        self.0.gathered_starts.as_ref()
    }

    pub async fn conn(&self) -> AppResult<boxoffice_models::DbConn> {
        Ok(self.db.get().await?)
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0.services
    }
}

/// The connections, configuration and background services of one API process.
pub struct Services {
    pub db: DbPool,
    /// The writer of checkout starts' own connection: the batch that every
    /// start of a flood waits for never waits behind requests for one.
    pub starts_db: DbPool,
    /// Reconnects by itself; a command fails fast while Redis is down.
    pub redis: ConnectionManager,
    pub config: Arc<ApiConfig>,
    pub metrics: PrometheusHandle,
    /// The operator's tools (`/v1/ops`), implemented outside the API (they
    /// need the workers' engine); `None` answers 503.
    pub ops: Option<Arc<dyn crate::ops::OpsBackend>>,
    /// Takes a new checkout's first step (its hold) so that the `POST`
    /// answers with the decision; `None` leaves the step to the workers.
    pub first_steps: Option<Arc<dyn crate::first_steps::FirstSteps>>,
    /// Where long polls of `/v1/workflows/{id}` wait.
    pub run_watcher: crate::routes::workflows::RunWatcher,
    /// Sessions and run status views kept in memory, and the listener that
    /// drops them when Postgres says they changed.
    pub change_feed: crate::change_feed::ChangeFeed,
    /// Reads the sessions not kept in memory, those asked for together in one
    /// query.
    pub session_reads: crate::auth::session_reads::SessionReads,
}
