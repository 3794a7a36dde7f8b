//! A new run's first step, taken by the API process that started it, as the
//! API sees it: a trait object in [`crate::AppState`]. The implementation is
//! the workers' engine (`workers::engine::first_step`, wired by `ops`), so the
//! API keeps its layering (it may not import `workers`).
//!
//! A checkout's first step is its hold: taken here, the `POST` answers with
//! the decision (held until a deadline, or sold out). A checkout that starts
//! when its seats are gone already is decided inside the transaction that
//! creates it. What the step issues next (a paid checkout's payment intent)
//! the implementation may carry out after the answer, on its own.

use boxoffice_models::workflow_runs::{NewRun, Run, Transition};
use boxoffice_models::workflow_steps::NewStepRecord;
use diesel_async::AsyncPgConnection;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::starts_in_flight::StartsInFlight;

/// Where a run stands after its first step.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstStep {
    pub status: String,
    pub step: String,
    /// The run's status view, as `GET /v1/workflows/{id}` shows it.
    pub view: serde_json::Value,
    /// The run's version there: its status's `ETag`.
    pub version: i32,
}

pub type Taken<'a> = BoxFuture<'a, anyhow::Result<Option<FirstStep>>>;

/// A run decided as it was inserted, its seats gone already.
#[derive(Debug)]
pub enum SoldOut {
    /// Inserted ended: its id, and where it stands.
    Decided(Uuid, FirstStep),
    /// The request's idempotency key had started this run before: nothing
    /// was inserted.
    StartedBefore(Box<Run>),
}

pub type Refused<'a> = BoxFuture<'a, anyhow::Result<Option<SoldOut>>>;

/// A start decided sold out before it was written, and not written: what
/// its insert must carry, for the caller to insert it with other starts.
#[derive(Debug)]
pub struct DecidedStart {
    /// Where the run stands once inserted (version 1).
    pub step: FirstStep,
    /// The run's first transition: its insert writes the row as it leaves it.
    pub transition: Transition,
    /// The step's history, to insert once the run is.
    pub history: Vec<NewStepRecord>,
}

pub type Deciding<'a> = BoxFuture<'a, anyhow::Result<Option<DecidedStart>>>;

/// What the batch that took a start's first step does once it has committed
/// (hands the payment intent the step issued to the process's calls).
pub type AfterCommit = Box<dyn FnOnce() + Send>;

/// A start's first step taken inside its batch's transaction.
pub struct TakenTogether {
    /// Where the run stands once the batch commits.
    pub step: FirstStep,
    /// To do after the commit, never before: until then the run does not
    /// exist for anyone else.
    pub after_commit: Option<AfterCommit>,
}

/// What became of a start a batch handed to [`FirstSteps::take_together`].
pub enum Together {
    /// Inserted past its first step.
    Stepped(TakenTogether),
    /// Inserted as started: the caller writes its start message, and its
    /// step is taken as usual ([`FirstSteps::take`]).
    Started(Box<Run>),
    /// Not inserted: its idempotency key had started a run before.
    NotInserted,
}

pub type TakingTogether<'a> = BoxFuture<'a, anyhow::Result<Vec<Together>>>;
pub type Finishing<'a> = BoxFuture<'a, ()>;

pub trait FirstSteps: Send + Sync {
    /// When the start message of a run created now comes due, for a worker
    /// to take the first step if this process did not.
    fn backstop_due(&self) -> chrono::DateTime<chrono::Utc>;

    /// Takes the first step of `run`, created on `conn` with its start
    /// message `backstop_id` delayed (`None` for a retry of the request,
    /// which does not know it), on that same connection. `Ok(None)` when the
    /// run did not move. On an error the run has been handed to the workers:
    /// the caller answers with the run as it was created.
    fn take<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        run: &'a Run,
        backstop_id: Option<i64>,
    ) -> Taken<'a>;

    /// Inside the transaction about to insert `new` on `conn`: when the
    /// seats its first step would hold are gone already, takes the step
    /// there and inserts the run as it leaves it (ended sold out, in that same
    /// commit, with no start message); `Ok(None)` when the run is to be
    /// inserted and its step taken as usual ([`Self::take`]).
    fn insert_if_sold_out<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        new: &'a NewRun,
    ) -> Refused<'a>;

    /// For a start gathered with others (`routes::checkouts::gathered`):
    /// when the seats its first step would hold do not fit in `left` (what
    /// is left of its ticket types, read in the batch's transaction on
    /// `conn`), takes that step without writing anything and returns what
    /// the run's insert must carry; `Ok(None)` when it is to be inserted as
    /// started and its step taken as usual ([`Self::take`]).
    fn decide_if_sold_out<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        new: &'a NewRun,
        left: &'a [(Uuid, i32)],
    ) -> Deciding<'a>;

    /// For the starts of a batch that may fit (`news`), inside its
    /// transaction on `conn`: holds their seats together, takes each one's
    /// first step there and inserts each run as its step leaves it, so that
    /// the batch's commit writes them held (or sold out). One answer per
    /// start, in order; a run whose step is left to [`Self::take`] is
    /// inserted as started (the caller writes its start message).
    fn take_together<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        news: &'a [&'a NewRun],
    ) -> TakingTogether<'a>;

    /// Where the process counts the checkout starts it has taken in and not
    /// answered yet: what the first steps issue next may wait for a flood of
    /// them to pass (`crate::starts_in_flight`). By default a count nobody
    /// waits for.
    fn starts_in_flight(&self) -> StartsInFlight {
        StartsInFlight::default()
    }

    /// Called once the process has stopped taking requests, before it exits:
    /// finishes, within a bound, what first steps left to do after their
    /// answers (a payment intent still to be made), so that a restart does
    /// not leave those buyers waiting for the commands' backstops. What is
    /// not done by then still has its backstop.
    fn finish(&self) -> Finishing<'_> {
        Box::pin(std::future::ready(()))
    }
}
