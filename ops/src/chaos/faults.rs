//! The faults: drawn from the seed before the soak starts (which faults, in
//! which order, on which process, for how long, and the pauses between
//! them), then injected one at a time while the load runs. Each round of
//! faults is a fresh shuffle of every kind, so the first eight faults of any
//! soak are eight different kinds.
//!
//! After each fault is healed, a recovery probe buys a ticket through the
//! whole system (API, queue, workers, Postgres, provider, webhook): the time
//! from the heal to the probe's confirmed booking is the fault's recovery
//! time.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::load::Load;
use super::purchase::Payment;
use super::smtp_sink::SmtpSink;
use crate::system::System;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `kill -9` of an API process, started again after the pause.
    KillApi,
    /// `kill -9` of a worker process, started again after the pause.
    KillWorker,
    /// Redis stopped and started again with nothing in it.
    RedisRestart,
    /// Postgres shut down (fast: open transactions rolled back) and started.
    PostgresRestart,
    /// Every call to the payment provider answered 500.
    ProviderOutage,
    /// Every call to the payment provider takes 2.5 s more.
    SlowProvider,
    /// The SMTP server refuses connections.
    SmtpOutage,
    /// Every webhook delivered three times, in random order.
    DuplicatedReorderedWebhooks,
}

const KINDS: [FaultKind; 8] = [
    FaultKind::KillApi,
    FaultKind::KillWorker,
    FaultKind::RedisRestart,
    FaultKind::PostgresRestart,
    FaultKind::ProviderOutage,
    FaultKind::SlowProvider,
    FaultKind::SmtpOutage,
    FaultKind::DuplicatedReorderedWebhooks,
];

/// One fault as drawn from the seed.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub kind: FaultKind,
    /// Which API or worker, for the kills (taken modulo their number).
    pub target: usize,
    /// How long the fault lasts (for a kill: how long the process stays dead).
    pub lasts: Duration,
    /// The pause before it, after the previous fault recovered.
    pub pause_before: Duration,
}

/// Enough faults for any soak; the soak ends before they do.
pub fn plan(seed: u64, count: usize) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut planned = Vec::with_capacity(count);
    while planned.len() < count {
        let mut round = KINDS;
        round.shuffle(&mut rng);
        for kind in round {
            let lasts = match kind {
                FaultKind::KillApi | FaultKind::KillWorker => rng.random_range(500..3_000),
                FaultKind::RedisRestart | FaultKind::PostgresRestart => 0,
                _ => rng.random_range(4_000..12_000),
            };
            planned.push(Planned {
                kind,
                target: rng.random_range(0..64),
                lasts: Duration::from_millis(lasts),
                pause_before: Duration::from_millis(rng.random_range(2_000..8_000)),
            });
        }
    }
    planned.truncate(count);
    planned
}

/// A fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    pub kind: FaultKind,
    /// `serve-1`, `work-3`, or the service.
    pub target: String,
    /// Seconds from the soak's start.
    pub at_secs: f64,
    /// From its start to its heal (for a restart: the restart itself).
    pub lasted_secs: f64,
    /// From the heal to the recovery probe's confirmed booking; `None` if
    /// the probe did not get one within [`RECOVERY_LIMIT`].
    pub recovered_secs: Option<f64>,
}

/// How long a recovery probe keeps trying.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(120);

pub struct Injector {
    pub system: System,
    pub smtp: SmtpSink,
    pub load: Arc<Load>,
    next_probe_buyer: usize,
    /// Processes found dead that no fault had killed: `(name, seconds)`.
    pub unexpected_exits: Vec<(String, f64)>,
}

impl Injector {
    /// `load` is the soak's; the probes use its API and world but are never
    /// stopped by its stop, so the last fault's recovery is timed too.
    pub fn new(system: System, smtp: SmtpSink, load: &Load) -> Injector {
        let load = Arc::new(Load {
            api: load.api.clone(),
            world: load.world.clone(),
            tally: load.tally.clone(),
            stop: CancellationToken::new(),
        });
        Injector {
            system,
            smtp,
            load,
            next_probe_buyer: 0,
            unexpected_exits: Vec::new(),
        }
    }

    /// Injects the planned faults in order until `stop`; the fault under
    /// way when it comes is healed first.
    pub async fn run(
        &mut self,
        plan: &[Planned],
        stop: &CancellationToken,
        soak_start: Instant,
    ) -> Vec<Injected> {
        let mut injected = Vec::new();
        for planned in plan {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(planned.pause_before) => {}
            }
            self.restart_the_unexpectedly_dead(soak_start).await;
            let at = soak_start.elapsed();
            let started = Instant::now();
            let target = match self.inject(planned).await {
                Ok(target) => target,
                Err(e) => {
                    eprintln!("chaos: {:?} could not be injected: {e:#}", planned.kind);
                    continue;
                }
            };
            let lasted = started.elapsed();
            let recovered = self.probe().await;
            let fault = Injected {
                kind: planned.kind,
                target,
                at_secs: at.as_secs_f64(),
                lasted_secs: lasted.as_secs_f64(),
                recovered_secs: recovered.map(|d| d.as_secs_f64()),
            };
            println!(
                "chaos: {:>6.1} s  {:<30} on {:<9} lasted {:>5.1} s, recovered in {}",
                fault.at_secs,
                format!("{:?}", fault.kind),
                fault.target,
                fault.lasted_secs,
                fault.recovered_secs.map_or_else(
                    || "— (not within the limit)".into(),
                    |s| format!("{s:.1} s")
                )
            );
            injected.push(fault);
        }
        self.restart_the_unexpectedly_dead(soak_start).await;
        injected
    }

    /// Breaks something, waits `lasts`, heals it. The name of what broke.
    async fn inject(&mut self, planned: &Planned) -> anyhow::Result<String> {
        match planned.kind {
            FaultKind::KillApi | FaultKind::KillWorker => {
                let role = if planned.kind == FaultKind::KillApi {
                    "serve"
                } else {
                    "work"
                };
                let indices: Vec<usize> = (0..self.system.processes.len())
                    .filter(|i| self.system.processes[*i].role == role)
                    .collect();
                anyhow::ensure!(!indices.is_empty(), "no {role} process");
                let index = indices[planned.target % indices.len()];
                self.system.kill(index).await?;
                tokio::time::sleep(planned.lasts).await;
                self.system.respawn(index).await?;
                Ok(format!("{role}-{index}"))
            }
            FaultKind::RedisRestart => {
                self.system.restart_redis_empty().await?;
                Ok("redis".into())
            }
            FaultKind::PostgresRestart => {
                self.system.restart_postgres().await?;
                Ok("postgres".into())
            }
            FaultKind::ProviderOutage => {
                let on = json!({ "outage": true, "outage_mode": "error" });
                self.for_a_while(&on, &json!({ "outage": false }), planned.lasts)
                    .await?;
                Ok("provider".into())
            }
            FaultKind::SlowProvider => {
                let on = json!({ "latency_ms": 2_500 });
                self.for_a_while(&on, &json!({ "latency_ms": 0 }), planned.lasts)
                    .await?;
                Ok("provider".into())
            }
            FaultKind::DuplicatedReorderedWebhooks => {
                let on = json!({ "duplicate_deliveries": 3, "out_of_order": true });
                let off = json!({ "duplicate_deliveries": 1, "out_of_order": false });
                self.for_a_while(&on, &off, planned.lasts).await?;
                Ok("webhooks".into())
            }
            FaultKind::SmtpOutage => {
                self.smtp.close();
                tokio::time::sleep(planned.lasts).await;
                self.smtp.reopen().await?;
                Ok("smtp".into())
            }
        }
    }

    /// The provider's switches `on` for `lasts`, then `off` (retried: the
    /// heal must not be lost).
    async fn for_a_while(
        &self,
        on: &serde_json::Value,
        off: &serde_json::Value,
        lasts: Duration,
    ) -> anyhow::Result<()> {
        self.load.api.provider_switches(on).await?;
        tokio::time::sleep(lasts).await;
        let mut tries = 0;
        while let Err(e) = self.load.api.provider_switches(off).await {
            tries += 1;
            anyhow::ensure!(tries < 20, "the provider could not be healed: {e:#}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// The time until a fresh buyer's paid checkout is confirmed.
    async fn probe(&mut self) -> Option<Duration> {
        let started = Instant::now();
        let probe = &self.load.world.probe;
        let body = json!({ "event_id": probe.id,
                           "items": [{ "ticket_type_id": probe.ticket_types[0], "quantity": 1 }] });
        while started.elapsed() < RECOVERY_LIMIT {
            let buyers = &self.load.world.probe_buyers;
            let bearer = buyers[self.next_probe_buyer % buyers.len()].clone();
            self.next_probe_buyer += 1;
            if self
                .load
                .checkout("recovery probe", &bearer, &body, Payment::Pay, probe.id)
                .await
                .is_some()
            {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        None
    }

    /// Any process that died without being killed is counted and started
    /// again: a crash the soak found.
    async fn restart_the_unexpectedly_dead(&mut self, soak_start: Instant) {
        for index in 0..self.system.processes.len() {
            if !self.system.is_running(index) {
                let p = &self.system.processes[index];
                let name = format!("{}-{index}", p.role);
                eprintln!(
                    "chaos: {name} died on its own; the end of its log:\n{}",
                    p.log_tail()
                );
                self.unexpected_exits
                    .push((name, soak_start.elapsed().as_secs_f64()));
                if let Err(e) = self.system.respawn(index).await {
                    eprintln!("chaos: starting it again failed: {e:#}");
                }
            }
        }
    }
}
