//! Where long polls wait: one task per API process reads the versions of every
//! run somebody is waiting on, in one query, every [`LOOK_EVERY`], and wakes
//! the waiters of the runs that moved. A flash sale's thousands of waiting
//! buyers then cost the database a few queries a second instead of one read
//! per buyer per look.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use boxoffice_models::{DbPool, workflow_runs};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use uuid::Uuid;

/// How often the versions of watched runs are read: the most a long poll
/// answers late.
const LOOK_EVERY: Duration = Duration::from_millis(20);
/// With nobody waiting, the task sleeps until a waiter comes (or this passes,
/// to notice that the API is gone).
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct RunWatcher {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    runs: Mutex<HashMap<Uuid, Watched>>,
    /// A first waiter arrived.
    waiting: Notify,
}

struct Watched {
    /// The latest version read (versions only grow).
    version: watch::Sender<i32>,
    waiters: usize,
}

impl RunWatcher {
    /// Starts the watching task; it ends when the last clone is dropped.
    pub fn start(db: DbPool) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(look_until_dropped(Arc::downgrade(&shared), db));
        RunWatcher { shared }
    }

    /// Waits until run `run_id` is past `version`, or `deadline`. Returns
    /// whether it moved.
    pub async fn wait_past(&self, run_id: Uuid, version: i32, deadline: Instant) -> bool {
        let mut seen = {
            let mut runs = self.shared.runs.lock().unwrap_or_else(|e| e.into_inner());
            let watched = runs.entry(run_id).or_insert_with(|| Watched {
                version: watch::channel(version).0,
                waiters: 0,
            });
            watched.waiters += 1;
            watched.version.subscribe()
        };
        let _leave = Leave {
            shared: &self.shared,
            run_id,
        };
        self.shared.waiting.notify_one();
        tokio::time::timeout_at(deadline, seen.wait_for(|v| *v > version))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Unregisters a waiter, however its request ends (answered, timed out, or
/// the client went away).
struct Leave<'a> {
    shared: &'a Shared,
    run_id: Uuid,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut runs = self.shared.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watched) = runs.get_mut(&self.run_id) {
            watched.waiters -= 1;
            if watched.waiters == 0 {
                runs.remove(&self.run_id);
            }
        }
    }
}

async fn look_until_dropped(shared: Weak<Shared>, db: DbPool) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let ids: Vec<Uuid> = strong
            .runs
            .lock()
            .map(|runs| runs.keys().copied().collect())
            .unwrap_or_default();
        if ids.is_empty() {
            // Keeps the watcher alive at most IDLE_CHECK after its last user.
            let _ = tokio::time::timeout(IDLE_CHECK, strong.waiting.notified()).await;
            continue;
        }
        match read_versions(&db, &ids).await {
            Ok(versions) => {
                let runs = strong.runs.lock().unwrap_or_else(|e| e.into_inner());
                for (id, version) in versions {
                    if let Some(watched) = runs.get(&id) {
                        watched.version.send_if_modified(|seen| {
                            let moved = version > *seen;
                            if moved {
                                *seen = version;
                            }
                            moved
                        });
                    }
                }
            }
            // The waiters time out and answer 304; the next look tries again.
            Err(e) => tracing::debug!(error = %e, "reading watched run versions failed"),
        }
        drop(strong);
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

async fn read_versions(db: &DbPool, ids: &[Uuid]) -> anyhow::Result<Vec<(Uuid, i32)>> {
    let mut conn = db.get().await?;
    Ok(workflow_runs::versions(&mut conn, ids).await?)
}
