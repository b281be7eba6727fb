//! One TCP (or TLS) connection to an SMTP server: sending commands, reading replies within
//! deadlines, and recording every line in the transcript.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use relayguard_core::{Direction, Transcript, TranscriptLine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::client::TlsStream;

use super::reply::{Limits, Reply, ReplyError, escape, parse_reply};
use super::tls::Handover;

/// Why a conversation could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(io::Error),
    /// Reading or writing failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The server did not answer within the command timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The whole-host deadline passed.
    #[error("host deadline reached")]
    HostDeadline,
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// The server's bytes are not SMTP.
    #[error(transparent)]
    Protocol(#[from] ReplyError),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
}

impl SessionError {
    /// Whether opening a fresh connection may let the test go on (the server hung up or stalled,
    /// as Exim and Postfix do after too many errors).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SessionError::Closed | SessionError::Io(_) | SessionError::Timeout(_)
        )
    }
}

/// The byte stream under a connection: plain TCP until STARTTLS, TLS after.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }
}

/// Per-connection timing: the command timeout and the host's overall deadline.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// When the host's audit started (transcript times are relative to it).
    pub started: Instant,
    /// How long one reply may take.
    pub command_timeout: Duration,
    /// When the whole audit of the host must end.
    pub deadline: Instant,
}

impl Timing {
    /// The instant the next reply must arrive by, and the error to give if it does not.
    fn reply_deadline(&self) -> (Instant, SessionError) {
        let by_command = Instant::now() + self.command_timeout;
        if by_command < self.deadline {
            (by_command, SessionError::Timeout(self.command_timeout))
        } else {
            (self.deadline, SessionError::HostDeadline)
        }
    }
}

/// A live SMTP connection with its transcript.
pub struct Connection {
    pub(crate) stream: Option<Stream>,
    buf: Vec<u8>,
    session: u32,
    timing: Timing,
    limits: Limits,
    pace: ReplyPace,
    /// Everything said on this connection.
    pub transcript: Transcript,
}

/// How much later than its fastest reply a reply must come to count as held back. Servers hold
/// replies back in whole seconds (Postfix's `smtpd_error_sleep_time`, 1 s); network jitter on a
/// campus is far below this.
const HELD_BACK: Duration = Duration::from_millis(800);

/// How quickly the server answers commands, to notice when it starts holding every reply back
/// after errors (Postfix past `smtpd_soft_error_limit`).
#[derive(Debug, Default, Clone, Copy)]
struct ReplyPace {
    /// Negative replies (4xx, 5xx) so far.
    errors: u32,
    /// The quickest command-to-reply time so far.
    fastest: Option<Duration>,
    /// The last command's.
    last: Duration,
}

impl ReplyPace {
    fn observe(&mut self, took: Duration, reply: &Reply) {
        if reply.class() >= 4 {
            self.errors += 1;
        }
        self.fastest = Some(self.fastest.map_or(took, |f| f.min(took)));
        self.last = took;
    }
}

/// Opens a TCP connection, optionally from a given local address.
pub async fn tcp_connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, SessionError> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(SessionError::Connect)?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(SessionError::Connect)?;
    }
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(Ok(stream)) => {
            // Commands are small and interactive: don't let Nagle hold them back.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(SessionError::Connect(e)),
        Err(_) => Err(SessionError::Connect(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {timeout:?}"),
        ))),
    }
}

impl Connection {
    /// Wraps a connected stream as session number `session` of a host's audit.
    pub fn new(stream: TcpStream, session: u32, timing: Timing) -> Self {
        Connection {
            stream: Some(Stream::Plain(stream)),
            buf: Vec::with_capacity(1024),
            session,
            timing,
            limits: Limits::default(),
            pace: ReplyPace::default(),
            transcript: Transcript::default(),
        }
    }

    /// Whether the server has started holding replies back after errors: after at least one
    /// error, the last command (RSET or VRFY, which a server answers at once) was answered
    /// 0.8 s (`HELD_BACK`) or more later than the quickest one. A fresh session is answered at
    /// full speed again.
    pub fn held_back_after_errors(&self) -> bool {
        let pace = self.pace;
        pace.errors > 0 && pace.fastest.is_some_and(|f| pace.last >= f + HELD_BACK)
    }

    /// The session number of this connection.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// The host's timing.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Records a line in the transcript.
    pub fn log(&mut self, dir: Direction, text: impl Into<String>) {
        let ms = self.timing.started.elapsed().as_millis() as u64;
        self.transcript.push(TranscriptLine {
            session: self.session,
            ms,
            dir,
            text: text.into(),
        });
    }

    /// Whether the server sent bytes that no reply has consumed yet.
    pub fn has_unread_bytes(&self) -> bool {
        !self.buf.is_empty()
    }

    /// A printable preview of unread bytes (for evidence).
    pub fn unread_preview(&self) -> String {
        escape(&self.buf[..self.buf.len().min(120)])
    }

    /// Reads one complete reply.
    pub async fn read_reply(&mut self) -> Result<Reply, SessionError> {
        let (deadline, late) = self.timing.reply_deadline();
        let mut late = Some(late);
        loop {
            match parse_reply(&self.buf, self.limits) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    for line in reply.wire_lines() {
                        self.log(Direction::Server, line);
                    }
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => {
                    let preview = escape(&self.buf[..self.buf.len().min(200)]);
                    self.log(Direction::Server, preview);
                    self.log(Direction::Note, format!("not SMTP: {e}"));
                    return Err(e.into());
                }
            }
            let stream = self.stream.as_mut().ok_or(SessionError::Closed)?;
            let mut chunk = [0u8; 4096];
            let n = match timeout_at(deadline, stream.read(&mut chunk)).await {
                Ok(Ok(0)) => {
                    if !self.buf.is_empty() {
                        let preview = escape(&self.buf[..self.buf.len().min(200)]);
                        self.log(Direction::Server, preview);
                    }
                    self.log(Direction::Note, "server closed the connection");
                    return Err(SessionError::Closed);
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    self.log(Direction::Note, format!("read error: {e}"));
                    return Err(e.into());
                }
                Err(_) => {
                    let err = late.take().expect("only taken once, then we return");
                    self.log(Direction::Note, err.to_string());
                    return Err(err);
                }
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends one command line (without CRLF) and reads the reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, SessionError> {
        let sent = Instant::now();
        self.send(line).await?;
        let reply = self.read_reply().await?;
        self.pace.observe(sent.elapsed(), &reply);
        Ok(reply)
    }

    /// Sends one command line without waiting for the reply.
    pub async fn send(&mut self, line: &str) -> Result<(), SessionError> {
        debug_assert!(!line.contains(['\r', '\n']), "one command per line");
        self.log(Direction::Client, line);
        let stream = self.stream.as_mut().ok_or(SessionError::Closed)?;
        let mut wire = Vec::with_capacity(line.len() + 2);
        wire.extend_from_slice(line.as_bytes());
        wire.extend_from_slice(b"\r\n");
        let (deadline, late) = self.timing.reply_deadline();
        match timeout_at(deadline, stream.write_all(&wire)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.log(Direction::Note, format!("write error: {e}"));
                Err(e.into())
            }
            Err(_) => {
                self.log(Direction::Note, late.to_string());
                Err(late)
            }
        }
    }

    /// Says QUIT and waits briefly for the goodbye; errors are irrelevant at this point.
    pub async fn quit(mut self) -> Transcript {
        if self.send("QUIT").await.is_ok() {
            let short = Timing {
                command_timeout: Duration::from_secs(2).min(self.timing.command_timeout),
                ..self.timing
            };
            self.timing = short;
            let _ = self.read_reply().await;
        }
        self.transcript
    }

    /// Says QUIT and closes at once, without waiting for a goodbye the server would hold back.
    pub async fn quit_now(mut self) -> Transcript {
        if self.send("QUIT").await.is_ok() {
            self.log(
                Direction::Note,
                "closed without waiting for the reply: the server holds replies back",
            );
        }
        self.transcript
    }

    /// Gives up the connection without QUIT and returns its transcript.
    pub fn into_transcript(self) -> Transcript {
        self.transcript
    }

    /// Takes the plain TCP stream out for a TLS handshake, which must end within one command
    /// timeout (or by the host deadline, if that comes first).
    pub(crate) fn take_plain(&mut self) -> Option<Handover> {
        match self.stream.take() {
            Some(Stream::Plain(s)) => {
                let (deadline, late) = self.timing.reply_deadline();
                Some(Handover::new(s, deadline, late.to_string()))
            }
            other => {
                self.stream = other;
                None
            }
        }
    }

    /// Puts the stream back after a TLS handshake.
    pub(crate) fn set_tls(&mut self, tls: TlsStream<TcpStream>) {
        self.stream = Some(Stream::Tls(Box::new(tls)));
        self.buf.clear();
    }
}
