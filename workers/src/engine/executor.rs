//! Advancing a run: the one place where runs change.

use std::collections::VecDeque;

use anyhow::Context;
use boxoffice_models::ticket_codes::TicketSigner;
use boxoffice_models::workflow_runs::{self, Run, Transition};
use boxoffice_models::workflow_steps::{self, NewStepRecord};
use boxoffice_workflows::engine::{
    ChildEnd, ChildStart, Command, Input, InputOf, RemoteEffect, RunStatus,
};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use super::advance_io::{Advanced, Dispatch, EngineInput, INLINE_GRACE, Trigger};
use super::ahead::Ahead;
use super::children;
use super::messages::RunEffect;
use super::step_writes::{CollectedWrites, DeferredWrites, NeedsRow, RunRow, StepWrites};
use crate::kinds::{self, Effects, LocalCx};

mod entry;
mod left_to_caller;
mod unwritten;
mod waiting_input;

pub use entry::{advance, advance_holding, advance_on, advance_past_start};
pub(super) use entry::{advance_at, advance_collected};

use left_to_caller::{leave, left_to_caller};
pub use unwritten::Unwritten;
pub(super) use unwritten::{advance_unwritten, decide_unwritten};
use waiting_input::waiting_input;

/// The participant's money the run has at stake, asked of its workflow; `Err`
/// when its state does not decode (or its kind is unknown) and nobody can tell.
pub fn money_at_stake(run: &workflow_runs::Run) -> anyhow::Result<Option<String>> {
    kinds::of(&run.kind)?.money_at_stake(run)
}

/// The circumstances of one advance.
pub struct At<'a> {
    now: DateTime<Utc>,
    ahead: Option<&'a Ahead>,
    dispatch: Dispatch,
    row: RunRow<'a>,
}

/// The run as the loop sees it while deciding.
struct Current<S, R> {
    state: S,
    status: RunStatus,
    step: String,
    wake_at: Option<DateTime<Utc>>,
    attempts: i32,
    pending_effect: Option<R>,
}

/// Advances a locked run of kind `W` (called through the kind registry).
pub(crate) async fn advance_locked<W: Effects>(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    run: Run,
    trigger: Trigger,
    at: At<'_>,
) -> anyhow::Result<Advanced> {
    let now = at.now;
    // A parked run hears only operators; it resumes with the status it had.
    let parked = super::parking::Parked::of(&run);
    let trigger = match (trigger, &parked) {
        (Trigger::Operator(input), _) => Trigger::Input(input),
        (_, Some(_)) => {
            return Ok(Advanced {
                found: true,
                changed: false,
                queued: false,
                status: Some(run.status),
                ..Advanced::default()
            });
        }
        (trigger, None) => trigger,
    };
    let status = match &parked {
        Some(p) => p.resume_status(),
        None => RunStatus::parse(&run.status).context("unknown run status")?,
    };
    let mut cur = Current::<W::State, W::Remote> {
        state: serde_json::from_value(run.state.clone()).context("decoding the run's state")?,
        status,
        step: run.step.clone(),
        wake_at: run.wake_at,
        attempts: run.attempts,
        pending_effect: run
            .pending_effect
            .clone()
            .map(serde_json::from_value)
            .transpose()?,
    };
    let mut inputs: VecDeque<InputOf<W>> = VecDeque::new();
    let mut failure_detail: Option<String> = None;
    match trigger {
        Trigger::Poke if cur.status == RunStatus::Running && cur.step == W::initial_step() => {
            inputs.push_back(Input::Start)
        }
        Trigger::Poke => {}
        Trigger::Input(input) | Trigger::Operator(input) => {
            if let EngineInput::RemoteFailed { detail, .. } = &input {
                failure_detail = Some(detail.clone());
            }
            inputs.push_back(input.typed::<W>()?)
        }
    }

    let mut history = Vec::new();
    let mut changed = false;
    let mut issued: Option<W::Remote> = None;
    let mut children: Vec<ChildStart> = Vec::new();
    let mut timer_fed = false;
    // When the run entered the step it is in (as far as this advance knows),
    // and each step it left: how long it spent there.
    let mut entered_step_at = run.updated_at;
    let mut steps_left: Vec<(String, f64)> = Vec::new();
    // A run not written yet has no signals waiting for it.
    let unwritten = matches!(
        at.row,
        RunRow::Unwritten(_) | RunRow::Deferred(_) | RunRow::Unstored(_)
    );
    // Nor has one that its caller's transaction inserted.
    let no_signals = matches!(at.row, RunRow::Collected(_));
    loop {
        let input = match inputs.pop_front() {
            Some(input) => input,
            None if unwritten => break,
            None => match waiting_input(conn, run.id, &cur, now, &mut timer_fed, no_signals).await?
            {
                Some(input) => input,
                None => break,
            },
        };
        let decision = W::decide(&cur.state, &input, now);
        history.push(NewStepRecord {
            run_id: run.id,
            step: cur.step.clone(),
            attempt: cur.attempts + 1,
            input: input.label(),
            outcome: if decision.accepted {
                "advanced"
            } else {
                "ignored"
            }
            .into(),
            // The provider's own words, for operators (participants see the
            // workflow's plain sentence).
            error: match &input {
                Input::RemoteFailed { error, .. } => {
                    Some(failure_detail.clone().unwrap_or_else(|| error.clone()))
                }
                _ => None,
            },
            version: run.version,
            started_at: now,
        });
        if !decision.accepted {
            continue;
        }
        if matches!(input, Input::Timer) {
            // A deadline passed with the run still waiting: for a checkout,
            // a hold that expired unpaid.
            metrics::counter!("workflow_expiries_total", "kind" => W::KIND, "step" => cur.step.clone())
                .increment(1);
        }
        changed = true;
        if decision.step != cur.step {
            let left_at = Utc::now();
            let spent = (left_at - entered_step_at).to_std().unwrap_or_default();
            steps_left.push((cur.step.clone(), spent.as_secs_f64()));
            entered_step_at = left_at;
            cur.attempts = 0;
        }
        cur.state = decision.state;
        cur.status = decision.status;
        cur.step = decision.step.to_owned();
        cur.wake_at = decision.wake_at;
        cur.pending_effect = None;
        children.extend(decision.children);
        match decision.command {
            Some(Command::Local(command)) => {
                if matches!(at.row, RunRow::Unstored(_)) && !taken_ahead::<W>(&command, at.ahead) {
                    return Err(NeedsRow(run.id).into());
                }
                let cx = LocalCx {
                    signer,
                    now,
                    ahead: at.ahead,
                };
                let outcome = W::apply_local(conn, &cx, run.id, &command).await?;
                inputs.push_back(Input::Local(outcome));
            }
            Some(Command::Remote(command)) => {
                cur.pending_effect = Some(command.clone());
                issued = Some(command);
            }
            None => {}
        }
    }

    // Counted once the loop has decided everything: an advance that gives
    // up on the way ([`NeedsRow`]: it is taken again) counts nothing.
    for (step, spent) in steps_left {
        metrics::histogram!("workflow_step_duration_seconds", "kind" => W::KIND, "step" => step)
            .record(spent);
    }
    if !changed {
        if unwritten {
            anyhow::bail!("run {} did not move before it was written", run.id);
        }
        workflow_steps::record_all(conn, &history).await?;
        return Ok(Advanced {
            found: true,
            changed: false,
            queued: false,
            status: Some(run.status),
            ..Advanced::default()
        });
    }
    let finished = cur.status.is_ended();
    let view = serde_json::to_value(W::view(&cur.state))?;
    let transition = Transition {
        status: cur.status.as_str().into(),
        step: cur.step.clone(),
        state: serde_json::to_value(&cur.state)?,
        wake_at: cur.wake_at,
        pending_effect: cur
            .pending_effect
            .as_ref()
            .map(serde_json::to_value)
            .transpose()?,
        attempts: cur.attempts,
        last_error: if cur.attempts == 0 || parked.is_some() {
            None
        } else {
            run.last_error.clone()
        },
        finished_at: finished.then_some(run.finished_at.unwrap_or(now)),
        view: view.clone(),
    };
    let effect = issued
        .map(|command| -> anyhow::Result<RunEffect> {
            Ok(RunEffect {
                run_id: run.id,
                kind: W::KIND.to_owned(),
                key: command.key().to_owned(),
                command: serde_json::to_value(&command)?,
                attempt: 1,
            })
        })
        .transpose()?;
    let effect_due = match at.dispatch {
        Dispatch::Queue => None,
        Dispatch::Inline => Some(now + INLINE_GRACE),
    };
    let timer = match (cur.status, cur.wake_at) {
        (RunStatus::Waiting, Some(deadline)) => Some(deadline),
        _ => None,
    };
    match at.row {
        RunRow::Deferred(slot) => {
            // The caller inserts the run with others' and has nothing else
            // to send: a first step that issues a command, sets a timer or
            // starts a child is taken the usual way.
            anyhow::ensure!(
                effect.is_none()
                    && timer.is_none()
                    && children.is_empty()
                    && run.parent_id.is_none(),
                "run {} did more than decide before it was written",
                run.id
            );
            leave(
                slot,
                DeferredWrites {
                    transition,
                    history,
                },
            )?;
            return Ok(left_to_caller::<W>(
                &run,
                &cur,
                view,
                Some(run.version),
                now,
            ));
        }
        RunRow::Collected(slot) | RunRow::Unstored(slot) => {
            // The caller sends these writes with other runs' (a batch's
            // first steps), and inserts an unstored run as they leave it: a
            // step that starts a child, or ends a child run, is taken the
            // usual way.
            anyhow::ensure!(
                children.is_empty() && run.parent_id.is_none(),
                "run {} did more than its caller sends for it",
                run.id
            );
            let writes = CollectedWrites {
                run_id: run.id,
                history,
                transition,
                effect: effect.map(|effect| (effect, effect_due)),
                timer,
            };
            leave(slot, writes)?;
            return Ok(left_to_caller::<W>(&run, &cur, view, None, now));
        }
        RunRow::Stored | RunRow::Unwritten(_) => {}
    }
    let writes = StepWrites {
        run_id: run.id,
        row: at.row,
        history: &history,
        transition: &transition,
        effect: effect.as_ref().map(|effect| (effect, effect_due)),
        timer,
    };
    let sent = writes.send(conn).await?;
    let step = cur.step.clone();
    let mut queued = timer.is_some();
    for child in &children {
        queued |= children::start(conn, &run, child).await?;
    }
    let was_ended = RunStatus::parse(&run.status).is_some_and(RunStatus::is_ended);
    if finished
        && !was_ended
        && let (Some(parent_id), Some(key)) = (run.parent_id, run.child_key.clone())
    {
        let end = ChildEnd {
            key,
            run_id: run.id,
            kind: W::KIND.to_owned(),
            status: cur.status,
            view: view.clone(),
        };
        children::tell_parent(conn, parent_id, &end).await?;
        queued = true;
    }
    let (effect_queued, inline) = at.dispatch.of(effect, sent.backstop_id);
    queued |= effect_queued;
    count_move::<W>(&run, &cur.step, cur.status, now);
    Ok(Advanced {
        found: true,
        changed: true,
        queued,
        status: Some(cur.status.as_str().into()),
        step: Some(step),
        view: Some(view),
        version: Some(sent.version),
        issued: inline,
    })
}

/// Whether `command` is a hold its caller took ahead: the step then writes
/// nothing for it.
fn taken_ahead<W: Effects>(command: &W::Local, ahead: Option<&Ahead>) -> bool {
    W::hold_ahead(command)
        .zip(ahead)
        .is_some_and(|((lines, _), ahead)| ahead.outcome_for(&lines).is_some())
}

/// Counts a move of `run` to `step` and `status`. Counted at the end of the
/// transaction: only a failed commit (rare, and retried) can make these
/// counters run ahead of the table.
fn count_move<W: Effects>(run: &Run, step: &str, status: RunStatus, now: DateTime<Utc>) {
    metrics::counter!("workflow_transitions_total", "kind" => W::KIND, "step" => step.to_owned())
        .increment(1);
    if status.is_finished() && run.status != status.as_str() {
        metrics::counter!("workflow_runs_finished_total", "kind" => W::KIND, "status" => status.as_str())
            .increment(1);
        let age = (now - run.created_at).to_std().unwrap_or_default();
        metrics::histogram!("workflow_run_duration_seconds", "kind" => W::KIND)
            .record(age.as_secs_f64());
    }
}
