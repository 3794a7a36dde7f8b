//! The registry of workflow kinds: kind name → erased handler.
//!
//! A kind is a [`Workflow`] (pure, in `workflows`) plus its [`Effects`]: how
//! its local commands change our tables, and how its remote commands reach
//! the adapters shared by all kinds (the payment provider). The engine
//! (`engine/`) looks a run's kind up here and never names one.
//!
//! The standard kinds are listed once, in [`standard`]; a test may
//! [`register`] a kind of its own.

pub mod checkout;
pub mod event_cancellation;
pub mod notices;
pub mod payment_calls;
pub mod refund;
pub mod reminder;
pub mod waitlist_offer;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{LazyLock, RwLock};

use anyhow::Context;
use boxoffice_models::holds::Line;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_runs::Run;
use boxoffice_workflows::engine::{RemoteEffect, RunStatus, Workflow};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::adapters::payments::{PaymentProvider, ProviderError};
use crate::engine::ahead::Ahead;
use crate::engine::executor::{At, advance_locked};
use crate::engine::{Advanced, Trigger};

/// What a local command gets besides the connection.
pub struct LocalCx<'a> {
    pub signer: &'a TicketSigner,
    pub now: DateTime<Utc>,
    /// The hold taken ahead of this transaction, if one was (see `engine::ahead`).
    pub ahead: Option<&'a Ahead>,
}

/// The side effects of a workflow kind.
pub trait Effects: Workflow {
    /// Applies a local command inside the run's transaction. Must be safe to
    /// repeat for the run (a retried step applies it again).
    fn apply_local(
        conn: &mut AsyncPgConnection,
        cx: &LocalCx<'_>,
        run_id: Uuid,
        command: &Self::Local,
    ) -> impl Future<Output = anyhow::Result<Self::LocalOutcome>> + Send;

    /// Carries out a remote command: one attempt; the engine retries.
    fn call_remote(
        payments: &dyn PaymentProvider,
        run_id: Uuid,
        command: &Self::Remote,
    ) -> impl Future<Output = Result<Self::RemoteOutcome, ProviderError>> + Send;

    /// The capacity this local command takes, when it may be taken ahead of
    /// the run's transaction (a hot ticket type's row lock must not last a
    /// whole step; see `engine::ahead`).
    fn hold_ahead(_command: &Self::Local) -> Option<(Vec<Line>, DateTime<Utc>)> {
        None
    }

    /// Gives back what a run reserved when an operator fails it for good
    /// (nothing would ever release it afterwards).
    fn abandon(
        _conn: &mut AsyncPgConnection,
        _run_id: Uuid,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// A registered kind, with its types erased: the engine's view of it.
pub trait Kind: Send + Sync {
    fn name(&self) -> &'static str;

    /// Advances a locked run of this kind (see `engine::executor`).
    fn advance<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        signer: &'a TicketSigner,
        run: Run,
        trigger: Trigger,
        at: At<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Advanced>>;

    /// The hold a run that has not started yet takes first, if any.
    fn first_hold(
        &self,
        run: &Run,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<(Vec<Line>, DateTime<Utc>)>>;

    /// See [`Workflow::money_at_stake`]; `Err` when the state does not decode.
    fn money_at_stake(&self, run: &Run) -> anyhow::Result<Option<String>>;

    /// Carries out a remote command given as stored (JSON); the outcome as JSON.
    fn call_remote<'a>(
        &'a self,
        payments: &'a dyn PaymentProvider,
        run_id: Uuid,
        command: &'a serde_json::Value,
    ) -> BoxFuture<'a, anyhow::Result<Result<serde_json::Value, ProviderError>>>;

    /// The remote command's key and name (for idempotency keys and metrics).
    fn remote_names(&self, command: &serde_json::Value) -> anyhow::Result<(String, &'static str)>;

    fn abandon<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        run_id: Uuid,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

struct Registered<W>(PhantomData<fn() -> W>);

impl<W: Effects> Kind for Registered<W> {
    fn name(&self) -> &'static str {
        W::KIND
    }

    fn advance<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        signer: &'a TicketSigner,
        run: Run,
        trigger: Trigger,
        at: At<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Advanced>> {
        Box::pin(advance_locked::<W>(conn, signer, run, trigger, at))
    }

    fn first_hold(
        &self,
        run: &Run,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<(Vec<Line>, DateTime<Utc>)>> {
        use boxoffice_workflows::engine::{Command, Input};
        if RunStatus::parse(&run.status) != Some(RunStatus::Running)
            || run.step != W::initial_step()
        {
            return Ok(None);
        }
        let state: W::State =
            serde_json::from_value(run.state.clone()).context("decoding the run's state")?;
        let decision = W::decide(&state, &Input::Start, now);
        Ok(match decision.command {
            Some(Command::Local(command)) if decision.accepted => W::hold_ahead(&command),
            _ => None,
        })
    }

    fn money_at_stake(&self, run: &Run) -> anyhow::Result<Option<String>> {
        let state: W::State =
            serde_json::from_value(run.state.clone()).context("decoding the run's state")?;
        Ok(W::money_at_stake(&state))
    }

    fn call_remote<'a>(
        &'a self,
        payments: &'a dyn PaymentProvider,
        run_id: Uuid,
        command: &'a serde_json::Value,
    ) -> BoxFuture<'a, anyhow::Result<Result<serde_json::Value, ProviderError>>> {
        Box::pin(async move {
            let command: W::Remote =
                serde_json::from_value(command.clone()).context("decoding the remote command")?;
            Ok(match W::call_remote(payments, run_id, &command).await {
                Ok(outcome) => Ok(serde_json::to_value(outcome)?),
                Err(err) => Err(err),
            })
        })
    }

    fn remote_names(&self, command: &serde_json::Value) -> anyhow::Result<(String, &'static str)> {
        let command: W::Remote =
            serde_json::from_value(command.clone()).context("decoding the remote command")?;
        Ok((command.key().to_owned(), command.name()))
    }

    fn abandon<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        run_id: Uuid,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(W::abandon(conn, run_id))
    }
}

type Kinds = HashMap<&'static str, &'static dyn Kind>;

fn add<W: Effects>(kinds: &mut Kinds) {
    kinds.insert(W::KIND, Box::leak(Box::new(Registered::<W>(PhantomData))));
}

/// Every standard kind: one line each.
fn standard() -> Kinds {
    let mut kinds = Kinds::new();
    add::<boxoffice_workflows::checkout::Checkout>(&mut kinds);
    add::<boxoffice_workflows::refund::Refund>(&mut kinds);
    add::<boxoffice_workflows::event_cancellation::EventCancellation>(&mut kinds);
    add::<boxoffice_workflows::waitlist_offer::WaitlistOffer>(&mut kinds);
    add::<boxoffice_workflows::reminder::Reminder>(&mut kinds);
    add::<boxoffice_workflows::reminder::OrganizerMessage>(&mut kinds);
    kinds
}

static REGISTRY: LazyLock<RwLock<Kinds>> = LazyLock::new(|| RwLock::new(standard()));

/// Registers one more kind in this process (a test's own kind).
pub fn register<W: Effects>() {
    let mut kinds = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    add::<W>(&mut kinds);
}

/// The handler of a kind.
pub fn of(kind: &str) -> anyhow::Result<&'static dyn Kind> {
    let kinds = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    kinds
        .get(kind)
        .copied()
        .with_context(|| format!("unknown workflow kind {kind:?}"))
}

/// The names of every registered kind.
pub fn names() -> Vec<&'static str> {
    let kinds = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let mut names: Vec<_> = kinds.keys().copied().collect();
    names.sort_unstable();
    names
}
