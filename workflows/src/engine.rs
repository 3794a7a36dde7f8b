//! The engine's vocabulary, shared by every workflow kind: statuses, inputs,
//! commands, decisions, child runs, and the [`Workflow`] trait a kind implements.
//!
//! A kind brings its own state, its own local and remote command and outcome
//! types and its own status view; the engine (in `workers`) moves them as JSON
//! and never names a kind.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a run stands. Terminal statuses end the run; `failed` waits for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A step is being carried out.
    Running,
    /// Waiting for a signal, a child run or a timer.
    Waiting,
    /// Undoing completed steps after a failure.
    Compensating,
    Completed,
    /// Failed and cleanly undone.
    Compensated,
    /// Needs an operator.
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Compensating,
        RunStatus::Completed,
        RunStatus::Compensated,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Compensating => "compensating",
            RunStatus::Completed => "completed",
            RunStatus::Compensated => "compensated",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No step will run again without an outside event.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Completed
                | RunStatus::Compensated
                | RunStatus::Cancelled
                | RunStatus::Failed
        )
    }

    /// Over for good: nothing, not even an operator, moves the run again
    /// (`failed` is not: an operator may retry it). A child run that ends so
    /// is reported to its parent.
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Compensated | RunStatus::Cancelled
        )
    }
}

/// Why a run did not complete, in the participant's terms: a stable code and a
/// plain sentence. Never a provider's or the database's own text (that goes to
/// the run's history and the logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// Stable, machine-readable.
    pub code: String,
    /// A plain sentence for the participant: never an outside system's text.
    pub detail: String,
    /// What an outside system (the payment provider) said, word for word: for
    /// operators (the run's state, its history and the logs), never shown to
    /// participants, since it may carry anything (even a key's prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_detail: Option<String>,
}

impl RunError {
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        RunError {
            code: code.to_owned(),
            detail: detail.into(),
            operator_detail: None,
        }
    }

    /// Keeps an outside system's own words for operators.
    pub fn with_operator_detail(mut self, text: impl Into<String>) -> Self {
        self.operator_detail = Some(text.into());
        self
    }
}

/// An error as a run's owner sees it: the stable code and the plain
/// sentence, never the operator's detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorView {
    pub code: String,
    pub detail: String,
}

impl From<&RunError> for ErrorView {
    fn from(error: &RunError) -> Self {
        ErrorView {
            code: error.code.clone(),
            detail: error.detail.clone(),
        }
    }
}

/// A command of a kind: local (our own tables, applied in the transaction of
/// the transition, its outcome fed straight back) or remote (a call to another
/// system, run as its own retried job; its outcome comes back later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "command", rename_all = "snake_case")]
pub enum Command<L, R> {
    Local(L),
    Remote(R),
}

/// A remote command names itself: `key` is unique within the run and names the
/// effect (the provider's idempotency key derives from it, so a retried or
/// duplicated call has one effect); `name` labels metrics.
pub trait RemoteEffect {
    fn key(&self) -> &str;
    fn name(&self) -> &'static str;
}

/// The remote command of a kind that makes no remote call (its emails leave
/// through `send_email`, its refunds through child runs): no value exists, so
/// such a kind cannot issue one and its effects need not handle one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoRemote {}

impl RemoteEffect for NoRemote {
    fn key(&self) -> &str {
        match *self {}
    }
    fn name(&self) -> &'static str {
        match *self {}
    }
}

/// A child run that ended, as its parent hears of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildEnd {
    /// The key the parent started it under.
    pub key: String,
    pub run_id: Uuid,
    pub kind: String,
    pub status: RunStatus,
    /// The child's status view when it ended (its kind's `View`).
    pub view: serde_json::Value,
}

/// Everything that can move a run of a kind whose local and remote outcomes
/// are `L` and `R`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Input<L, R> {
    Start,
    Local(L),
    RemoteDone {
        key: String,
        outcome: R,
    },
    /// A remote command failed for good (fatal error, or retries ran out).
    /// `error` is a stable code; the provider's own text is in the history.
    RemoteFailed {
        key: String,
        error: String,
    },
    Signal {
        name: String,
        payload: serde_json::Value,
    },
    /// A child run ended (completed, compensated or cancelled).
    ChildEnded(ChildEnd),
    /// The run's deadline passed.
    Timer,
    /// The run is called off (an operator, or its owner): compensate what was done.
    Cancel,
    /// An operator re-drives a run that failed for good (from its failed step).
    Retry,
}

impl<L, R> Input<L, R> {
    /// A short name for the run's history.
    pub fn label(&self) -> String {
        match self {
            Input::Start => "start".into(),
            Input::Local(_) => "local_outcome".into(),
            Input::RemoteDone { key, .. } => format!("remote_done:{key}"),
            Input::RemoteFailed { key, .. } => format!("remote_failed:{key}"),
            Input::Signal { name, .. } => format!("signal:{name}"),
            Input::ChildEnded(end) => format!("child_ended:{}", end.key),
            Input::Timer => "timer".into(),
            Input::Cancel => "cancel".into(),
            Input::Retry => "retry".into(),
        }
    }
}

/// A child run to start in the parent's transaction. `(parent, key)` is unique,
/// so a retried step starts nothing twice.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildStart {
    pub key: String,
    pub kind: &'static str,
    pub step: &'static str,
    pub state: serde_json::Value,
    pub view: serde_json::Value,
    /// Whose run it is (the participant it acts for), for the status API.
    pub owner_id: Option<Uuid>,
}

impl ChildStart {
    /// A child of kind `W` starting from `state`.
    pub fn of<W: Workflow>(
        key: impl Into<String>,
        state: &W::State,
        owner_id: Option<Uuid>,
    ) -> Self {
        ChildStart {
            key: key.into(),
            kind: W::KIND,
            step: W::initial_step(),
            state: serde_json::to_value(state).unwrap_or_default(),
            view: serde_json::to_value(W::view(state)).unwrap_or_default(),
            owner_id,
        }
    }
}

/// A workflow's answer to one input. `C` is the kind's [`Command`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<S, C> {
    pub state: S,
    pub status: RunStatus,
    pub step: &'static str,
    pub command: Option<C>,
    /// Child runs to start in this transaction.
    pub children: Vec<ChildStart>,
    /// When a waiting run wakes up by itself (its deadline).
    pub wake_at: Option<DateTime<Utc>>,
    /// False when the input meant nothing in this state (it is dropped).
    pub accepted: bool,
}

/// The decision type of kind `W`.
pub type DecisionOf<W> =
    Decision<<W as Workflow>::State, Command<<W as Workflow>::Local, <W as Workflow>::Remote>>;
/// The input type of kind `W`.
pub type InputOf<W> = Input<<W as Workflow>::LocalOutcome, <W as Workflow>::RemoteOutcome>;

/// What every type the engine stores or sends must be.
pub trait Wire:
    Debug + Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
}
impl<T: Debug + Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static> Wire
    for T
{
}

/// A workflow kind: pure code from (state, input, now) to a decision.
pub trait Workflow: Send + Sync + 'static {
    /// The kind's name, stored with each run.
    const KIND: &'static str;
    type State: Wire;
    type Local: Wire;
    type LocalOutcome: Wire;
    type Remote: Wire + RemoteEffect;
    type RemoteOutcome: Wire;
    /// What the run's owner sees at `GET /v1/workflows/{id}` besides the
    /// common fields; kept beside the run at every transition.
    type View: Serialize;

    fn decide(state: &Self::State, input: &InputOf<Self>, now: DateTime<Utc>) -> DecisionOf<Self>;

    /// The step a fresh run starts at.
    fn initial_step() -> &'static str;

    fn view(state: &Self::State) -> Self::View;

    /// The participant's money this run holds or may still take (an open
    /// payment intent, a payment not given back, a refund owed), in words for
    /// an operator. Such a run must be compensated, never failed for good:
    /// nothing would cancel or refund it afterwards.
    fn money_at_stake(_state: &Self::State) -> Option<String> {
        None
    }
}
