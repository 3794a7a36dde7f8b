//! SMTP through lettre. One connection per message (no pool): confirmation
//! emails are few, and a fresh connection never inherits a broken one.

use std::time::Duration;

use futures::future::BoxFuture;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{MailConfigError, MailError, Mailer, OutgoingEmail, compose};

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The URL without credentials, for logs.
    target: String,
}

impl SmtpMailer {
    /// `url` as lettre reads it: `smtp://host:port` (no TLS),
    /// `smtp://host:port?tls=required` (STARTTLS), `smtps://host:port` (TLS),
    /// optionally with `user:password@` (percent-encoded).
    pub fn new(url: &str, from: Mailbox, timeout: Duration) -> Result<Self, MailConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailConfigError::SmtpUrl(e.to_string()))?
            .timeout(Some(timeout))
            .build();
        Ok(SmtpMailer {
            transport,
            from,
            target: redact(url),
        })
    }
}

/// `scheme://host:port…` without `user:password@`.
pub(super) fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), MailError>> {
        Box::pin(async move {
            let message = compose(&self.from, email)?;
            match self.transport.send(message).await {
                Ok(_) => Ok(()),
                // A 5xx is the server's final word on this message; anything
                // else (4xx, network, TLS, timeout) may pass on a later try.
                Err(e) if e.is_permanent() => {
                    Err(MailError::Fatal(format!("{}: {e}", self.target)))
                }
                Err(e) => Err(MailError::Retryable(format!("{}: {e}", self.target))),
            }
        })
    }

    fn describe(&self) -> String {
        format!("smtp ({})", self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_logs() {
        assert_eq!(
            redact("smtps://user:p%40ss@mail.example.com:465"),
            "smtps://mail.example.com:465"
        );
        assert_eq!(redact("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
    }
}
