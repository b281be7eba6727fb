//! The auditor's own receiving SMTP sink for `--confirm`: it accepts every message offered to
//! it, keeps a bounded copy in memory, and delivers nothing anywhere.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// Most bytes kept of one message (the token and the headers come first).
const MAX_MESSAGE: usize = 256 * 1024;
/// Most messages kept; later ones are answered but dropped.
const MAX_MESSAGES: usize = 10_000;
/// How long the sink waits for one line from a client.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// One message the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The client's address (the last hop of the relay path).
    pub peer: SocketAddr,
    /// The RCPT TO arguments.
    pub recipients: Vec<String>,
    /// The message as received (dot-unstuffed, lines joined with `\n`), cut at 256 KiB.
    pub data: String,
    /// When its final `.` arrived.
    pub at: Instant,
}

impl Received {
    /// The message's `Received:` header fields, unfolded, topmost first: the relay path.
    pub fn received_headers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for line in self.data.lines() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = out.last_mut()
                    && last.to_ascii_lowercase().starts_with("received:")
                {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                continue;
            }
            out.push(line.to_string());
        }
        out.retain(|l| l.to_ascii_lowercase().starts_with("received:"));
        out
    }
}

/// A running sink; stops when dropped.
pub struct Sink {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Sink {
    /// Listens on `addr`. Binding fails unless the address is one of this machine's own, which
    /// is what keeps the canary mail with the auditor.
    pub async fn bind(addr: SocketAddr) -> io::Result<Sink> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, peer, kept).await;
                });
            }
        });
        Ok(Sink {
            addr,
            received,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first message received whose text contains `token`.
    pub fn find(&self, token: &str) -> Option<Received> {
        self.received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|m| m.data.contains(token))
            .cloned()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One SMTP conversation: everything is accepted, DATA is kept.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    kept: Arc<Mutex<Vec<Received>>>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 relayguard-sink ESMTP relay confirmation sink\r\n")
        .await?;
    let mut recipients = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = timeout(LINE_TIMEOUT, lines.read_line(&mut line))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle client"))??;
        if n == 0 {
            return Ok(());
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-relayguard-sink\r\n250 8BITMIME\r\n",
            "HELO" => b"250 relayguard-sink\r\n",
            "MAIL" => {
                recipients.clear();
                b"250 2.1.0 Ok\r\n"
            }
            "RCPT" => {
                let arg = line
                    .trim_end()
                    .split_once(':')
                    .map_or("", |(_, a)| a.trim());
                recipients.push(arg.to_string());
                b"250 2.1.5 Ok\r\n"
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    let n = timeout(LINE_TIMEOUT, lines.read_line(&mut line))
                        .await
                        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle client"))??;
                    if n == 0 {
                        return Ok(());
                    }
                    let text = line.trim_end_matches(['\r', '\n']);
                    if text == "." {
                        break;
                    }
                    if data.len() < MAX_MESSAGE {
                        data.push_str(text.strip_prefix('.').unwrap_or(text));
                        data.push('\n');
                    }
                }
                let mut kept = kept
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if kept.len() < MAX_MESSAGES {
                    kept.push(Received {
                        peer,
                        recipients: std::mem::take(&mut recipients),
                        data,
                        at: Instant::now(),
                    });
                }
                b"250 2.0.0 Ok: kept by the relayguard sink\r\n"
            }
            "RSET" | "NOOP" => b"250 2.0.0 Ok\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognized\r\n",
        };
        write.write_all(reply).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn keeps_the_message_with_its_relay_path() {
        let sink = Sink::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut c = TcpStream::connect(sink.addr()).await.unwrap();
        let script = "EHLO mx.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<rg-confirm-x@[127.0.0.1]>\r\nDATA\r\n\
                      Received: from mx2.example\r\n\tby mx1.example; Thu, 3 Dec 2026 04:00:00 +0000\r\n\
                      Received: from relayguard.invalid by mx2.example\r\nSubject: t\r\n\r\n..dot\r\nToken: rg-confirm-x\r\n.\r\nQUIT\r\n";
        c.write_all(script.as_bytes()).await.unwrap();
        let mut replies = String::new();
        c.read_to_string(&mut replies).await.unwrap();
        assert!(
            replies.contains("354 ") && replies.ends_with("221 2.0.0 Bye\r\n"),
            "{replies}"
        );
        let m = sink.find("rg-confirm-x").expect("kept");
        assert_eq!(m.recipients, vec!["<rg-confirm-x@[127.0.0.1]>"]);
        assert!(m.data.contains("\n.dot\n"), "unstuffed: {}", m.data);
        assert_eq!(
            m.received_headers(),
            vec![
                "Received: from mx2.example by mx1.example; Thu, 3 Dec 2026 04:00:00 +0000",
                "Received: from relayguard.invalid by mx2.example"
            ]
        );
        assert!(sink.find("rg-confirm-y").is_none());
    }
}
