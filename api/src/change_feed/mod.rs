//! What the API keeps in memory between requests, and how it learns that it
//! changed: sessions (with their user's roles), workflow runs' status views,
//! and the terms of events' sales that checkout starts are checked against.
//!
//! Every authenticated request needs its session, and a frontend polls its
//! run's status: read from Postgres each time, those two rows were most of a
//! status read's cost. Here they are read once and then served from memory,
//! and Postgres says when one changes: triggers on `sessions`, `users` and
//! `workflow_runs` send `NOTIFY` (migration `000014`), and one connection per
//! API process listens ([`listener`]) and drops what changed from the maps
//! ([`cache_map`]). A logout, a disabled user or a role change therefore
//! applies on every replica as soon as the notification arrives, within
//! milliseconds of the commit; a run's status is never older than its last
//! committed change plus that delay. Events and ticket types announce changes
//! to the terms of their sale (migration `000016`), as an organizer's edit or
//! a cancellation makes them.
//!
//! When the listening connection is down, nothing is served from memory: every
//! read goes to Postgres until the listener is back (and then starts empty).
//!
//! The long polls' watcher hears of every changed run from here too, and reads
//! only those.

pub mod cache_map;
pub mod listener;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use boxoffice_models::DbPool;
use boxoffice_models::sessions::LiveSession;
use uuid::Uuid;

use cache_map::CacheMap;

use crate::routes::checkouts::sale_terms::SaleTerms;
use crate::routes::workflows::RunWatcher;

/// Channels, as the triggers of migration `000014` name them; each payload is
/// the changed row's id (a run's, since migration `000018`, with the version
/// it was changed to: `<id>:<version>`).
pub const SESSIONS_CHANNEL: &str = "boxoffice_sessions";
pub const USERS_CHANNEL: &str = "boxoffice_users";
pub const RUNS_CHANNEL: &str = "boxoffice_runs";
/// Migration `000016`'s: the payload is the event's id, for a change of the
/// event's terms or of one of its ticket types'.
pub const CATALOG_CHANNEL: &str = "boxoffice_catalog";

/// A lost notification (there should be none while the connection lives) is
/// forgotten after this long at most.
const TTL: Duration = Duration::from_secs(60);
/// Bounds on memory: a session is about 150 bytes, a status view about 1 KB.
const SESSIONS_CAPACITY: usize = 50_000;
const RUNS_CAPACITY: usize = 20_000;
/// An event's terms are about 200 bytes and 100 more per ticket type.
const SALE_TERMS_CAPACITY: usize = 10_000;

/// A run's status as `GET /v1/workflows/{id}` answers it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub owner_id: Option<Uuid>,
    pub version: i32,
    /// The JSON body, rendered once.
    pub body: Bytes,
}

pub struct Views {
    pub sessions: CacheMap<Uuid, LiveSession>,
    pub runs: CacheMap<Uuid, RunView>,
    /// Per event.
    pub sale_terms: CacheMap<Uuid, Arc<SaleTerms>>,
    /// Where long polls wait: told of every run that changed.
    watcher: RunWatcher,
}

impl Views {
    fn new(watcher: RunWatcher) -> Self {
        Views {
            sessions: CacheMap::new(TTL, SESSIONS_CAPACITY),
            runs: CacheMap::new(TTL, RUNS_CAPACITY),
            sale_terms: CacheMap::new(TTL, SALE_TERMS_CAPACITY),
            watcher,
        }
    }

    /// Applies one notification.
    fn changed(&self, channel: &str, payload: &str) {
        let (id, version) = match payload.split_once(':') {
            Some((id, version)) => (id, version.parse::<i32>().ok()),
            None => (payload, None),
        };
        let Ok(id) = Uuid::parse_str(id) else {
            tracing::warn!(channel, payload, "a change notification without a row id");
            return;
        };
        match channel {
            SESSIONS_CHANNEL => self.session_ended(id),
            USERS_CHANNEL => self.user_changed(id),
            // Dropped from memory before the watcher hears of it: a long
            // poll that starts waiting meanwhile finds its view gone and
            // reads the run (`RunWatcher::wait_past`).
            RUNS_CHANNEL => {
                self.runs.invalidate(&id);
                self.watcher.run_changed(id, version);
            }
            CATALOG_CHANNEL => self.sale_terms.invalidate(&id),
            _ => {}
        }
    }

    /// Session `session_id` changed (ended, refreshed).
    fn session_ended(&self, session_id: Uuid) {
        self.sessions.invalidate(&session_id);
    }

    /// User `user_id` changed (roles, disabled): every session of theirs goes.
    fn user_changed(&self, user_id: Uuid) {
        self.sessions.invalidate_where(|s| s.user_id == user_id);
    }

    /// Starts or stops serving from memory; either way it starts empty.
    fn reset(&self, live: bool) {
        self.sessions.reset(live);
        self.runs.reset(live);
        self.sale_terms.reset(live);
        self.watcher.set_hearing(live);
    }
}

/// The API's in-memory views and the task that keeps them right.
#[derive(Clone)]
pub struct ChangeFeed {
    views: Arc<Views>,
}

impl ChangeFeed {
    /// Starts listening on a connection of its own taken from `db`, telling
    /// `watcher` of every run that changed; the task ends when the last clone
    /// is dropped.
    pub fn start(db: DbPool, watcher: RunWatcher) -> Self {
        let views = Arc::new(Views::new(watcher));
        tokio::spawn(listener::listen_until_dropped(Arc::downgrade(&views), db));
        ChangeFeed { views }
    }

    pub fn views(&self) -> &Views {
        &self.views
    }

    /// This process changed `user_id`'s sessions or roles and committed: its
    /// next request must not wait for the notification to see it.
    pub fn user_changed(&self, user_id: Uuid) {
        self.views.user_changed(user_id);
    }

    /// This process changed event `event_id` or its ticket types and
    /// committed: its next checkout start must not wait for the notification.
    pub fn sale_terms_changed(&self, event_id: Uuid) {
        self.views.sale_terms.invalidate(&event_id);
    }

    /// This process ended session `session_id` and committed.
    pub fn session_ended(&self, session_id: Uuid) {
        self.views.session_ended(session_id);
    }
}
