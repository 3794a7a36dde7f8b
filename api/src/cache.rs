//! Cache-aside in Redis for the public catalog reads (event details, listing pages).
//!
//! # Freshness
//! Keys embed a *generation*: `cache:gen:event:{id}` for one event's details,
//! `cache:gen:events` for every listing page. A write bumps the generations it
//! affects ([`invalidate_events`]) after it commits, so the next read builds a
//! new key and misses. A reader that raced the write may still store what it
//! read under the old generation, but nobody reads that key again. Entries live
//! [`TTL`] (they contain live availability, which checkouts change without
//! bumping anything), so nothing is served staler than that even when an
//! invalidation was lost to a Redis outage.
//!
//! # Outages
//! Redis is an optimisation: every call has a short timeout, a failure is
//! logged and the read goes to Postgres. After a failure, reads skip Redis for
//! [`SKIP_AFTER_FAILURE`], so a dead Redis costs one timeout, not one per
//! request. Invalidations are always attempted.
//!
//! The database is the truth about capacity: a cached `available` is for
//! browsing; the checkout decides on row locks (DESIGN.md §5).

use std::sync::LazyLock;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::config::ApiConfig;
use crate::error::AppResult;
use crate::redis_guard::RedisGuard;
use crate::state::AppState;

/// How long an entry lives: every cached view shows availability.
pub const TTL: Duration = Duration::from_secs(2);
/// Longest wait for one Redis call before going to Postgres.
const REDIS_TIMEOUT: Duration = Duration::from_millis(150);
/// After a failed call, reads don't try Redis for this long.
const SKIP_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Bump when the shape of cached values changes, so old entries are ignored.
const FORMAT: &str = "v1";

/// What a cached value depends on.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// One event's public details (its fields, venue and ticket types).
    Event(Uuid),
    /// Pages of the public listing (any event may appear on any page).
    Listing,
}

/// Reads fall back to Postgres at once while Redis misbehaves.
static REDIS: LazyLock<RedisGuard> =
    LazyLock::new(|| RedisGuard::new("cache", REDIS_TIMEOUT, SKIP_AFTER_FAILURE));

/// Runs one Redis call with the guard's timeout; `None` on error or timeout.
async fn bounded<T>(
    state: &AppState,
    what: &'static str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Option<T> {
    REDIS.call(&state.config, what, call).await
}

fn generation_key(config: &ApiConfig, scope: Scope) -> String {
    match scope {
        Scope::Event(id) => config.redis_key(&format!("cache:gen:event:{id}")),
        Scope::Listing => config.redis_key("cache:gen:events"),
    }
}

fn entry_key(config: &ApiConfig, scope: Scope, generation: u64, variant: &str) -> String {
    match scope {
        Scope::Event(id) => {
            config.redis_key(&format!("cache:{FORMAT}:event:{id}:{generation}:{variant}"))
        }
        Scope::Listing => {
            config.redis_key(&format!("cache:{FORMAT}:events:{generation}:{variant}"))
        }
    }
}

/// The cached value for (`scope`, `variant`), or `load()`'s result, stored for
/// [`TTL`]. `variant` tells apart values of one scope (e.g. a hash of the
/// listing's query). Redis trouble only costs time; `load`'s errors are returned.
pub async fn get_or_load<T, F, Fut>(
    state: &AppState,
    scope: Scope,
    variant: &str,
    load: F,
) -> AppResult<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let key = cached_key(state, scope, variant).await;
    if let Some(key) = &key {
        let mut redis = state.redis.clone();
        let found: Option<Option<Vec<u8>>> = bounded(state, "get", async {
            redis::cmd("GET").arg(key).query_async(&mut redis).await
        })
        .await;
        if let Some(Some(bytes)) = found {
            match serde_json::from_slice(&bytes) {
                Ok(value) => {
                    metrics::counter!("catalog_cache_requests_total", "result" => "hit")
                        .increment(1);
                    return Ok(value);
                }
                Err(err) => {
                    tracing::warn!(cache.key = %key, error = %err, "unreadable cache entry; reloading")
                }
            }
        }
    }
    metrics::counter!("catalog_cache_requests_total", "result" => "miss").increment(1);
    let value = load().await?;
    if let Some(key) = key
        && let Ok(bytes) = serde_json::to_vec(&value)
    {
        let mut redis = state.redis.clone();
        let _: Option<()> = bounded(state, "set", async {
            redis::cmd("SET")
                .arg(&key)
                .arg(bytes)
                .arg("PX")
                .arg(TTL.as_millis() as u64)
                .query_async(&mut redis)
                .await
        })
        .await;
    }
    Ok(value)
}

/// The entry key for the scope's current generation; `None` while Redis is
/// being skipped or can't say.
async fn cached_key(state: &AppState, scope: Scope, variant: &str) -> Option<String> {
    if REDIS.skipping(&state.config) {
        metrics::counter!("catalog_cache_requests_total", "result" => "skipped").increment(1);
        return None;
    }
    let mut redis = state.redis.clone();
    let gen_key = generation_key(&state.config, scope);
    let generation: Option<u64> = bounded(state, "generation", async {
        redis::cmd("GET")
            .arg(&gen_key)
            .query_async(&mut redis)
            .await
    })
    .await?;
    Some(entry_key(
        &state.config,
        scope,
        generation.unwrap_or(0),
        variant,
    ))
}

/// Makes the next read of these events' details, and of every listing page,
/// miss, and drops this process's copy of their sales' terms (other replicas
/// hear of it from Postgres). Call after the write has committed.
pub async fn invalidate_events(state: &AppState, event_ids: &[Uuid]) {
    for id in event_ids {
        state.change_feed.sale_terms_changed(*id);
    }
    let mut pipe = redis::pipe();
    for id in event_ids {
        pipe.cmd("INCR")
            .arg(generation_key(&state.config, Scope::Event(*id)))
            .ignore();
    }
    pipe.cmd("INCR")
        .arg(generation_key(&state.config, Scope::Listing))
        .ignore();
    let mut redis = state.redis.clone();
    let _: Option<()> = bounded(state, "invalidate", async {
        pipe.query_async(&mut redis).await
    })
    .await;
}

/// [`invalidate_events`] for one event.
pub async fn invalidate_event(state: &AppState, event_id: Uuid) {
    invalidate_events(state, &[event_id]).await;
}
