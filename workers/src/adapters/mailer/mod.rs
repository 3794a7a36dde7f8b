//! Sending email: the [`Mailer`] trait and its transports.
//!
//! - [`SmtpMailer`]: SMTP through lettre, to any server a URL names
//!   (`smtp://host:port` in the clear for local sinks, `smtp://…?tls=required`
//!   for STARTTLS, `smtps://…` for implicit TLS), behind a circuit breaker.
//! - [`FileMailer`]: writes each message as an RFC 5322 `.eml` file into a
//!   folder; the development default, so nothing leaves the machine.
//!
//! Every message's `Message-ID` is derived from its notification id
//! ([`message_id`]): a message sent twice (at-least-once delivery, see
//! `jobs::send_email`) carries the same id both times, so a mail server or a
//! mail client downstream can recognise the repeat.

mod breaker;
mod file;
mod smtp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use uuid::Uuid;

pub use breaker::Guarded;
pub use file::FileMailer;
pub use smtp::SmtpMailer;

/// One message to send, as the renderer (`crate::mail`) built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Names the message (its `Message-ID`) and, for the file mailer, its file.
    pub notification_id: Uuid,
    pub to: String,
    pub subject: String,
    /// The text part.
    pub body_text: String,
    /// The HTML part, the alternative to the text; `None`: text only.
    pub html: Option<String>,
    /// Inline images (referenced from the HTML by `cid:`) and attached files.
    pub attachments: Vec<MailAttachment>,
    /// `List-Unsubscribe` URL (with `List-Unsubscribe-Post: One-Click`,
    /// RFC 8058) for email a participant may stop receiving.
    pub list_unsubscribe: Option<String>,
}

impl OutgoingEmail {
    /// A text-only message.
    pub fn plain(notification_id: Uuid, to: &str, subject: &str, body_text: &str) -> Self {
        OutgoingEmail {
            notification_id,
            to: to.to_owned(),
            subject: subject.to_owned(),
            body_text: body_text.to_owned(),
            html: None,
            attachments: Vec::new(),
            list_unsubscribe: None,
        }
    }
}

/// A file in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAttachment {
    pub filename: String,
    /// e.g. `image/png`, `text/calendar; charset=utf-8`.
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// `Some(content id)`: shown inline, where the HTML says `cid:<id>`.
    pub inline_id: Option<String>,
}

/// Why a message was not sent, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The message can never be sent as it is: a malformed recipient, a
    /// permanent (5xx) refusal by the server.
    #[error("permanent mail failure: {0}")]
    Fatal(String),
    /// The server is unreachable, slow, busy (4xx), or its circuit is open.
    #[error("temporary mail failure: {0}")]
    Retryable(String),
}

impl MailError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, MailError::Retryable(_))
    }
}

/// Sends email. Object-safe: jobs hold an `Arc<dyn Mailer>`, so tests and
/// deployments choose the transport.
pub trait Mailer: Send + Sync {
    /// Sends `email`; `Ok` means the transport accepted it (the SMTP server
    /// answered 250, or the file is on disk).
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), MailError>>;

    /// Where mail goes, for logs (never with credentials).
    fn describe(&self) -> String;
}

/// The mail settings a process starts with.
#[derive(Clone)]
pub struct MailSettings {
    /// `smtp://…` / `smtps://…`; `None` writes `.eml` files to `mail_dir`.
    pub smtp_url: Option<String>,
    pub mail_dir: PathBuf,
    /// The `From` of every message, e.g. `Boxoffice <tickets@boxoffice.test>`.
    pub from: String,
    /// Longest an SMTP conversation may take before it counts as failed.
    pub smtp_timeout: Duration,
}

/// Without the SMTP URL's credentials.
impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp_url", &self.smtp_url.as_deref().map(smtp::redact))
            .field("mail_dir", &self.mail_dir)
            .field("from", &self.from)
            .field("smtp_timeout", &self.smtp_timeout)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailConfigError {
    #[error("the sender address {0:?} is invalid: {1}")]
    From(String, String),
    #[error("the SMTP URL is invalid: {0}")]
    SmtpUrl(String),
}

/// Builds the mailer `settings` describe.
pub fn build(settings: &MailSettings) -> Result<Arc<dyn Mailer>, MailConfigError> {
    let from = parse_from(&settings.from)?;
    Ok(match &settings.smtp_url {
        Some(url) => Arc::new(Guarded::new(
            "smtp",
            SmtpMailer::new(url, from, settings.smtp_timeout)?,
        )),
        None => Arc::new(FileMailer::new(settings.mail_dir.clone(), from)),
    })
}

/// Whether [`build`] would accept `settings`, without building anything.
pub fn check(settings: &MailSettings) -> Result<(), MailConfigError> {
    let from = parse_from(&settings.from)?;
    if let Some(url) = &settings.smtp_url {
        SmtpMailer::new(url, from, settings.smtp_timeout)?;
    }
    Ok(())
}

pub fn parse_from(raw: &str) -> Result<Mailbox, MailConfigError> {
    raw.parse::<Mailbox>()
        .map_err(|e| MailConfigError::From(raw.to_owned(), e.to_string()))
}

/// The `Message-ID` of a notification's message: `<{id}.notification@{domain}>`,
/// with the sender's domain, as RFC 5322 asks for a globally unique id.
pub fn message_id(notification_id: Uuid, from: &Mailbox) -> String {
    format!("<{notification_id}.notification@{}>", from.email.domain())
}

/// The RFC 5322 message of `email`, UTF-8. Text only, it is one text part;
/// otherwise `multipart/mixed`: `multipart/alternative` (the text, then
/// `multipart/related` with the HTML and its inline images), then the
/// attached files (the calendar).
pub fn compose(from: &Mailbox, email: &OutgoingEmail) -> Result<Message, MailError> {
    let to: Mailbox = email.to.parse().map_err(|e| {
        MailError::Fatal(format!("recipient {:?} is not an address: {e}", email.to))
    })?;
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.as_str())
        .message_id(Some(message_id(email.notification_id, from)));
    if let Some(url) = &email.list_unsubscribe {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    let built = match &email.html {
        None if email.attachments.is_empty() => builder
            .header(ContentType::TEXT_PLAIN)
            .body(email.body_text.clone()),
        _ => builder.multipart(body_parts(email)?),
    };
    built.map_err(|e| MailError::Fatal(format!("the message can't be built: {e}")))
}

fn body_parts(email: &OutgoingEmail) -> Result<MultiPart, MailError> {
    let content_type = |raw: &str| {
        ContentType::parse(raw).map_err(|e| MailError::Fatal(format!("content type {raw:?}: {e}")))
    };
    let text = SinglePart::plain(email.body_text.clone());
    let mut alternative = MultiPart::alternative().singlepart(text);
    if let Some(html) = &email.html {
        let mut related = MultiPart::related().singlepart(SinglePart::html(html.clone()));
        for inline in email.attachments.iter().filter(|a| a.inline_id.is_some()) {
            let id = inline.inline_id.clone().unwrap_or_default();
            related = related.singlepart(
                Attachment::new_inline_with_name(id, inline.filename.clone())
                    .body(inline.bytes.clone(), content_type(&inline.content_type)?),
            );
        }
        alternative = alternative.multipart(related);
    }
    let mut mixed = MultiPart::mixed().multipart(alternative);
    for file in email.attachments.iter().filter(|a| a.inline_id.is_none()) {
        mixed = mixed.singlepart(
            Attachment::new(file.filename.clone())
                .body(file.bytes.clone(), content_type(&file.content_type)?),
        );
    }
    Ok(mixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(to: &str) -> OutgoingEmail {
        OutgoingEmail::plain(
            Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            to,
            "Your tickets — Jazz night",
            "Thank you.\nSee you there.",
        )
    }

    #[test]
    fn the_message_id_is_the_notifications_and_stable() {
        let from = parse_from("Boxoffice <tickets@boxoffice.test>").unwrap();
        let a = compose(&from, &email("ada@example.com")).unwrap();
        let b = compose(&from, &email("ada@example.com")).unwrap();
        let expected = "<01900000-0000-7000-8000-000000000001.notification@boxoffice.test>";
        for message in [a, b] {
            let text = String::from_utf8(message.formatted()).unwrap();
            assert!(
                text.contains(&format!("Message-ID: {expected}\r\n")),
                "{text}"
            );
            assert!(text.contains("To: ada@example.com\r\n"), "{text}");
            assert!(
                text.contains("From: Boxoffice <tickets@boxoffice.test>\r\n"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_bad_recipient_is_fatal_and_a_bad_sender_is_a_config_error() {
        let from = parse_from("tickets@boxoffice.test").unwrap();
        assert!(matches!(
            compose(&from, &email("not an address")),
            Err(MailError::Fatal(_))
        ));
        assert!(matches!(
            parse_from("Boxoffice <nope>"),
            Err(MailConfigError::From(..))
        ));
        let settings = MailSettings {
            smtp_url: Some("http://example.com".into()),
            mail_dir: PathBuf::from("unused"),
            from: "tickets@boxoffice.test".into(),
            smtp_timeout: Duration::from_secs(5),
        };
        assert!(matches!(build(&settings), Err(MailConfigError::SmtpUrl(_))));
    }
}
