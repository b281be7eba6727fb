//! Opening an SMTP session in explicit stages: [`connect`] gives a [`Connected`] stream (made
//! secure by [`Connected::implicit_tls`] on port 465), whose greeting gives a [`Greeted`]
//! session, whose EHLO (HELO fallback) gives an [`Introduced`] one, which [`Introduced::starttls`]
//! upgrades. Each stage owns the connection, so a failure at any stage returns everything seen
//! so far as a [`Failed`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use relayguard_core::scan::TlsInfo;
use relayguard_core::{Direction, Transcript};
use tokio::time::Instant;

use super::connection::{Connection, SessionError, Timing, tcp_connect};
use super::hostname::name_in;
use super::reply::Reply;
use super::tls::TlsSetup;
use crate::pacing::Pacer;

/// How to use TLS on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (port 465, "submissions").
    Implicit,
    /// STARTTLS when the server offers it.
    StartTls,
    /// Never (used after a failed handshake, so the other tests can still run).
    Plain,
}

/// What every session of a host shares.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name given in EHLO/HELO.
    pub ehlo_name: String,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// The local address to connect from, if any.
    pub source: Option<IpAddr>,
    /// TLS set-up.
    pub tls: TlsSetup,
}

/// What the opening of a session showed.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// The 220 greeting.
    pub banner: Reply,
    /// The EHLO (or HELO) reply in force: after TLS when TLS was started.
    pub ehlo: Reply,
    /// The EHLO reply before STARTTLS, when TLS was started (what a plaintext client sees).
    pub plaintext_ehlo: Option<Reply>,
    /// True when EHLO was refused and HELO used.
    pub helo_fallback: bool,
    /// The TLS handshake, when one was tried.
    pub tls: Option<TlsInfo>,
    /// Bytes the server sent after its 220 to STARTTLS, before the handshake.
    pub starttls_injection: Option<String>,
    /// The greeting came in stages (`220-` lines before the final `220 `) or its final line
    /// came late: how a gate in front of the server (Postfix's postscreen) greets, watching
    /// whether the client talks before the final line.
    pub staged: bool,
}

/// How long after the connect a greeting's final line must come to count as held back by a
/// gate: postscreen waits `postscreen_greet_wait` (2 to 6 s) before it; a server answering
/// normally greets within milliseconds.
pub const LATE_GREETING: Duration = Duration::from_secs(1);

impl Greeting {
    /// The host name the greeting starts with, if any.
    pub fn banner_name(&self) -> Option<String> {
        first_name(&self.banner)
    }

    /// The host name the EHLO (or HELO) reply starts with, if any.
    pub fn ehlo_name(&self) -> Option<String> {
        first_name(&self.ehlo)
    }
}

/// Why a session could not be opened.
#[derive(Debug)]
pub enum OpenFailure {
    /// The TCP connect failed.
    Connect(SessionError),
    /// The server did not greet in time or hung up before greeting.
    NoBanner(SessionError),
    /// The server's bytes are not SMTP.
    NotSmtp(String),
    /// The server greeted with (or answered EHLO and HELO with) a refusal.
    Refused(Reply),
    /// The TLS handshake failed; a plaintext session may still work.
    Tls,
    /// The connection failed later in the opening.
    Lost(SessionError),
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenFailure::Connect(e) => write!(f, "{e}"),
            OpenFailure::NoBanner(e) => write!(f, "no SMTP greeting: {e}"),
            OpenFailure::NotSmtp(what) => write!(f, "not SMTP: {what}"),
            OpenFailure::Refused(r) => write!(f, "server refused the session: {}", r.summary()),
            OpenFailure::Tls => write!(f, "TLS handshake failed"),
            OpenFailure::Lost(e) => write!(f, "{e}"),
        }
    }
}

/// A failed opening with everything that was seen on the way.
#[derive(Debug)]
pub struct Failed {
    /// Why it failed.
    pub reason: OpenFailure,
    /// The conversation up to the failure.
    pub transcript: Transcript,
    /// The greeting, if one came.
    pub banner: Option<Reply>,
    /// The TLS attempt, if one was made.
    pub tls: Option<TlsInfo>,
    /// Bytes the server sent after its 220 to STARTTLS, if it did.
    pub starttls_injection: Option<String>,
}

/// Finds an EHLO keyword (case-insensitive) and returns its parameters.
pub fn extension<'a>(ehlo: &'a Reply, keyword: &str) -> Option<&'a str> {
    ehlo.lines.iter().skip(1).find_map(|line| {
        let mut parts = line.splitn(2, [' ', '=']);
        let word = parts.next()?;
        word.eq_ignore_ascii_case(keyword)
            .then(|| parts.next().unwrap_or("").trim())
    })
}

/// Where and as what one session of a host is opened.
#[derive(Debug, Clone, Copy)]
pub struct SessionTarget<'a> {
    /// The server.
    pub addr: SocketAddr,
    /// The name the operator gave for the host: the certificate is checked against it.
    pub known_name: Option<&'a str>,
    /// How to use TLS.
    pub mode: TlsMode,
    /// The session's number in the host's transcript.
    pub session: u32,
    /// The host's timing.
    pub timing: Timing,
}

/// Opens a session: [`connect`], then [`Connected::implicit_tls`] when `target.mode` says so,
/// [`Connected::greeting`], [`Greeted::hello`], and [`Introduced::starttls`] when the mode asks
/// for it and the server offers it.
///
/// The certificate is checked against `known_name` (the name the operator gave), else the name
/// in the greeting or EHLO reply, else the address.
pub async fn open(
    config: &SessionConfig,
    pacer: &Pacer,
    target: &SessionTarget<'_>,
) -> Result<(Connection, Greeting), Failed> {
    let mut connected = connect(config, pacer, target).await?;
    if target.mode == TlsMode::Implicit {
        connected = connected.implicit_tls(&config.tls, target).await?;
    }
    let introduced = connected.greeting().await?.hello(&config.ehlo_name).await?;
    if target.mode == TlsMode::StartTls && introduced.offers("STARTTLS") {
        introduced.starttls(config, target).await
    } else {
        Ok(introduced.into_session())
    }
}

/// The first stage: a TCP connection (encrypted, after [`Connected::implicit_tls`]) on which
/// the server has not spoken yet.
pub struct Connected {
    conn: Connection,
    tls: Option<TlsInfo>,
    since: Instant,
}

/// The second stage: the server greeted with 220.
pub struct Greeted {
    conn: Connection,
    tls: Option<TlsInfo>,
    banner: Reply,
    staged: bool,
}

/// The third stage: the server answered EHLO (or HELO); STARTTLS may follow.
pub struct Introduced {
    conn: Connection,
    tls: Option<TlsInfo>,
    banner: Reply,
    ehlo: Reply,
    helo_fallback: bool,
    staged: bool,
}

/// A failed opening with what the stage had seen.
fn failed(
    conn: Connection,
    reason: OpenFailure,
    banner: Option<Reply>,
    tls: Option<TlsInfo>,
) -> Failed {
    Failed {
        reason,
        transcript: conn.into_transcript(),
        banner,
        tls,
        starttls_injection: None,
    }
}

/// Connects to `target.addr` at the host's pace, trying once more when the connect times out.
pub async fn connect(
    config: &SessionConfig,
    pacer: &Pacer,
    target: &SessionTarget<'_>,
) -> Result<Connected, Failed> {
    let addr = target.addr;
    pacer.wait().await;
    // A lost SYN looks like silence: try once more before giving up on the session (discovery
    // does the same), or one dropped packet would cost the host its whole audit.
    let mut attempt = tcp_connect(addr, config.source, config.connect_timeout).await;
    if matches!(&attempt, Err(SessionError::Connect(e)) if e.kind() == std::io::ErrorKind::TimedOut)
    {
        pacer.wait().await;
        attempt = tcp_connect(addr, config.source, config.connect_timeout).await;
    }
    match attempt {
        Ok(tcp) => {
            let mut conn = Connection::new(tcp, target.session, target.timing);
            conn.log(Direction::Note, format!("connected to {addr}"));
            Ok(Connected {
                conn,
                tls: None,
                since: Instant::now(),
            })
        }
        Err(e) => {
            let mut transcript = Transcript::default();
            transcript.push(relayguard_core::TranscriptLine {
                session: target.session,
                ms: target.timing.started.elapsed().as_millis() as u64,
                dir: Direction::Note,
                text: format!("connect to {addr}: {e}"),
            });
            Err(Failed {
                reason: OpenFailure::Connect(e),
                transcript,
                banner: None,
                tls: None,
                starttls_injection: None,
            })
        }
    }
}

impl Connected {
    /// Encrypts the connection before the greeting (port 465), checking the certificate
    /// against the operator's name for the host, else its address.
    pub async fn implicit_tls(
        mut self,
        tls: &TlsSetup,
        target: &SessionTarget<'_>,
    ) -> Result<Connected, Failed> {
        let name = target
            .known_name
            .map_or_else(|| target.addr.ip().to_string(), str::to_string);
        let info = handshake(&mut self.conn, tls, &name).await;
        let established = info.established;
        self.tls = Some(info);
        if established {
            Ok(self)
        } else {
            Err(failed(self.conn, OpenFailure::Tls, None, self.tls))
        }
    }

    /// Reads the greeting: a 220, else a refusal or something that is not SMTP. Nothing is
    /// sent before its final line: a multi-line greeting is read whole (a client that talks
    /// after `220-` fails postscreen's pregreet test).
    pub async fn greeting(mut self) -> Result<Greeted, Failed> {
        let banner = match self.conn.read_reply().await {
            Ok(reply) => reply,
            Err(SessionError::Protocol(e)) => {
                let reason = OpenFailure::NotSmtp(e.to_string());
                return Err(failed(self.conn, reason, None, self.tls));
            }
            Err(e) => return Err(failed(self.conn, OpenFailure::NoBanner(e), None, self.tls)),
        };
        if banner.code != 220 {
            let reason = if banner.class() == 2 {
                OpenFailure::NotSmtp(format!("greeting code {} instead of 220", banner.code))
            } else {
                OpenFailure::Refused(banner.clone())
            };
            return Err(failed(self.conn, reason, Some(banner), self.tls));
        }
        let staged = banner.lines.len() > 1 || self.since.elapsed() >= LATE_GREETING;
        Ok(Greeted {
            conn: self.conn,
            tls: self.tls,
            banner,
            staged,
        })
    }
}

impl Greeted {
    /// Says EHLO as `name`, and HELO when EHLO is refused with a permanent error.
    pub async fn hello(mut self, name: &str) -> Result<Introduced, Failed> {
        match say_hello(&mut self.conn, name).await {
            Ok((ehlo, helo_fallback)) => Ok(Introduced {
                conn: self.conn,
                tls: self.tls,
                banner: self.banner,
                ehlo,
                helo_fallback,
                staged: self.staged,
            }),
            Err(reason) => Err(failed(self.conn, reason, Some(self.banner), self.tls)),
        }
    }
}

impl Introduced {
    /// Whether the EHLO reply offers `keyword`.
    pub fn offers(&self, keyword: &str) -> bool {
        extension(&self.ehlo, keyword).is_some()
    }

    /// The session as it stands, without TLS.
    pub fn into_session(self) -> (Connection, Greeting) {
        let greeting = Greeting {
            banner: self.banner,
            ehlo: self.ehlo,
            plaintext_ehlo: None,
            helo_fallback: self.helo_fallback,
            tls: self.tls,
            starttls_injection: None,
            staged: self.staged,
        };
        (self.conn, greeting)
    }

    /// Says STARTTLS, runs the handshake and greets again (RFC 3207). A server that refuses
    /// STARTTLS leaves a plaintext session with the refusal recorded as its TLS attempt; one
    /// that sends bytes after its 220 has them recorded as an injection.
    pub async fn starttls(
        mut self,
        config: &SessionConfig,
        target: &SessionTarget<'_>,
    ) -> Result<(Connection, Greeting), Failed> {
        let reply = match self.conn.command("STARTTLS").await {
            Ok(r) => r,
            Err(e) => {
                return Err(failed(
                    self.conn,
                    OpenFailure::Lost(e),
                    Some(self.banner),
                    self.tls,
                ));
            }
        };
        if reply.code != 220 {
            self.tls = Some(TlsInfo {
                established: false,
                version: None,
                cipher: None,
                checked_name: target.known_name.unwrap_or_default().to_string(),
                certificate_valid: false,
                error: Some(format!("STARTTLS refused: {}", reply.summary())),
                chain: Vec::new(),
            });
            return Ok(self.into_session());
        }
        let mut starttls_injection = None;
        if self.conn.has_unread_bytes() {
            let preview = self.conn.unread_preview();
            self.conn.log(
                Direction::Note,
                format!("server sent bytes after 220 to STARTTLS: {preview}"),
            );
            starttls_injection = Some(preview);
        }
        let name = target
            .known_name
            .map(str::to_string)
            .or_else(|| first_name(&self.banner))
            .or_else(|| first_name(&self.ehlo))
            .unwrap_or_else(|| target.addr.ip().to_string());
        let info = handshake(&mut self.conn, &config.tls, &name).await;
        let established = info.established;
        let tls = Some(info);
        if !established {
            return Err(Failed {
                starttls_injection,
                ..failed(self.conn, OpenFailure::Tls, Some(self.banner), tls)
            });
        }
        // RFC 3207: forget what was learned before TLS and greet again.
        match say_hello(&mut self.conn, &config.ehlo_name).await {
            Ok((after, _)) => Ok((
                self.conn,
                Greeting {
                    banner: self.banner,
                    ehlo: after,
                    plaintext_ehlo: Some(self.ehlo),
                    helo_fallback: self.helo_fallback,
                    tls,
                    starttls_injection,
                    staged: self.staged,
                },
            )),
            Err(reason) => Err(Failed {
                starttls_injection,
                ..failed(self.conn, reason, Some(self.banner), tls)
            }),
        }
    }
}

/// The host name the first line of a reply starts with.
fn first_name(reply: &Reply) -> Option<String> {
    reply.lines.first().and_then(|l| name_in(l))
}

/// Runs a TLS handshake over the connection's plain stream and logs what it showed; the
/// connection carries the TLS stream afterwards when the handshake completed.
async fn handshake(conn: &mut Connection, tls: &TlsSetup, name: &str) -> TlsInfo {
    let Some(tcp) = conn.take_plain() else {
        return TlsInfo {
            established: false,
            version: None,
            cipher: None,
            checked_name: name.to_string(),
            certificate_valid: false,
            error: Some("the connection is already encrypted".into()),
            chain: Vec::new(),
        };
    };
    let (stream, info) = tls.handshake(tcp, name).await;
    conn.log(Direction::Note, tls_note(&info));
    if let Some(stream) = stream {
        conn.set_tls(stream);
    }
    info
}

/// Says EHLO, and HELO when EHLO is refused with a permanent error (old or minimal servers).
async fn say_hello(conn: &mut Connection, name: &str) -> Result<(Reply, bool), OpenFailure> {
    let ehlo = conn
        .command(&format!("EHLO {name}"))
        .await
        .map_err(OpenFailure::Lost)?;
    if ehlo.is_positive() {
        conn.set_pipelining(extension(&ehlo, "PIPELINING").is_some());
        return Ok((ehlo, false));
    }
    conn.set_pipelining(false);
    if ehlo.class() != 5 {
        return Err(OpenFailure::Refused(ehlo));
    }
    let helo = conn
        .command(&format!("HELO {name}"))
        .await
        .map_err(OpenFailure::Lost)?;
    if helo.is_positive() {
        Ok((helo, true))
    } else {
        Err(OpenFailure::Refused(helo))
    }
}

fn tls_note(info: &TlsInfo) -> String {
    if info.established {
        format!(
            "TLS established: {} {}{}",
            info.version.as_deref().unwrap_or("?"),
            info.cipher.as_deref().unwrap_or("?"),
            match &info.error {
                Some(e) => format!("; certificate not valid for {}: {e}", info.checked_name),
                None => String::new(),
            }
        )
    } else {
        format!(
            "TLS handshake failed: {}",
            info.error.as_deref().unwrap_or("unknown error")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_found_case_insensitively_with_parameters() {
        let ehlo = Reply {
            code: 250,
            enhanced: None,
            lines: vec![
                "mx.example".into(),
                "PIPELINING".into(),
                "auth PLAIN LOGIN".into(),
                "AUTH=LOGIN".into(),
                "starttls".into(),
            ],
        };
        assert_eq!(extension(&ehlo, "STARTTLS"), Some(""));
        assert_eq!(extension(&ehlo, "AUTH"), Some("PLAIN LOGIN"));
        assert_eq!(extension(&ehlo, "SIZE"), None);
        // The greeting line is not an extension even when it looks like one.
        let odd = Reply {
            code: 250,
            enhanced: None,
            lines: vec!["STARTTLS".into()],
        };
        assert_eq!(extension(&odd, "STARTTLS"), None);
    }
}
