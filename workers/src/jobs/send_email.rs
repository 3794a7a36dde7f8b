//! Sends one notification (see `models::notifications`).
//!
//! The email is built here, at sending time, from the notification's kind and
//! context (`crate::mail`): the event's time and venue as they are now, the
//! tickets' QR codes, the calendar file, the unsubscribe link. Every mailer
//! (SMTP or `.eml` files) gets that same message.
//!
//! The notification row is locked (`FOR UPDATE SKIP LOCKED`) for the whole
//! attempt, in one transaction: claim, send, mark sent, commit. A duplicate
//! delivery of the job finds the row locked (`Busy`) or already sent (`Done`)
//! and does nothing.
//!
//! Delivery is at least once: if the process dies, or the commit fails, after
//! the transport accepted the message but before the commit, the row is still
//! `pending` and a retry sends it again. That window is one UPDATE and a COMMIT
//! long; the resend carries the same `Message-ID`, so it is recognisable.
//!
//! A temporary failure is recorded (`attempts`, `last_error`) and the job
//! returns an error, so apalis-redis retries it (about `attempt` seconds later).
//! A permanent failure, or the [`MAX_ATTEMPTS`]th temporary one, marks the
//! notification `failed` and acknowledges the job: the row says why.

use apalis::prelude::{BoxDynError, Data};
use boxoffice_models::notifications::{self, Claim};
use diesel_async::AsyncConnection;

use crate::adapters::mailer::MailError;
use crate::deps::JobDeps;
use crate::mail::{self, RenderError};

pub use boxoffice_models::notifications::SendEmail;

pub const JOB_NAME: &str = notifications::SEND_EMAIL_QUEUE;

/// Failed attempts before a notification is given up on. apalis-redis waits
/// about `attempt` seconds before each retry, so 20 attempts span some three
/// and a half minutes; it would stop by itself after 25.
pub const MAX_ATTEMPTS: i32 = 20;

enum Outcome {
    Sent,
    /// Nothing to do: sent or given up on before, held by another sender, or gone.
    Skipped(&'static str),
    Retry(MailError),
    GaveUp(MailError),
}

pub async fn run(job: SendEmail, deps: Data<JobDeps>) -> Result<(), BoxDynError> {
    let id = job.notification_id;
    let mailer = deps.mailer.clone();
    let mut conn = deps.db.get().await?;
    let outcome = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let notification = match notifications::claim_for_sending(conn, id).await? {
                Claim::Ready(n) => n,
                Claim::Done(_) => return Ok(Outcome::Skipped("already done")),
                Claim::Busy => return Ok(Outcome::Skipped("another sender holds it")),
                Claim::Missing => return Ok(Outcome::Skipped("no such notification")),
            };
            let rendered = match mail::render(conn, &deps.mail_links, &notification).await {
                Ok(email) => Ok(email),
                // Rolled back and retried by apalis, like any database error.
                Err(RenderError::Database(e)) => return Err(e),
                // The same data would fail again: give up, the row says why.
                Err(e @ RenderError::Build(_)) => Err(MailError::Fatal(e.to_string())),
            };
            let sent = match &rendered {
                Ok(email) => mailer.send(email).await,
                Err(e) => Err(e.clone()),
            };
            match sent {
                Ok(()) => {
                    notifications::mark_sent(conn, id).await?;
                    Ok(Outcome::Sent)
                }
                Err(error) => {
                    let give_up =
                        !error.is_retryable() || notification.attempts + 1 >= MAX_ATTEMPTS;
                    notifications::mark_attempt_failed(conn, id, &error.to_string(), give_up)
                        .await?;
                    Ok(if give_up {
                        Outcome::GaveUp(error)
                    } else {
                        Outcome::Retry(error)
                    })
                }
            }
        })
        .await?;
    match outcome {
        Outcome::Sent => {
            metrics::counter!("emails_sent_total").increment(1);
            tracing::info!(job = JOB_NAME, notification.id = %id, mailer = %mailer.describe(), "email sent");
            Ok(())
        }
        Outcome::Skipped(why) => {
            tracing::info!(job = JOB_NAME, notification.id = %id, reason = why, "email skipped");
            Ok(())
        }
        Outcome::Retry(error) => {
            tracing::warn!(job = JOB_NAME, notification.id = %id, error = %error, "email failed; will retry");
            Err(error.into())
        }
        Outcome::GaveUp(error) => {
            metrics::counter!("emails_failed_total").increment(1);
            tracing::error!(job = JOB_NAME, notification.id = %id, error = %error, "email given up on");
            Ok(())
        }
    }
}
