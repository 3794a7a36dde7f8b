//! What an event's changes mean for its mailings (reminders and organizer
//! messages), written in the transaction of the change.
//!
//! Moving the event or changing its offsets signals each reminder run still
//! waiting: it moves its timer, or ends if its offset is gone. Cancelling the
//! event signals every reminder and message run not finished: none sends
//! anything more (and a batch in flight sees the cancellation, see the
//! mailing's effects). New offsets are planned by the `plan_reminders` job.

use boxoffice_models::events::Event;
use boxoffice_models::reminders;
use boxoffice_models::workflow_signals::{self, NewSignal};
use boxoffice_workflows::reminder::{Reschedule, SIGNAL_CANCEL, SIGNAL_RESCHEDULE};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Most offsets an event has.
pub const MAX_OFFSETS: usize = 3;
/// Longest offset: four weeks.
pub const MAX_OFFSET_MINUTES: i32 = 40_320;

/// Checks `reminder_offsets_minutes`: up to 3 distinct offsets of 1 minute to
/// 4 weeks; returned sorted, longest first.
pub fn offsets(raw: &[i32]) -> AppResult<Vec<i32>> {
    const FIELD: &str = "reminder_offsets_minutes";
    if raw.len() > MAX_OFFSETS {
        return Err(AppError::validation(
            FIELD,
            format!("{FIELD} holds at most {MAX_OFFSETS} offsets"),
        ));
    }
    let mut offsets = raw.to_vec();
    for &minutes in &offsets {
        if !(1..=MAX_OFFSET_MINUTES).contains(&minutes) {
            return Err(AppError::validation(
                FIELD,
                format!("each offset must be between 1 and {MAX_OFFSET_MINUTES} minutes"),
            ));
        }
    }
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    let before = offsets.len();
    offsets.dedup();
    if offsets.len() != before {
        return Err(AppError::validation(
            FIELD,
            format!("{FIELD} must not repeat an offset"),
        ));
    }
    Ok(offsets)
}

/// The event's time or offsets changed: its waiting reminders follow.
pub async fn event_changed(conn: &mut AsyncPgConnection, event: &Event) -> AppResult<()> {
    let change = Reschedule {
        starts_at: event.starts_at,
        offsets_minutes: event.reminder_offsets_minutes.clone(),
    };
    let payload = serde_json::to_value(&change).map_err(AppError::internal)?;
    for (_, run_id) in reminders::open_runs(conn, event.id).await? {
        workflow_signals::record(
            conn,
            NewSignal {
                run_id,
                name: SIGNAL_RESCHEDULE.into(),
                dedupe_key: format!("event_changed:{run_id}:{}", event.version),
                payload: payload.clone(),
            },
        )
        .await?;
    }
    reminders::forget_all_but(conn, event.id, &event.reminder_offsets_minutes).await?;
    Ok(())
}

/// The event is cancelled: its reminders and messages send nothing more.
pub async fn event_cancelled(conn: &mut AsyncPgConnection, event_id: Uuid) -> AppResult<()> {
    let mut runs: Vec<Uuid> = reminders::open_runs(conn, event_id)
        .await?
        .into_iter()
        .map(|(_, run_id)| run_id)
        .collect();
    runs.extend(reminders::open_message_runs(conn, event_id).await?);
    for run_id in runs {
        cancel(conn, run_id, "event_cancelled").await?;
    }
    Ok(())
}

/// Tells one mailing run to stop.
pub async fn cancel(conn: &mut AsyncPgConnection, run_id: Uuid, reason: &str) -> AppResult<()> {
    workflow_signals::record(
        conn,
        NewSignal {
            run_id,
            name: SIGNAL_CANCEL.into(),
            dedupe_key: format!("mailing_cancel:{run_id}"),
            payload: serde_json::json!({ "reason": reason }),
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::offsets;

    #[test]
    fn offsets_are_checked_and_sorted() {
        assert_eq!(offsets(&[60, 1440]).unwrap(), vec![1440, 60]);
        assert_eq!(offsets(&[]).unwrap(), Vec::<i32>::new());
        assert!(offsets(&[1, 2, 3, 4]).is_err());
        assert!(offsets(&[0]).is_err());
        assert!(offsets(&[40_321]).is_err());
        assert!(offsets(&[60, 60]).is_err());
    }
}
