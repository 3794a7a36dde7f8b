//! What the sale costs: the CPU time of each kind of process, the Postgres
//! transactions and statements, and the Redis commands, between two readings.
//!
//! CPU time comes from `/proc/<pid>/stat` (user + system time of every
//! thread). A Postgres backend lives only as long as its connection, so the
//! server's CPU is the postmaster's own time, the time of the children it has
//! reaped (the kernel adds it to the parent's `cutime`/`cstime`) and the time
//! of the children still running. The load generator and the sandbox are this
//! very process.
//!
//! `/proc/<pid>/stat` counts in clock ticks (10 ms), cut down at each reading:
//! over the forty-odd backends of a sale, that is tens of milliseconds either
//! way, as much as a 50-buyer sale's whole difference between two builds. The
//! processes that are still running are therefore read from
//! `/proc/<pid>/task/<tid>/schedstat` instead, the scheduler's own count in
//! nanoseconds (its first field), summed over their threads; only the reaped
//! children's time, which the kernel keeps nowhere else, is in ticks. Boxoffice's own processes
//! stay on `stat`: a thread that ended (a blocking task's) is in their
//! `stat` and in no `schedstat`.
//!
//! Statements come from `pg_stat_statements` (updated as each statement ends),
//! transactions from `pg_stat_database` (which backends publish up to
//! [`STATS_DELAY`] after their work: the reading after the sale waits for it),
//! commands from Redis's `INFO commandstats`.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// How long an idle Postgres backend may keep its counts before publishing
/// them (`PGSTAT_IDLE_INTERVAL`, 10 s), with a margin.
pub const STATS_DELAY: Duration = Duration::from_secs(11);

/// The kernel's clock ticks for `/proc` times (`USER_HZ`, 100 on every Linux
/// architecture Boxoffice runs on).
const TICKS_PER_SEC: f64 = 100.0;

/// The label of this process's own CPU.
pub const LOAD_GENERATOR: &str = "load generator + sandbox";

/// Where to read from.
#[derive(Debug, Clone)]
pub struct Meter {
    /// `(kind, pid)` of Boxoffice's own processes (`serve`, `work`, `all`).
    pub processes: Vec<(String, u32)>,
    pub postgres_pid: Option<u32>,
    pub redis_pid: Option<u32>,
    pub database_url: String,
    pub redis_url: Option<String>,
}

/// CPU seconds by kind of process.
pub type Cpu = BTreeMap<String, f64>;

/// Counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub transactions: Option<i64>,
    pub statements: Option<i64>,
    pub redis_commands: Option<i64>,
}

/// What the sale cost the servers.
#[derive(Debug, Clone, Default)]
pub struct SaleCounts {
    /// From just before the sale until [`STATS_DELAY`] after its end.
    pub sale: Counts,
    /// The statements of the [`STATS_DELAY`] after the sale, when the
    /// system was idle: its background polling, included in `sale`.
    pub idle_statements: Option<i64>,
}

impl Meter {
    /// CPU seconds of every kind of process so far.
    pub fn cpu(&self) -> Cpu {
        let mut cpu = Cpu::new();
        for (kind, pid) in &self.processes {
            if let Some(t) = own_seconds(*pid) {
                *cpu.entry(kind.clone()).or_default() += t;
            }
        }
        if let Some(pid) = self.postgres_pid {
            cpu.insert("postgres".into(), tree_seconds(pid));
        }
        if let Some(t) = self
            .redis_pid
            .and_then(|pid| run_seconds(pid).or_else(|| own_seconds(pid)))
        {
            cpu.insert("redis".into(), t);
        }
        if let Some(t) = own_seconds(std::process::id()) {
            cpu.insert(LOAD_GENERATOR.into(), t);
        }
        cpu
    }

    /// The database's and Redis's counters so far; a counter the server does
    /// not offer (no `pg_stat_statements`) is `None`.
    pub async fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        if let Ok(mut conn) = AsyncPgConnection::establish(&self.database_url).await {
            counts.transactions = transactions(&mut conn).await.ok();
            counts.statements = statements(&mut conn).await.ok();
        }
        if let Some(url) = &self.redis_url {
            counts.redis_commands = redis_commands(url).await.ok();
        }
        counts
    }
}

/// Makes `pg_stat_statements` readable in the application database, when the
/// server preloads it (Boxoffice's own servers do). Harmless otherwise.
pub async fn enable_statement_counts(database_url: &str) {
    if let Ok(mut conn) = AsyncPgConnection::establish(database_url).await {
        let _ = diesel::sql_query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut conn)
            .await;
    }
}

/// One statement's share of the database's time.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct Statement {
    #[diesel(sql_type = BigInt)]
    pub calls: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub total_ms: f64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub query: String,
}

/// Starts the application database's statement counts afresh, so that
/// [`top_statements`] tells of the sale alone. Other databases' counts are
/// the server's operators', and left as they are.
pub async fn reset_statements(database_url: &str) {
    if let Ok(mut conn) = AsyncPgConnection::establish(database_url).await {
        let _ = diesel::sql_query(
            "SELECT pg_stat_statements_reset(0, d.oid, 0)
               FROM pg_database d WHERE d.datname = current_database()",
        )
        .execute(&mut conn)
        .await;
    }
}

/// The statements of the application database that took the most time,
/// transaction control included; empty without `pg_stat_statements`.
pub async fn top_statements(database_url: &str, n: i64) -> Vec<Statement> {
    let Ok(mut conn) = AsyncPgConnection::establish(database_url).await else {
        return Vec::new();
    };
    diesel::sql_query(
        "SELECT s.calls::bigint AS calls, s.total_exec_time::float8 AS total_ms,
                regexp_replace(s.query, '[[:space:]]+', ' ', 'g') AS query
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = current_database()
          ORDER BY s.total_exec_time DESC LIMIT $1",
    )
    .bind::<BigInt, _>(n)
    .load(&mut conn)
    .await
    .unwrap_or_default()
}

/// `after - before`, kind by kind.
pub fn spent(before: &Cpu, after: &Cpu) -> Cpu {
    after
        .iter()
        .map(|(kind, t)| (kind.clone(), t - before.get(kind).copied().unwrap_or(0.0)))
        .collect()
}

impl Counts {
    pub fn since(&self, before: &Counts) -> Counts {
        let diff = |a: Option<i64>, b: Option<i64>| Some(a? - b?);
        Counts {
            transactions: diff(self.transactions, before.transactions),
            statements: diff(self.statements, before.statements),
            redis_commands: diff(self.redis_commands, before.redis_commands),
        }
    }
}

/// `utime + stime` of one process (all its threads), in seconds.
fn own_seconds(pid: u32) -> Option<f64> {
    let [utime, stime, _, _] = stat_times(pid)?;
    Some((utime + stime) as f64 / TICKS_PER_SEC)
}

/// A process with its reaped and its living children, in seconds: the
/// living ones to the nanosecond, the reaped ones in ticks.
fn tree_seconds(pid: u32) -> f64 {
    let living = |p: u32| {
        run_seconds(p).unwrap_or_else(|| {
            stat_times(p).map_or(0.0, |[u, s, _, _]| (u + s) as f64 / TICKS_PER_SEC)
        })
    };
    let reaped = stat_times(pid).map_or(0, |[_, _, cu, cs]| cu + cs) as f64 / TICKS_PER_SEC;
    let children: f64 = children_of(pid).into_iter().map(living).sum();
    living(pid) + reaped + children
}

/// The time the scheduler ran the threads of `pid` that are alive now, in
/// seconds (`/proc/<pid>/task/*/schedstat`, nanoseconds); `None` where the
/// kernel does not offer it.
fn run_seconds(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut nanos = 0u64;
    for task in tasks.flatten() {
        let line = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        nanos += run_nanos(&line)?;
    }
    Some(nanos as f64 / 1e9)
}

/// The first field of a `schedstat` line: time on a CPU, in nanoseconds.
fn run_nanos(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// `utime, stime, cutime, cstime` of `/proc/<pid>/stat`, in clock ticks.
fn stat_times(pid: u32) -> Option<[u64; 4]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_times(&stat)
}

fn parse_times(stat: &str) -> Option<[u64; 4]> {
    // The command name (field 2) is in parentheses and may hold spaces; the
    // fields after it start with the state (field 3). utime is field 14.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some([field(14)?, field(15)?, field(16)?, field(17)?])
}

fn parent_of(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parent_of(&s))
                == Some(parent)
        })
        .collect()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn transactions(conn: &mut AsyncPgConnection) -> diesel::QueryResult<i64> {
    let c: Count = diesel::sql_query(
        "SELECT (xact_commit + xact_rollback)::bigint AS n
           FROM pg_stat_database WHERE datname = current_database()",
    )
    .get_result(conn)
    .await?;
    Ok(c.n)
}

/// Every statement of the application database, transaction control
/// (`BEGIN`, `COMMIT`, ...) apart: those are counted as transactions.
async fn statements(conn: &mut AsyncPgConnection) -> diesel::QueryResult<i64> {
    let c: Count = diesel::sql_query(
        "SELECT COALESCE(sum(calls), 0)::bigint AS n
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = current_database()
            AND s.query !~* '^[[:space:]]*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|START TRANSACTION)'",
    )
    .get_result(conn)
    .await?;
    Ok(c.n)
}

async fn redis_commands(url: &str) -> anyhow::Result<i64> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await?;
    Ok(total_calls(&info))
}

/// The sum of `calls=` over `INFO commandstats` lines
/// (`cmdstat_get:calls=2,usec=...`).
fn total_calls(info: &str) -> i64 {
    info.lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<i64>()
                .ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_times_after_a_name_with_spaces() {
        let stat = "4242 (boxoffice w) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 40 7 3 20 0 8 0";
        assert_eq!(parse_times(stat), Some([250, 40, 7, 3]));
        assert_eq!(parent_of(stat), Some(1));
    }

    #[test]
    fn this_process_has_spent_cpu() {
        // Spin until the kernel has counted a tick of this test's own work.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while own_seconds(std::process::id()).unwrap_or(0.0) == 0.0
            && start.elapsed() < Duration::from_secs(5)
        {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(own_seconds(std::process::id()).is_some_and(|t| t > 0.0));
    }

    #[test]
    fn reads_the_run_time_of_a_schedstat_line() {
        assert_eq!(run_nanos("216771180 21947410 655\n"), Some(216_771_180));
        assert_eq!(run_nanos(""), None);
    }

    #[test]
    fn schedstat_counts_below_a_clock_tick() {
        // This thread's own count: other tests may run beside it.
        let now = || {
            let line = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
            run_nanos(&line).unwrap()
        };
        let start = now();
        let mut x = 0u64;
        while now() - start < 1_000_000 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let spent = now() - start;
        // A millisecond of work reads as about a millisecond, where `stat`
        // reads 0 or 10 ms.
        assert!(
            (1_000_000..5_000_000).contains(&spent),
            "{spent} ns for about 1 ms of work"
        );
        assert!(run_seconds(std::process::id()).is_some_and(|t| t > 0.0));
    }

    #[test]
    fn sums_redis_command_calls() {
        let info = "# Commandstats\r\ncmdstat_get:calls=2,usec=5,usec_per_call=2.5\r\ncmdstat_evalsha:calls=40,usec=900\r\n";
        assert_eq!(total_calls(info), 42);
    }
}
