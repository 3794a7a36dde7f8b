//! The reads of sessions this process does not keep in memory yet, gathered:
//! the requests that need one while a read runs are answered together by the
//! next, in one query (`sessions::find_live_many`).
//!
//! A flash sale's buyers each bring a session the API has not seen (it keeps
//! a session once read, until Postgres says it changed). Read one by one,
//! each took a pooled connection and a transaction of its own before its
//! checkout could start: a fifth of a 10,000-buyer sale's transactions.
//! Alone, a request waits for nothing: the task reads as soon as one comes.
//! A batch that fails on anything but a busy pool leaves each of its requests
//! to read alone, so that each gets the answer of its own read.

use std::collections::HashMap;

use boxoffice_models::DbPool;
use boxoffice_models::sessions::{self, LiveSession};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The most sessions read in one query.
const MAX_BATCH: usize = 512;

/// What the batch learnt of one session.
enum Read {
    /// Live (`Some`), or not: revoked, expired, its user disabled, or none.
    Found(Option<LiveSession>),
    /// No connection within the pool's wait: the API is busy (503).
    PoolBusy(String),
    /// The query failed: the request reads alone.
    Failed,
}

struct Waiting {
    session_id: Uuid,
    reply: oneshot::Sender<Read>,
}

/// The process's reader of sessions; clones share it. Its task ends when
/// the last clone is dropped.
#[derive(Clone)]
pub struct SessionReads {
    db: DbPool,
    queue: mpsc::UnboundedSender<Waiting>,
}

impl SessionReads {
    pub fn start(db: DbPool) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(read_batches(db.clone(), waiting));
        SessionReads { db, queue }
    }

    /// The session `session_id` of user `user_id` if it is live (as
    /// `sessions::find_live` says), read with the others waiting.
    pub async fn find_live(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> AppResult<Option<LiveSession>> {
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Waiting { session_id, reply }).is_ok() {
            match answer.await {
                Ok(Read::Found(live)) => {
                    return Ok(live.filter(|s| s.user_id == user_id));
                }
                Ok(Read::PoolBusy(reason)) => return Err(AppError::Unavailable(reason)),
                Ok(Read::Failed) | Err(_) => {}
            }
        }
        // Boxed: a read alone is rare, and every request waiting for its
        // batch would otherwise hold room for a pool wait and a query.
        Box::pin(read_alone(&self.db, session_id, user_id, now)).await
    }
}

/// One session read on a connection of its own, when its batch could not be.
async fn read_alone(
    db: &DbPool,
    session_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Option<LiveSession>> {
    let mut conn = db.get().await?;
    Ok(sessions::find_live(&mut conn, session_id, user_id, now).await?)
}

async fn read_batches(db: DbPool, mut waiting: mpsc::UnboundedReceiver<Waiting>) {
    while let Some(batch) = crate::batches::next(&mut waiting, MAX_BATCH).await {
        read_batch(&db, batch).await;
    }
}

/// Reads a batch and answers every request of it.
async fn read_batch(db: &DbPool, batch: Vec<Waiting>) {
    metrics::histogram!("session_read_batch_size").record(batch.len() as f64);
    let mut conn = match db.get().await {
        Ok(conn) => conn,
        Err(e) => {
            let reason = match AppError::from(e) {
                AppError::Unavailable(reason) => reason,
                other => other.to_string(),
            };
            for w in batch {
                let _ = w.reply.send(Read::PoolBusy(reason.clone()));
            }
            return;
        }
    };
    let ids: Vec<Uuid> = batch.iter().map(|w| w.session_id).collect();
    match sessions::find_live_many(&mut conn, &ids, Utc::now()).await {
        Ok(found) => {
            let live: HashMap<Uuid, LiveSession> =
                found.into_iter().map(|s| (s.session_id, s)).collect();
            // A session may be in the batch twice (two requests of one buyer).
            for w in batch {
                let session = live.get(&w.session_id).cloned();
                let _ = w.reply.send(Read::Found(session));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "a batch of session reads failed; reading them one by one");
            for w in batch {
                let _ = w.reply.send(Read::Failed);
            }
        }
    }
}
