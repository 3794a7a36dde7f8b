//! Writes each message to `<dir>/<notification id>.eml`, the development
//! default: mail can be read with any mail client and never leaves the machine.
//! A resend overwrites the same file, so one notification is one file.

use std::path::PathBuf;

use futures::future::BoxFuture;
use lettre::message::Mailbox;

use super::{MailError, Mailer, OutgoingEmail, compose};

pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl FileMailer {
    pub fn new(dir: PathBuf, from: Mailbox) -> Self {
        FileMailer { dir, from }
    }

    pub fn path_of(&self, email: &OutgoingEmail) -> PathBuf {
        self.dir.join(format!("{}.eml", email.notification_id))
    }
}

impl Mailer for FileMailer {
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), MailError>> {
        Box::pin(async move {
            let message = compose(&self.from, email)?;
            let path = self.path_of(email);
            // Written aside and renamed: a reader never sees half a message.
            let partial = path.with_extension("eml.partial");
            let io = |e: std::io::Error| MailError::Retryable(format!("{}: {e}", path.display()));
            tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
            tokio::fs::write(&partial, message.formatted())
                .await
                .map_err(io)?;
            tokio::fs::rename(&partial, &path).await.map_err(io)?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!("files in {}", self.dir.display())
    }
}
