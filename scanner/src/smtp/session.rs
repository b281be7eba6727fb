//! Opening an SMTP session: connect, greeting, EHLO (HELO fallback), STARTTLS or implicit TLS.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use relayguard_core::scan::TlsInfo;
use relayguard_core::{Direction, Transcript};

use super::connection::{Connection, SessionError, Timing, tcp_connect};
use super::reply::Reply;
use super::tls::TlsSetup;
use crate::pacing::Pacer;
use crate::probes::names::name_in;

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

/// Opens session number `session` to `addr`: connects, reads the greeting, says EHLO (HELO if
/// refused) and starts TLS as `mode` says.
///
/// The certificate is checked against `known_name` (the name the operator gave), else the name
/// in the greeting or EHLO reply, else the address.
pub async fn open(
    addr: SocketAddr,
    config: &SessionConfig,
    pacer: &Pacer,
    known_name: Option<&str>,
    mode: TlsMode,
    session: u32,
    timing: Timing,
) -> Result<(Connection, Greeting), Failed> {
    pacer.wait().await;
    let fail = |conn: Option<Connection>, reason, banner, tls| Failed {
        reason,
        transcript: conn.map(Connection::into_transcript).unwrap_or_default(),
        banner,
        tls,
        starttls_injection: None,
    };
    // A lost SYN looks like silence: try once more before giving up on the session (discovery
    // does the same), or one dropped packet would cost the host its whole audit.
    let mut attempt = tcp_connect(addr, config.source, config.connect_timeout).await;
    if matches!(&attempt, Err(SessionError::Connect(e)) if e.kind() == std::io::ErrorKind::TimedOut)
    {
        pacer.wait().await;
        attempt = tcp_connect(addr, config.source, config.connect_timeout).await;
    }
    let tcp = match attempt {
        Ok(tcp) => tcp,
        Err(e) => {
            let mut t = Transcript::default();
            t.push(relayguard_core::TranscriptLine {
                session,
                ms: timing.started.elapsed().as_millis() as u64,
                dir: Direction::Note,
                text: format!("connect to {addr}: {e}"),
            });
            return Err(Failed {
                reason: OpenFailure::Connect(e),
                transcript: t,
                banner: None,
                tls: None,
                starttls_injection: None,
            });
        }
    };
    let mut conn = Connection::new(tcp, session, timing);
    conn.log(Direction::Note, format!("connected to {addr}"));
    let mut tls = None;

    if mode == TlsMode::Implicit {
        let tcp = conn.take_plain().expect("a new connection is plain");
        let tls_name = known_name.map_or_else(|| addr.ip().to_string(), str::to_string);
        let (stream, info) = config.tls.handshake(tcp, &tls_name).await;
        conn.log(Direction::Note, tls_note(&info));
        tls = Some(info);
        match stream {
            Some(s) => conn.set_tls(s),
            None => return Err(fail(Some(conn), OpenFailure::Tls, None, tls)),
        }
    }

    let banner = match conn.read_reply().await {
        Ok(reply) => reply,
        Err(SessionError::Protocol(e)) => {
            return Err(fail(
                Some(conn),
                OpenFailure::NotSmtp(e.to_string()),
                None,
                tls,
            ));
        }
        Err(e) => return Err(fail(Some(conn), OpenFailure::NoBanner(e), None, tls)),
    };
    if banner.code != 220 {
        let reason = if banner.class() == 2 {
            OpenFailure::NotSmtp(format!("greeting code {} instead of 220", banner.code))
        } else {
            OpenFailure::Refused(banner.clone())
        };
        return Err(fail(Some(conn), reason, Some(banner), tls));
    }

    let (mut ehlo, helo_fallback) = match say_hello(&mut conn, &config.ehlo_name).await {
        Ok(pair) => pair,
        Err(reason) => return Err(fail(Some(conn), reason, Some(banner), tls)),
    };

    let mut plaintext_ehlo = None;
    let mut starttls_injection = None;
    if mode == TlsMode::StartTls && extension(&ehlo, "STARTTLS").is_some() {
        let reply = match conn.command("STARTTLS").await {
            Ok(r) => r,
            Err(e) => return Err(fail(Some(conn), OpenFailure::Lost(e), Some(banner), tls)),
        };
        if reply.code == 220 {
            if conn.has_unread_bytes() {
                let preview = conn.unread_preview();
                conn.log(
                    Direction::Note,
                    format!("server sent bytes after 220 to STARTTLS: {preview}"),
                );
                starttls_injection = Some(preview);
            }
            let tcp = conn
                .take_plain()
                .expect("STARTTLS is only tried on a plain stream");
            let tls_name = known_name
                .map(str::to_string)
                .or_else(|| banner.lines.first().and_then(|l| name_in(l)))
                .or_else(|| ehlo.lines.first().and_then(|l| name_in(l)))
                .unwrap_or_else(|| addr.ip().to_string());
            let (stream, info) = config.tls.handshake(tcp, &tls_name).await;
            conn.log(Direction::Note, tls_note(&info));
            tls = Some(info);
            let Some(stream) = stream else {
                return Err(Failed {
                    starttls_injection,
                    ..fail(Some(conn), OpenFailure::Tls, Some(banner), tls)
                });
            };
            conn.set_tls(stream);
            // RFC 3207: forget what was learned before TLS and greet again.
            match say_hello(&mut conn, &config.ehlo_name).await {
                Ok((after, _)) => plaintext_ehlo = Some(std::mem::replace(&mut ehlo, after)),
                Err(reason) => return Err(fail(Some(conn), reason, Some(banner), tls)),
            }
        } else {
            tls = Some(TlsInfo {
                established: false,
                version: None,
                cipher: None,
                checked_name: known_name.unwrap_or_default().to_string(),
                certificate_valid: false,
                error: Some(format!("STARTTLS refused: {}", reply.summary())),
                chain: Vec::new(),
            });
        }
    }

    Ok((
        conn,
        Greeting {
            banner,
            ehlo,
            plaintext_ehlo,
            helo_fallback,
            tls,
            starttls_injection,
        },
    ))
}

/// Says EHLO, and HELO when EHLO is refused with a permanent error (old or minimal servers).
async fn say_hello(conn: &mut Connection, name: &str) -> Result<(Reply, bool), OpenFailure> {
    let ehlo = conn
        .command(&format!("EHLO {name}"))
        .await
        .map_err(OpenFailure::Lost)?;
    if ehlo.is_positive() {
        return Ok((ehlo, false));
    }
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
