//! The mail server of the soak: plain SMTP (RFC 5321, no TLS, no auth) on a
//! loopback port, accepting every message and counting it by `Message-ID`.
//! An outage closes the port (connections are refused) until it reopens on
//! the same port, as a mail relay that is down and comes back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Received {
    /// Copies received per `Message-ID`: more than one is a resend.
    by_message_id: HashMap<String, u32>,
    messages: u64,
}

pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Received>>,
    /// Cancelled to close the port; replaced when it reopens.
    open: CancellationToken,
}

impl SmtpSink {
    pub async fn start() -> anyhow::Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the SMTP sink")?;
        let port = listener.local_addr()?.port();
        let sink = SmtpSink {
            port,
            received: Arc::default(),
            open: CancellationToken::new(),
        };
        sink.accept_on(listener);
        Ok(sink)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn accept_on(&self, listener: TcpListener) {
        let (open, received) = (self.open.clone(), self.received.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = open.cancelled() => return,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            let (open, received) = (open.clone(), received.clone());
                            tokio::spawn(async move {
                                tokio::select! {
                                    _ = open.cancelled() => {}
                                    _ = session(stream, received) => {}
                                }
                            });
                        }
                    }
                }
            }
        });
    }

    /// Closes the port: new connections are refused, open ones are cut.
    pub fn close(&self) {
        self.open.cancel();
    }

    /// Opens the port again.
    pub async fn reopen(&mut self) -> anyhow::Result<()> {
        self.open = CancellationToken::new();
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .context("reopening the SMTP sink's port")?;
        self.accept_on(listener);
        Ok(())
    }

    /// Messages received, and copies beyond the first of a `Message-ID`.
    pub fn counts(&self) -> (u64, u64) {
        let received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        let resent = received
            .by_message_id
            .values()
            .map(|n| u64::from(n.saturating_sub(1)))
            .sum();
        (received.messages, resent)
    }
}

/// One client's conversation.
async fn session(stream: TcpStream, received: Arc<Mutex<Received>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 boxoffice-chaos ESMTP\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-boxoffice-chaos\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut message_id = None;
                while let Some(data) = lines.next_line().await? {
                    if data == "." {
                        break;
                    }
                    if message_id.is_none()
                        && let Some((name, value)) = data.split_once(':')
                        && name.eq_ignore_ascii_case("message-id")
                    {
                        message_id = Some(value.trim().to_owned());
                    }
                }
                let mut r = received.lock().unwrap_or_else(|p| p.into_inner());
                r.messages += 1;
                if let Some(id) = message_id {
                    *r.by_message_id.entry(id).or_default() += 1;
                }
                b"250 OK: queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
    Ok(())
}
