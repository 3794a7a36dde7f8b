//! Queue health: Redis depth (ready + scheduled), in flight, dead, done; the
//! Postgres outbox backlog and relay lag; breaker states; runs per status.

use std::collections::{BTreeMap, HashMap};

use boxoffice_models::{outbox, workflow_runs};
use boxoffice_workflows::operator::{BreakerReport, OperatorError, QueueStats, QueuesReport};
use chrono::Utc;

use super::{Operator, other};
use crate::queue;
use crate::registry::QUEUES;

impl Operator {
    pub async fn queues(&self) -> Result<QueuesReport, OperatorError> {
        let now = Utc::now();
        let (backlog, by_status) = {
            let mut conn = self.db.get().await.map_err(other)?;
            (
                outbox::backlog_with_lag(&mut conn, now)
                    .await
                    .map_err(other)?,
                workflow_runs::count_by_status(&mut conn)
                    .await
                    .map_err(other)?,
            )
        };
        let mut queues = Vec::new();
        for name in QUEUES {
            let config = queue::config(&self.prefix, name);
            let mut conn = self.redis.clone();
            let (ready, scheduled, dead, done, workers): (u64, u64, u64, u64, Vec<String>) =
                redis::pipe()
                    .cmd("LLEN")
                    .arg(config.active_jobs_list())
                    .cmd("ZCARD")
                    .arg(config.scheduled_jobs_set())
                    .cmd("SCARD")
                    .arg(config.dead_jobs_set())
                    .cmd("SCARD")
                    .arg(config.done_jobs_set())
                    .cmd("ZRANGE")
                    .arg(config.workers_set())
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .map_err(other)?;
            let mut in_flight = 0u64;
            if !workers.is_empty() {
                let mut pipe = redis::pipe();
                for worker in &workers {
                    pipe.cmd("SCARD")
                        .arg(format!("{}:{worker}", config.inflight_jobs_set()));
                }
                let counts: Vec<u64> = pipe.query_async(&mut conn).await.map_err(other)?;
                in_flight = counts.iter().sum();
            }
            let (outbox_backlog, due) = backlog
                .iter()
                .find(|(q, _, _)| q == name)
                .map(|(_, n, due)| (*n, *due))
                .unwrap_or((0, None));
            queues.push(QueueStats {
                queue: (*name).to_owned(),
                ready,
                scheduled,
                in_flight,
                dead,
                done_total: done,
                outbox_backlog,
                relay_lag_secs: due.map(|d| (now - d).num_milliseconds().max(0) as f64 / 1000.0),
            });
        }
        Ok(QueuesReport {
            queues,
            breakers: self.breakers().await?,
            runs_by_status: by_status.into_iter().collect::<BTreeMap<_, _>>(),
            at: now,
        })
    }

    async fn breakers(&self) -> Result<Vec<BreakerReport>, OperatorError> {
        let mut conn = self.redis.clone();
        let pattern = super::breakers::key(&self.prefix, "*");
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(other)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        let prefix_len = super::breakers::key(&self.prefix, "").len();
        let mut reports = Vec::new();
        for key in keys {
            let states: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(other)?;
            let mut states: Vec<_> = states.into_iter().collect();
            states.sort();
            for (dependency, state) in states {
                reports.push(BreakerReport {
                    process: key[prefix_len..].to_owned(),
                    dependency,
                    state,
                });
            }
        }
        Ok(reports)
    }
}
