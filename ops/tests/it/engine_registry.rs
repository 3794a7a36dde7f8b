//! A workflow kind defined here, in the test, and registered at run time:
//! the engine carries it end to end (start, a local command, a remote
//! command, a child run whose end reaches its parent) through the same
//! queues and workers as the standard kinds, with no engine code naming it.

use std::time::{Duration, Instant};

use boxoffice_models::workflow_runs::{self, NewRun};
use boxoffice_workers::adapters::payments::{PaymentProvider, ProviderError};
use boxoffice_workers::kinds::{Effects, LocalCx};
use boxoffice_workflows::engine::{
    ChildStart, Command, Decision, DecisionOf, InputOf, RemoteEffect, RunStatus, Workflow,
};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::checkout_support::count;
use crate::harness::TestApp;

/// Doubles a number twice over: the parent doubles its own (remotely), then
/// starts a child that doubles the result; the parent completes with both.
struct Doubler;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    Start,
    Marking,
    Doubling,
    AwaitingChild,
    Completed,
}

impl Phase {
    fn step(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Marking => "marking",
            Phase::Doubling => "doubling",
            Phase::AwaitingChild => "awaiting_child",
            Phase::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DoublerState {
    phase: Phase,
    number: i64,
    /// A child starts no child of its own.
    is_child: bool,
    doubled: Option<i64>,
    marks: Option<i64>,
    child_doubled: Option<i64>,
}

/// Written to a table of this test, in the run's transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Mark {
    note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Marked {
    /// Marks of this run in the table after this one.
    rows: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Double {
    n: i64,
}

impl RemoteEffect for Double {
    fn key(&self) -> &str {
        "double"
    }
    fn name(&self) -> &'static str {
        "double"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doubled {
    n: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DoublerView {
    number: i64,
    doubled: Option<i64>,
    child_doubled: Option<i64>,
    marks: Option<i64>,
}

fn decision(
    state: DoublerState,
    status: RunStatus,
    command: Option<Command<Mark, Double>>,
    children: Vec<ChildStart>,
    accepted: bool,
) -> DecisionOf<Doubler> {
    Decision {
        step: state.phase.step(),
        state,
        status,
        command,
        children,
        wake_at: None,
        accepted,
    }
}

impl Workflow for Doubler {
    const KIND: &'static str = "test_doubler";
    type State = DoublerState;
    type Local = Mark;
    type LocalOutcome = Marked;
    type Remote = Double;
    type RemoteOutcome = Doubled;
    type View = DoublerView;

    fn initial_step() -> &'static str {
        Phase::Start.step()
    }

    fn view(state: &DoublerState) -> DoublerView {
        DoublerView {
            number: state.number,
            doubled: state.doubled,
            child_doubled: state.child_doubled,
            marks: state.marks,
        }
    }

    fn decide(
        state: &DoublerState,
        input: &InputOf<Doubler>,
        _now: DateTime<Utc>,
    ) -> DecisionOf<Doubler> {
        use boxoffice_workflows::engine::Input;
        let mut next = state.clone();
        match (state.phase, input) {
            (Phase::Start, Input::Start) => {
                next.phase = Phase::Marking;
                let note = format!("started with {}", state.number);
                let mark = Command::Local(Mark { note });
                decision(next, RunStatus::Running, Some(mark), Vec::new(), true)
            }
            (Phase::Marking, Input::Local(Marked { rows })) => {
                next.marks = Some(*rows);
                next.phase = Phase::Doubling;
                let double = Command::Remote(Double { n: state.number });
                decision(next, RunStatus::Running, Some(double), Vec::new(), true)
            }
            (Phase::Doubling, Input::RemoteDone { key, outcome }) if key == "double" => {
                next.doubled = Some(outcome.n);
                if state.is_child {
                    next.phase = Phase::Completed;
                    return decision(next, RunStatus::Completed, None, Vec::new(), true);
                }
                let child = DoublerState {
                    phase: Phase::Start,
                    number: outcome.n,
                    is_child: true,
                    doubled: None,
                    marks: None,
                    child_doubled: None,
                };
                next.phase = Phase::AwaitingChild;
                let start = ChildStart::of::<Doubler>("child", &child, None);
                decision(next, RunStatus::Waiting, None, vec![start], true)
            }
            (Phase::AwaitingChild, Input::ChildEnded(end))
                if end.key == "child" && end.status == RunStatus::Completed =>
            {
                next.child_doubled = end.view.get("doubled").and_then(|v| v.as_i64());
                next.phase = Phase::Completed;
                decision(next, RunStatus::Completed, None, Vec::new(), true)
            }
            _ => {
                let status = match state.phase {
                    Phase::AwaitingChild => RunStatus::Waiting,
                    Phase::Completed => RunStatus::Completed,
                    _ => RunStatus::Running,
                };
                decision(state.clone(), status, None, Vec::new(), false)
            }
        }
    }
}

impl Effects for Doubler {
    async fn apply_local(
        conn: &mut AsyncPgConnection,
        _cx: &LocalCx<'_>,
        run_id: Uuid,
        command: &Mark,
    ) -> anyhow::Result<Marked> {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        // Safe to repeat: one mark per run.
        diesel::sql_query(
            "INSERT INTO doubler_marks (run_id, note) VALUES ($1, $2) ON CONFLICT (run_id) DO NOTHING",
        )
        .bind::<diesel::sql_types::Uuid, _>(run_id)
        .bind::<diesel::sql_types::Text, _>(&command.note)
        .execute(conn)
        .await?;
        let row: N = diesel::sql_query("SELECT count(*) AS n FROM doubler_marks WHERE run_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(run_id)
            .get_result(conn)
            .await?;
        Ok(Marked { rows: row.n })
    }

    /// Computed here: the point is the path through the effect queue.
    async fn call_remote(
        _payments: &dyn PaymentProvider,
        _run_id: Uuid,
        command: &Double,
    ) -> Result<Doubled, ProviderError> {
        Ok(Doubled { n: command.n * 2 })
    }
}

#[derive(diesel::QueryableByName)]
struct RunRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    view: serde_json::Value,
}

async fn run_row(conn: &mut AsyncPgConnection, id: Uuid) -> RunRow {
    diesel::sql_query("SELECT status, view FROM workflow_runs WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .get_result(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_kind_registered_by_a_test_runs_a_local_a_remote_command_and_a_child() {
    boxoffice_workers::kinds::register::<Doubler>();
    assert!(boxoffice_workers::kinds::names().contains(&Doubler::KIND));

    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    conn.batch_execute("CREATE TABLE doubler_marks (run_id uuid PRIMARY KEY, note text NOT NULL)")
        .await
        .unwrap();
    let state = DoublerState {
        phase: Phase::Start,
        number: 21,
        is_child: false,
        doubled: None,
        marks: None,
        child_doubled: None,
    };
    let id = Uuid::now_v7();
    let new = NewRun {
        id,
        kind: Doubler::KIND.into(),
        status: RunStatus::Running.as_str().into(),
        step: Doubler::initial_step().into(),
        state: serde_json::to_value(&state).unwrap(),
        correlation_id: None,
        owner_id: None,
        idempotency_key: None,
        request_hash: None,
        view: serde_json::to_value(Doubler::view(&state)).unwrap(),
        parent_id: None,
        child_key: None,
    };
    workflow_runs::start(&mut conn, &new).await.unwrap();
    app.start_workers("http://127.0.0.1:9");

    let started = Instant::now();
    let parent = loop {
        let row = run_row(&mut conn, id).await;
        if RunStatus::parse(&row.status).is_some_and(RunStatus::is_finished) {
            break row;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run did not finish: {} {}",
            row.status,
            row.view
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(parent.status, "completed", "{}", parent.view);
    // Local command: its mark, seen in the run's own transaction.
    assert_eq!(parent.view["marks"], 1, "{}", parent.view);
    // Remote command: 21 doubled.
    assert_eq!(parent.view["doubled"], 42, "{}", parent.view);
    // The child doubled the parent's result, and its end reached the parent.
    assert_eq!(parent.view["child_doubled"], 84, "{}", parent.view);

    let sql = format!(
        "SELECT 1 FROM workflow_runs WHERE parent_id = '{id}' AND child_key = 'child'
            AND kind = 'test_doubler' AND status = 'completed'"
    );
    assert_eq!(count(&app.db.url, &sql).await, 1, "one child, completed");
    assert_eq!(
        count(&app.db.url, "SELECT 1 FROM doubler_marks").await,
        2,
        "the parent and the child each wrote their mark once"
    );
    let history = format!(
        "SELECT 1 FROM workflow_steps WHERE run_id = '{id}' AND input IN ('start', 'local_outcome', 'remote_done:double', 'child_ended:child') AND outcome = 'advanced'"
    );
    assert_eq!(
        count(&app.db.url, &history).await,
        4,
        "the parent's history"
    );
}
