//! One TCP (or TLS) connection to an SMTP server: sending commands, reading replies within
//! deadlines, and recording every line in the transcript.
//!
//! The conversation is strictly in turn (RFC 5321 §4.1, and RFC 2920 even when pipelining): the
//! server speaks only to answer a command. Bytes that arrive when no reply is due (a second
//! greeting, an extra reply after a complete one, anything after the reply to QUIT) mean the
//! replies may no longer belong to the commands they seem to answer: a server that sends an
//! unsolicited `250` after each refused RCPT would otherwise have its next `250` read as
//! accepting a relay recipient. So before each command the connection looks for bytes already
//! buffered and bytes readable on the socket without waiting, and fails with
//! [`SessionError::Desync`] if there are any.

use std::future::poll_fn;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use relayguard_core::{Direction, Transcript, TranscriptLine};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
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
    /// The server sent data when no reply was due (the escaped bytes): the session's replies can
    /// no longer be matched to its commands, so nothing it said should be trusted.
    #[error("server sent data out of turn: {0}")]
    Desync(String),
}

impl SessionError {
    /// Whether opening a fresh connection may let the test go on (the server hung up or stalled,
    /// as Exim and Postfix do after too many errors).
    ///
    /// A desynchronised session is retryable too: a fresh session starts in step again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SessionError::Closed
                | SessionError::Io(_)
                | SessionError::Timeout(_)
                | SessionError::Desync(_)
        )
    }
}

/// How long a check for out-of-turn bytes under TLS may wait for the TLS layer to decrypt what is
/// already on the socket: records that carry no data (TLS 1.3 session tickets) are fine, data is
/// not. Only spent when the socket holds unread bytes.
const TLS_PENDING_GRACE: Duration = Duration::from_millis(50);

/// Most bytes of out-of-turn data shown in the transcript.
const PREVIEW: usize = 200;

/// How much one read of a reply asks the stream for.
const READ_CHUNK: usize = 4096;

/// Any byte stream a connection can run over besides TCP (in-memory streams in tests and fuzzing).
pub(crate) trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// The byte stream under a connection: plain TCP until STARTTLS, TLS after.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Other(Box<dyn Duplex>),
}

impl Stream {
    fn poll_read_once(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Other(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Other(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Other(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    /// Reads whatever can be read right now without waiting: nothing when the stream has no
    /// data (or is at its end, or failed: the next read reports those).
    async fn read_now(&mut self, out: &mut Vec<u8>) {
        let mut chunk = [0u8; PREVIEW];
        // One poll: data the runtime or the TLS layer already holds.
        let polled = poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut chunk);
            Poll::Ready(match self.poll_read_once(cx, &mut buf) {
                Poll::Ready(Ok(())) => buf.filled().len(),
                Poll::Ready(Err(_)) | Poll::Pending => 0,
            })
        })
        .await;
        if polled > 0 {
            out.extend_from_slice(&chunk[..polled]);
            return;
        }
        // The runtime learns of new data only when it next polls the OS: ask the kernel.
        match self {
            Stream::Plain(tcp) => {
                // A plain read on the non-blocking socket: WouldBlock when nothing is there.
                if let Ok(n) = (&*socket2::SockRef::from(&*tcp)).read(&mut chunk) {
                    out.extend_from_slice(&chunk[..n]);
                }
            }
            Stream::Tls(tls) => {
                // Raw bytes under TLS may be records without data; let the TLS layer decrypt
                // them, briefly, and see whether data comes out.
                let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
                let raw = socket2::SockRef::from(tls.get_ref().0).peek(&mut probe);
                if matches!(raw, Ok(n) if n > 0)
                    && let Ok(Ok(n)) =
                        tokio::time::timeout(TLS_PENDING_GRACE, tls.read(&mut chunk)).await
                {
                    out.extend_from_slice(&chunk[..n]);
                }
            }
            Stream::Other(_) => {}
        }
    }
}

/// How long to look for bytes after the reply to QUIT: servers close right after it.
const QUIT_GRACE: Duration = Duration::from_millis(250);

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
    /// Whether the EHLO reply in force offers PIPELINING (RFC 2920).
    pipelining: bool,
    /// Everything said on this connection.
    pub transcript: Transcript,
}

/// How much later than its fastest reply a reply must come to count as held back. Servers hold
/// replies back in whole seconds (Postfix's `smtpd_error_sleep_time`, 1 s); network jitter on a
/// campus is far below this.
const HELD_BACK: Duration = Duration::from_millis(800);

/// How long a positive reply must take to count as slow: a server looking the recipient up
/// (a policy service, a slow resolver) answers a campus client in milliseconds otherwise.
const SLOW_REPLY: Duration = Duration::from_millis(500);

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
    /// The slowest positive (2xx, 3xx) reply so far: slowness that is not an error sleep.
    slowest_positive: Duration,
}

impl ReplyPace {
    fn observe(&mut self, took: Duration, reply: &Reply) {
        if reply.class() >= 4 {
            self.errors += 1;
        }
        if reply.class() <= 3 {
            self.slowest_positive = self.slowest_positive.max(took);
        }
        self.fastest = Some(self.fastest.map_or(took, |f| f.min(took)));
        self.last = took;
    }
}

/// A socket ready to connect to `addr`, bound to `source` when one is given.
fn tcp_socket(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    Ok(socket)
}

/// Opens a TCP connection, optionally from a given local address.
pub async fn tcp_connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, SessionError> {
    let socket = tcp_socket(addr, source).map_err(SessionError::Connect)?;
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
    /// The local address of the TCP connection (the vantage the server sees), when it runs
    /// over TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self.stream.as_ref()? {
            Stream::Plain(s) => s.local_addr().ok(),
            Stream::Tls(s) => s.get_ref().0.local_addr().ok(),
            Stream::Other(_) => None,
        }
    }

    /// Wraps a connected stream as session number `session` of a host's audit.
    pub fn new(stream: TcpStream, session: u32, timing: Timing) -> Self {
        Self::with_stream(Stream::Plain(stream), session, timing)
    }

    /// A connection over any byte stream, such as an in-memory duplex in tests and fuzzing.
    /// STARTTLS is not possible on it.
    pub fn over(
        stream: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
        session: u32,
        timing: Timing,
    ) -> Self {
        Self::with_stream(Stream::Other(Box::new(stream)), session, timing)
    }

    fn with_stream(stream: Stream, session: u32, timing: Timing) -> Self {
        Connection {
            stream: Some(stream),
            buf: Vec::with_capacity(1024),
            session,
            timing,
            limits: Limits::default(),
            pace: ReplyPace::default(),
            pipelining: false,
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

    /// Whether the server is slow without punishing errors: a positive reply took 0.5 s
    /// (`SLOW_REPLY`) or more and replies are not being held back after errors. Such a server
    /// (a slow recipient lookup) answers parallel sessions just as fast, so more of them
    /// shorten its audit; one holding replies back after errors would only be provoked.
    pub fn answered_slowly(&self) -> bool {
        self.pace.slowest_positive >= SLOW_REPLY && !self.held_back_after_errors()
    }

    /// Whether commands may be sent in one flight: the EHLO reply in force offered PIPELINING.
    pub fn pipelining(&self) -> bool {
        self.pipelining
    }

    /// Records what the EHLO reply in force says about PIPELINING (a HELO reply offers nothing;
    /// after STARTTLS only the new EHLO reply counts).
    pub(crate) fn set_pipelining(&mut self, offered: bool) {
        self.pipelining = offered;
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
            // Straight into the buffer's free end: a 4 KiB array here would be part of every
            // session's future (some 4 KiB in each of the thousand sessions a sweep runs).
            let filled = self.buf.len();
            self.buf.resize(filled + READ_CHUNK, 0);
            let read = timeout_at(deadline, stream.read(&mut self.buf[filled..])).await;
            let got = match read {
                Ok(Ok(n)) => n,
                _ => 0,
            };
            self.buf.truncate(filled + got);
            match read {
                Ok(Ok(0)) => {
                    if !self.buf.is_empty() {
                        let preview = escape(&self.buf[..self.buf.len().min(200)]);
                        self.log(Direction::Server, preview);
                    }
                    self.log(Direction::Note, "server closed the connection");
                    return Err(SessionError::Closed);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.log(Direction::Note, format!("read error: {e}"));
                    return Err(e.into());
                }
                Err(_) => {
                    let err = late.take().expect("only taken once, then we return");
                    self.log(Direction::Note, err.to_string());
                    return Err(err);
                }
            }
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

    /// Fails with [`SessionError::Desync`] when the server has sent bytes that no command asked
    /// for: bytes left over after the last reply, or readable on the stream right now (looked
    /// for without waiting). The bytes are shown, escaped, in a note.
    pub async fn check_in_turn(&mut self) -> Result<(), SessionError> {
        let mut extra = self.buf.clone();
        if let Some(stream) = self.stream.as_mut() {
            stream.read_now(&mut extra).await;
        }
        if extra.is_empty() {
            return Ok(());
        }
        let preview = escape(&extra[..extra.len().min(PREVIEW)]);
        self.log(
            Direction::Note,
            format!("desync: the server sent data when no reply was due: {preview}"),
        );
        // Keep the bytes: whoever inspects the connection afterwards sees them as unread.
        self.buf = extra;
        Err(SessionError::Desync(preview))
    }

    /// Sends one command line without waiting for the reply, after checking that the server has
    /// sent nothing out of turn ([`Connection::check_in_turn`]).
    pub async fn send(&mut self, line: &str) -> Result<(), SessionError> {
        self.check_in_turn().await?;
        self.write_line(line).await
    }

    /// Sends `lines` in one flight and reads one reply per line, in order (RFC 2920), after
    /// checking that the server has sent nothing out of turn. Only for servers that offer
    /// PIPELINING ([`Connection::pipelining`]), and only for commands whose answers decide
    /// nothing about the commands after them in the flight (MAIL, RCPT, RSET). Each reply is
    /// read as strictly as in [`Connection::command`]: a complete reply each; anything more is
    /// caught as out of turn before the next command.
    ///
    /// Returns the replies read, in order, and the error that stopped the reading early, if
    /// any: a server may answer the first commands and then hang up (Exim after its third
    /// syntax error), and those answers still count.
    pub async fn pipeline(
        &mut self,
        lines: &[String],
    ) -> Result<(Vec<Reply>, Option<SessionError>), SessionError> {
        debug_assert!(
            self.pipelining,
            "pipelining only where the server offers it"
        );
        self.check_in_turn().await?;
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let mut since = Instant::now();
        self.write_lines(&refs).await?;
        let mut replies = Vec::with_capacity(lines.len());
        for _ in lines {
            match self.read_reply().await {
                Ok(reply) => {
                    // Each reply's wait counts from the one before: the server answers in order.
                    self.pace.observe(since.elapsed(), &reply);
                    since = Instant::now();
                    replies.push(reply);
                }
                Err(e) => return Ok((replies, Some(e))),
            }
        }
        Ok((replies, None))
    }

    /// Writes one command line, unchecked.
    async fn write_line(&mut self, line: &str) -> Result<(), SessionError> {
        self.write_lines(&[line]).await
    }

    /// Writes command lines in one write, unchecked.
    async fn write_lines(&mut self, lines: &[&str]) -> Result<(), SessionError> {
        let mut wire = Vec::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
        for line in lines {
            debug_assert!(!line.contains(['\r', '\n']), "one command per line");
            self.log(Direction::Client, *line);
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        let stream = self.stream.as_mut().ok_or(SessionError::Closed)?;
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

    /// Says QUIT and waits briefly for the goodbye; see [`Connection::quit_checked`]. Out-of-turn
    /// data is noted in the transcript.
    pub async fn quit(self) -> Transcript {
        self.quit_checked().await.0
    }

    /// Says QUIT, waits briefly for the goodbye, and tells whether the session was in step to its
    /// end: `Some(SessionError::Desync)` when the server had sent data out of turn before QUIT, or
    /// sent more after its reply to QUIT before closing (looked for within a short grace, as a
    /// server closes right after 221). A desync found only here still means that the replies of
    /// the session may have answered other commands than they seemed to: a reply owed to an
    /// earlier command was read as the goodbye, and the real goodbye came after it. The code of
    /// the goodbye itself is not judged (some servers answer QUIT with 250).
    pub async fn quit_checked(mut self) -> (Transcript, Option<SessionError>) {
        let mut desync = self.check_in_turn().await.err();
        self.buf.clear();
        if self.write_line("QUIT").await.is_err() {
            return (self.transcript, desync);
        }
        let short = Duration::from_secs(2).min(self.timing.command_timeout);
        self.timing = Timing {
            command_timeout: short,
            ..self.timing
        };
        if self.read_reply().await.is_err() {
            return (self.transcript, desync);
        }
        // Whatever comes after the goodbye, until the server closes, is out of turn.
        let grace = (Instant::now() + QUIT_GRACE.min(short)).min(self.timing.deadline);
        let mut after = std::mem::take(&mut self.buf);
        if let Some(stream) = self.stream.as_mut() {
            let mut chunk = [0u8; PREVIEW];
            while after.len() < PREVIEW {
                match timeout_at(grace, stream.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => after.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
        }
        if !after.is_empty() {
            let preview = escape(&after[..after.len().min(PREVIEW)]);
            self.log(
                Direction::Note,
                format!("desync: the server sent data after its reply to QUIT: {preview}"),
            );
            desync.get_or_insert(SessionError::Desync(preview));
        }
        (self.transcript, desync)
    }

    /// Says QUIT and closes at once, without waiting for a goodbye the server would hold back.
    pub async fn quit_now(mut self) -> Transcript {
        if self.write_line("QUIT").await.is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    fn timing() -> Timing {
        let now = Instant::now();
        Timing {
            started: now,
            command_timeout: Duration::from_secs(2),
            deadline: now + Duration::from_secs(10),
        }
    }

    /// A one-connection server on loopback: writes `greeting`, then answers each command line
    /// with what `answer` gives for it, as separate writes (a pause between them), and closes when
    /// `answer` gives nothing.
    async fn scripted(
        greeting: &'static [u8],
        answer: fn(&str) -> Vec<&'static [u8]>,
    ) -> Connection {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let _ = write.write_all(greeting).await;
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let writes = answer(&line.to_ascii_uppercase());
                if writes.is_empty() {
                    return;
                }
                for bytes in writes {
                    let _ = write.write_all(bytes).await;
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
        });
        let tcp = tcp_connect(addr, None, Duration::from_secs(2))
            .await
            .unwrap();
        Connection::new(tcp, 1, timing())
    }

    fn notes(conn: &Connection) -> Vec<String> {
        conn.transcript
            .lines
            .iter()
            .filter(|l| l.dir == Direction::Note)
            .map(|l| l.text.clone())
            .collect()
    }

    /// A server that refuses relaying and goes quiet after its goodbye.
    fn polite(cmd: &str) -> Vec<&'static [u8]> {
        if cmd.starts_with("QUIT") {
            vec![b"221 bye\r\n"]
        } else if cmd.starts_with("RCPT") {
            vec![b"550 5.7.1 relay denied\r\n"]
        } else {
            vec![b"250 ok\r\n"]
        }
    }

    #[tokio::test]
    async fn a_server_in_step_is_never_called_desynchronised() {
        let mut conn = scripted(b"220 mx.campus.test ESMTP\r\n", polite).await;
        assert_eq!(conn.read_reply().await.unwrap().code, 220);
        for (cmd, code) in [
            ("EHLO scanner.test", 250),
            ("MAIL FROM:<>", 250),
            ("RCPT TO:<a@ext.example>", 550),
            ("RSET", 250),
        ] {
            assert_eq!(conn.command(cmd).await.unwrap().code, code, "{cmd}");
        }
        let (transcript, desync) = conn.quit_checked().await;
        assert!(desync.is_none(), "{desync:?} {transcript:?}");
        assert!(!transcript.lines.iter().any(|l| l.text.contains("desync")));
    }

    #[tokio::test]
    async fn a_double_greeting_sent_at_once_is_a_desync() {
        let mut conn = scripted(
            b"220 mx.campus.test ESMTP\r\n220 mx.campus.test ESMTP again\r\n",
            polite,
        )
        .await;
        // Let both greetings arrive before the first is read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(conn.read_reply().await.unwrap().code, 220);
        let err = conn.command("EHLO scanner.test").await.unwrap_err();
        assert!(err.is_retryable());
        let SessionError::Desync(preview) = &err else {
            panic!("{err:?}")
        };
        assert!(
            preview.contains("220 mx.campus.test ESMTP again"),
            "{preview}"
        );
        assert!(
            notes(&conn).iter().any(|n| n.starts_with("desync:")),
            "{:?}",
            conn.transcript
        );
        // EHLO was never sent.
        assert!(
            !conn
                .transcript
                .lines
                .iter()
                .any(|l| l.dir == Direction::Client)
        );
    }

    #[tokio::test]
    async fn an_unsolicited_250_after_a_refused_rcpt_is_a_desync() {
        // The 250 comes in a separate write, 30 ms after the refusal: it is not in the buffer
        // when the refusal is parsed, only on the socket by the time of the next command.
        let mut conn = scripted(b"220 mx.campus.test ESMTP\r\n", |cmd| {
            if cmd.starts_with("RCPT") {
                vec![b"550 5.7.1 relay denied\r\n", b"250 2.1.5 ok\r\n"]
            } else {
                polite(cmd)
            }
        })
        .await;
        conn.read_reply().await.unwrap();
        conn.command("EHLO scanner.test").await.unwrap();
        conn.command("MAIL FROM:<probe@scanner.test>")
            .await
            .unwrap();
        let rcpt = conn.command("RCPT TO:<victim@ext.example>").await.unwrap();
        assert_eq!(rcpt.code, 550);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let err = conn.command("RSET").await.unwrap_err();
        assert!(
            matches!(&err, SessionError::Desync(p) if p.contains("250 2.1.5 ok")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn bytes_after_the_reply_to_quit_are_a_desync() {
        let mut conn = scripted(b"220 mx.campus.test ESMTP\r\n", |cmd| {
            if cmd.starts_with("QUIT") {
                vec![b"221 bye\r\n", b"250 2.1.5 late answer\r\n"]
            } else {
                polite(cmd)
            }
        })
        .await;
        conn.read_reply().await.unwrap();
        conn.command("EHLO scanner.test").await.unwrap();
        let (transcript, desync) = conn.quit_checked().await;
        assert!(
            matches!(&desync, Some(SessionError::Desync(p)) if p.contains("late answer")),
            "{desync:?}"
        );
        assert!(
            transcript
                .lines
                .iter()
                .any(|l| l.dir == Direction::Note && l.text.contains("after its reply to QUIT"))
        );
    }

    #[tokio::test]
    async fn in_memory_streams_are_checked_too() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        server.write_all(b"220 one\r\n220 two\r\n").await.unwrap();
        let mut conn = Connection::over(client, 1, timing());
        assert_eq!(conn.read_reply().await.unwrap().lines, ["one"]);
        assert!(matches!(
            conn.send("EHLO x").await,
            Err(SessionError::Desync(p)) if p == "220 two\\r\\n"
        ));
        // The bytes stay unread for whoever looks next.
        assert!(conn.has_unread_bytes());
    }
}
