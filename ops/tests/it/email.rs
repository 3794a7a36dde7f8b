//! Email: notifications are deduplicated when decided, relayed through the
//! outbox, and sent by the `send_email` job running in real workers, through a
//! real SMTP server (aiosmtpd, started per test) or to `.eml` files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use boxoffice_models::notifications::{
    self, NewNotification, Notification, SEND_EMAIL_QUEUE, SendEmail,
};
use boxoffice_models::outbox;
use boxoffice_models::schema::outbox as outbox_table;
use boxoffice_workers::adapters::mailer::{self, MailSettings, Mailer};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use crate::harness::TestApp;
use crate::harness::wait;

/// The payment API the workers are given; these tests never pay.
const NO_PAYMENTS: &str = "http://127.0.0.1:9";
const FROM: &str = "Boxoffice <tickets@boxoffice.test>";

/// A local SMTP server writing what it accepts to a folder; killed on drop.
pub(crate) struct SmtpSink {
    port: u16,
    dir: PathBuf,
    _process: tokio::process::Child,
}

impl SmtpSink {
    pub(crate) async fn start() -> SmtpSink {
        let dir =
            std::env::temp_dir().join(format!("boxoffice-smtp-sink-{}", Uuid::new_v4().simple()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mut process = tokio::process::Command::new(python_with_aiosmtpd())
            .arg(script)
            .arg(&dir)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the SMTP sink");
        let stdout = process.stdout.take().expect("the sink's stdout");
        let mut first_line = String::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            BufReader::new(stdout).read_line(&mut first_line),
        )
        .await
        .expect("the SMTP sink announces its port within 20 s")
        .expect("reading the sink's port");
        let port = first_line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a port: {first_line:?}"));
        SmtpSink {
            port,
            dir,
            _process: process,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far, as text.
    pub(crate) fn messages(&self) -> Vec<String> {
        read_eml_files(&self.dir)
    }

    /// The folder it writes each message to, one `.eml` file per message.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many messages arrived so far (without reading them).
    pub(crate) fn count(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Python that can import aiosmtpd: Debian's package installs it into the
/// system Python, which a `python3` earlier on PATH (pyenv, venv) may not see.
fn python_with_aiosmtpd() -> String {
    let candidates = std::env::var("BOXOFFICE_TEST_PYTHON")
        .into_iter()
        .chain(["python3".to_owned(), "/usr/bin/python3".to_owned()]);
    for python in candidates {
        let works = std::process::Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return python;
        }
    }
    panic!(
        "no python3 with aiosmtpd: run ops/scripts/install-services --with-test-tools (Debian: python3-aiosmtpd)"
    )
}

fn read_eml_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("reading a message"))
        .collect()
}

pub(crate) fn smtp_mailer(url: &str) -> Arc<dyn Mailer> {
    mailer::build(&MailSettings {
        smtp_url: Some(url.to_owned()),
        mail_dir: PathBuf::from("unused"),
        from: FROM.to_owned(),
        smtp_timeout: Duration::from_secs(5),
    })
    .expect("an SMTP mailer")
}

/// A test notification carries its whole text: nothing to render from.
static NO_CONTEXT: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(|| serde_json::json!({}));

fn confirmation<'a>(dedupe_key: &'a str, recipient: &'a str) -> NewNotification<'a> {
    NewNotification {
        dedupe_key,
        kind: "booking_confirmation",
        recipient: notifications::Recipient::Address(recipient),
        subject: "Your tickets for Jazz night",
        body_text: "Thank you for your order.\nYour tickets are attached to your account.",
        user_id: None,
        context: &NO_CONTEXT,
    }
}

pub(crate) async fn notification(conn: &mut AsyncPgConnection, id: Uuid) -> Notification {
    notifications::find(conn, id)
        .await
        .expect("reading")
        .expect("the notification exists")
}

async fn outbox_len(conn: &mut AsyncPgConnection) -> i64 {
    outbox_table::table
        .filter(outbox_table::queue.eq(SEND_EMAIL_QUEUE))
        .count()
        .get_result(conn)
        .await
        .expect("counting the outbox")
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    message.split("\r\n\r\n").next().and_then(|head| {
        head.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
    })
}

/// A workflow's email to a participant reads their address in its insert:
/// the address the account has at that moment, once per dedupe key, and
/// never a notification with no address.
#[tokio::test]
async fn an_email_to_an_account_goes_to_its_address_once_and_a_missing_account_records_nothing() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let user = app
        .create_user(&[boxoffice_models::users::Role::Participant])
        .await;
    let to_account = |key| NewNotification {
        recipient: notifications::Recipient::Account,
        user_id: Some(user.id),
        ..confirmation(key, "unused@example.com")
    };
    let key = format!("booking:{}:confirmation", Uuid::new_v4());

    let id = notifications::enqueue(&mut conn, to_account(&key))
        .await
        .unwrap()
        .expect("the first decision records a notification");
    let recorded = notification(&mut conn, id).await;
    assert_eq!(recorded.recipient, user.email);
    assert_eq!(recorded.user_id, Some(user.id));
    assert_eq!(recorded.dedupe_key, key);
    assert_eq!(
        notifications::enqueue(&mut conn, to_account(&key))
            .await
            .unwrap(),
        None,
        "the dedupe key makes the second decision a no-op"
    );
    assert_eq!(outbox_len(&mut conn).await, 1);

    // No such account: an error, and nothing recorded or queued.
    let nobody_key = format!("booking:{}:confirmation", Uuid::new_v4());
    let nobody = notifications::enqueue(
        &mut conn,
        NewNotification {
            user_id: Some(Uuid::now_v7()),
            ..to_account(&nobody_key)
        },
    )
    .await;
    assert!(
        matches!(nobody, Err(diesel::result::Error::NotFound)),
        "{nobody:?}"
    );
    let no_user = notifications::enqueue(
        &mut conn,
        NewNotification {
            user_id: None,
            ..to_account(&nobody_key)
        },
    )
    .await;
    assert!(
        matches!(no_user, Err(diesel::result::Error::NotFound)),
        "{no_user:?}"
    );
    assert_eq!(outbox_len(&mut conn).await, 1);
    let rows: i64 = {
        use boxoffice_models::schema::notifications as table;
        table::table
            .filter(table::dedupe_key.eq(&nobody_key))
            .count()
            .get_result(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_notification_decided_twice_is_sent_once_over_smtp() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let key = format!("booking:{}:confirmation", Uuid::new_v4());

    // The same decision twice (a retried step): one row, one outbox message.
    let id = notifications::enqueue(&mut conn, confirmation(&key, "ada@example.com"))
        .await
        .unwrap()
        .expect("the first decision records a notification");
    let again = notifications::enqueue(&mut conn, confirmation(&key, "ada@example.com"))
        .await
        .unwrap();
    assert_eq!(
        again, None,
        "the dedupe key makes the second decision a no-op"
    );
    assert_eq!(outbox_len(&mut conn).await, 1);

    app.start_workers_with_mailer(NO_PAYMENTS, smtp_mailer(&sink.url()));
    let sent = wait::value(
        Duration::from_secs(30),
        "the notification to be sent",
        async || Some(notification(&mut conn, id).await).filter(|n| n.status == "sent"),
    )
    .await;
    assert!(sent.sent_at.is_some());
    assert_eq!(sent.attempts, 0);

    let messages = wait::value(
        Duration::from_secs(10),
        "the sink to hold the message",
        async || Some(sink.messages()).filter(|m| !m.is_empty()),
    )
    .await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let message = &messages[0];
    assert_eq!(header(message, "To"), Some("ada@example.com"), "{message}");
    assert_eq!(header(message, "From"), Some(FROM), "{message}");
    assert_eq!(
        header(message, "Subject"),
        Some("Your tickets for Jazz night"),
        "{message}"
    );
    assert_eq!(
        header(message, "Message-ID"),
        Some(format!("<{id}.notification@boxoffice.test>").as_str()),
        "{message}"
    );
    assert!(message.contains("Thank you for your order."), "{message}");

    // A redelivered job (the relay or Redis handing it out again) sends nothing.
    outbox::push(
        &conn,
        SEND_EMAIL_QUEUE,
        &SendEmail {
            notification_id: id,
        },
        None,
    )
    .await
    .unwrap();
    wait::value(
        Duration::from_secs(10),
        "the duplicate to be relayed",
        async || (outbox_len(&mut conn).await == 0).then_some(()),
    )
    .await;
    // Absence can only be shown by waiting: far longer than a send takes here.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "the duplicate job sent a second message"
    );
    assert_eq!(notification(&mut conn, id).await.status, "sent");
}

/// A pending notification whose `send_email` job is gone: the outbox relayed
/// it, then Redis restarted without its data. No outbox row, no job; last
/// touched `idle_secs` ago.
async fn lost_notification(conn: &mut AsyncPgConnection, recipient: &str, idle_secs: i64) -> Uuid {
    let id = Uuid::now_v7();
    diesel::sql_query(
        "INSERT INTO notifications (id, dedupe_key, kind, recipient, subject, body_text, created_at, updated_at)
         VALUES ($1, $2, 'booking_confirmation', $3, 'Your tickets', 'Thank you.',
                 now() - make_interval(secs => $4), now() - make_interval(secs => $4))",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Text, _>(format!("booking:{id}:confirmation"))
    .bind::<diesel::sql_types::Text, _>(recipient)
    .bind::<diesel::sql_types::Double, _>(idle_secs as f64)
    .execute(conn)
    .await
    .expect("inserting a lost notification");
    id
}

fn message_ids(messages: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| header(m, "Message-ID").unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_notification_whose_job_was_lost_is_requeued_by_the_sweep_and_sent_once() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    // Idle for longer than the stalled threshold (60 s in tests too), and one
    // lost a moment ago: its job may only be slow, so it is left alone.
    let stalled = lost_notification(&mut conn, "lost@example.com", 120).await;
    let recent = lost_notification(&mut conn, "recent@example.com", 0).await;
    assert_eq!(outbox_len(&mut conn).await, 0);

    // The test workers sweep every second.
    app.start_workers_with_mailer(NO_PAYMENTS, smtp_mailer(&sink.url()));
    let sent = wait::value(
        Duration::from_secs(30),
        "the stalled notification to be sent",
        async || Some(notification(&mut conn, stalled).await).filter(|n| n.status == "sent"),
    )
    .await;
    assert_eq!(sent.attempts, 0);
    let messages = wait::value(
        Duration::from_secs(10),
        "the sink to hold the message",
        async || Some(sink.messages()).filter(|m| !m.is_empty()),
    )
    .await;
    assert_eq!(
        message_ids(&messages),
        [format!("<{stalled}.notification@boxoffice.test>")]
    );

    // Later sweeps send it no more. To know that later sweeps ran, a second
    // notification is lost now, and sent by one of them; meanwhile the first
    // one looks idle again (only its status tells it was sent).
    let later = lost_notification(&mut conn, "later@example.com", 120).await;
    diesel::sql_query(
        "UPDATE notifications SET updated_at = now() - interval '2 minutes' WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(stalled)
    .execute(&mut conn)
    .await
    .unwrap();
    wait::value(
        Duration::from_secs(30),
        "the second lost notification to be sent",
        async || (notification(&mut conn, later).await.status == "sent").then_some(()),
    )
    .await;
    // Absence can only be shown by waiting: a few more sweeps.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut expected = vec![
        format!("<{stalled}.notification@boxoffice.test>"),
        format!("<{later}.notification@boxoffice.test>"),
    ];
    expected.sort();
    assert_eq!(
        message_ids(&sink.messages()),
        expected,
        "one message per notification"
    );
    assert_eq!(outbox_len(&mut conn).await, 0);

    let recent = notification(&mut conn, recent).await;
    assert_eq!(recent.status, "pending", "re-queued before the threshold");
    assert_eq!(recent.attempts, 0);
}

#[tokio::test]
async fn a_permanent_refusal_fails_the_notification_without_retrying() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    // The sink refuses recipients named bounce… with 550.
    let id = notifications::enqueue(&mut conn, confirmation("bounce-test", "bounce@example.com"))
        .await
        .unwrap()
        .unwrap();

    app.start_workers_with_mailer(NO_PAYMENTS, smtp_mailer(&sink.url()));
    let failed = wait::value(
        Duration::from_secs(30),
        "the notification to fail",
        async || Some(notification(&mut conn, id).await).filter(|n| n.status == "failed"),
    )
    .await;
    assert_eq!(failed.attempts, 1, "a permanent refusal is not retried");
    let error = failed.last_error.unwrap_or_default();
    assert!(error.contains("550"), "{error}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_retried_and_the_attempts_recorded() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let id = notifications::enqueue(
        &mut conn,
        confirmation("unreachable-test", "ada@example.com"),
    )
    .await
    .unwrap()
    .unwrap();

    app.start_workers_with_mailer(
        NO_PAYMENTS,
        smtp_mailer(&format!("smtp://127.0.0.1:{port}")),
    );
    // apalis-redis retries a failed job about `attempt` seconds later.
    let retried = wait::value(
        Duration::from_secs(30),
        "a second failed attempt",
        async || Some(notification(&mut conn, id).await).filter(|n| n.attempts >= 2),
    )
    .await;
    assert_eq!(
        retried.status, "pending",
        "a temporary failure is retried, not given up"
    );
    assert!(retried.last_error.is_some_and(|e| e.contains("temporary")));
    assert_eq!(retried.sent_at, None);
}

#[tokio::test]
async fn the_file_mailer_writes_one_eml_per_notification() {
    let app = TestApp::spawn().await;
    let mut conn = app.raw_conn().await;
    let id = notifications::enqueue(&mut conn, confirmation("file-test", "grace@example.com"))
        .await
        .unwrap()
        .unwrap();

    app.start_workers(NO_PAYMENTS);
    wait::value(
        Duration::from_secs(30),
        "the notification to be sent",
        async || (notification(&mut conn, id).await.status == "sent").then_some(()),
    )
    .await;

    let dir = app.mail_dir();
    let path = dir.join(format!("{id}.eml"));
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files,
        vec![path.clone()],
        "one file, named by the notification"
    );
    let message = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        header(&message, "To"),
        Some("grace@example.com"),
        "{message}"
    );
    assert_eq!(
        header(&message, "Subject"),
        Some("Your tickets for Jazz night"),
        "{message}"
    );
    assert_eq!(
        header(&message, "Message-ID"),
        Some(format!("<{id}.notification@boxoffice.test>").as_str()),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
