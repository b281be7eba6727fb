//! Building and delivering the messages with lettre: mailboxes that cannot inject headers,
//! multipart text + HTML, SMTP (plain, STARTTLS or implicit TLS, optional AUTH) or .eml files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::error::{Error, Result, chain};

/// Longest display name kept in a header (longer ones are cut).
const MAX_NAME_CHARS: usize = 200;

/// Collapses any run of control characters and white space (CR, LF, tab, …) into one space,
/// so text from the registry can never start a new header line.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A mailbox from registry data: the address is validated (no white space, control characters
/// or header syntax, then lettre's own parser); the name is reduced to one line.
pub fn mailbox(name: &str, email: &str) -> Result<Mailbox> {
    let email = crate::model::parse_email(email)?;
    let address: Address = email
        .parse()
        .map_err(|e| Error::Invalid(format!("invalid e-mail address {email:?}: {e}")))?;
    let name: String = one_line(name).chars().take(MAX_NAME_CHARS).collect();
    Ok(Mailbox::new((!name.is_empty()).then_some(name), address))
}

/// A fresh Message-ID (with angle brackets) in the sender's domain.
pub fn new_message_id(from: &Mailbox, now: i64) -> Result<String> {
    let random = crate::token::generate("n")?;
    let random = random.trim_start_matches("n_");
    Ok(format!(
        "<relayguard.{now}.{}@{}>",
        &random[..24],
        from.email.domain()
    ))
}

/// The digest as a MIME message: multipart/alternative with a UTF-8 text and an HTML part.
/// lettre encodes non-ASCII subjects and names as RFC 2047 encoded words.
pub fn build(
    from: &Mailbox,
    to: &Mailbox,
    subject: &str,
    message_id: &str,
    text: String,
    html: String,
) -> Result<Message> {
    Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(one_line(subject))
        .message_id(Some(message_id.to_string()))
        .date_now()
        .user_agent(format!("relayguard {}", env!("CARGO_PKG_VERSION")))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| Error::Invalid(format!("cannot build message to {}: {e}", to.email)))
}

/// Where the SMTP server is and how to talk to it.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// `smtp://HOST[:PORT]` (plain, or STARTTLS with `starttls`) or `smtps://HOST[:PORT]`.
    pub url: String,
    /// Require STARTTLS (the certificate is verified with the platform's trust store).
    pub starttls: bool,
    /// AUTH user name.
    pub user: Option<String>,
    /// AUTH password.
    pub password: Option<String>,
    /// Extra trusted CA certificates (PEM) for the relay's certificate, e.g. a campus CA.
    pub ca_pem: Option<Vec<u8>>,
}

/// Splits `smtp://HOST[:PORT]` into (implicit TLS?, host, port).
pub fn parse_smtp_url(url: &str) -> Result<(bool, String, u16)> {
    let bad = |why: &str| Error::Invalid(format!("invalid --smtp {url:?}: {why}"));
    let (tls, rest) = if let Some(r) = url.strip_prefix("smtp://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("smtps://") {
        (true, r)
    } else {
        return Err(bad("expected smtp://HOST:PORT or smtps://HOST:PORT"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', ' ']) {
        return Err(bad("bad host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("bad port"))?,
        None if tls => 465,
        None => 25,
    };
    Ok((tls, host, port))
}

/// An SMTP transport for `opts` (connections are pooled across the run's messages).
pub fn smtp_transport(opts: &SmtpOptions) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let (implicit_tls, host, port) = parse_smtp_url(&opts.url)?;
    let tls_err = |e: lettre::transport::smtp::Error| {
        Error::Invalid(format!("cannot set up TLS to {host}: {e}"))
    };
    let builder = if implicit_tls {
        AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(tls_err)?
    } else if opts.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(tls_err)?
    } else {
        if opts.user.is_some() {
            tracing::warn!("SMTP AUTH without TLS: the password crosses the network in clear text");
        }
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
    };
    let mut builder = builder.port(port).timeout(Some(Duration::from_secs(60)));
    if let Some(pem) = &opts.ca_pem
        && (implicit_tls || opts.starttls)
    {
        let ca = Certificate::from_pem(pem)
            .map_err(|e| Error::Invalid(format!("--smtp-ca is not a PEM certificate: {e}")))?;
        let params = TlsParameters::builder(host.clone())
            .add_root_certificate(ca)
            .build()
            .map_err(tls_err)?;
        builder = builder.tls(if implicit_tls {
            Tls::Wrapper(params)
        } else {
            Tls::Required(params)
        });
    }
    if let Some(user) = &opts.user {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            opts.password.clone().unwrap_or_default(),
        ));
    }
    Ok(builder.build())
}

/// Sends one message; returns the server's reply to DATA.
pub async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    message: Message,
) -> Result<String> {
    let response = transport
        .send(message)
        .await
        .map_err(|e| Error::Delivery(chain(&e)))?;
    Ok(format!(
        "{} {}",
        response.code(),
        response.message().collect::<Vec<_>>().join(" ")
    ))
}

/// Writes `message` to `dir/NAME.eml` (created if needed) and returns the path.
pub fn write_eml(dir: &Path, index: usize, admin: &str, message: &Message) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let safe: String = admin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{index:03}-{safe}.eml"));
    std::fs::write(&path, message.formatted())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_line_breaks_stay_on_one_header_line() {
        let from = mailbox("relayguard", "security@campus.test").unwrap();
        let to = mailbox("Eve\r\nBcc: victim@evil.example\r\n", "eve@campus.test").unwrap();
        let msg = build(
            &from,
            &to,
            "hello\r\nX-Injected: 1",
            "<a@b.c>",
            "t".into(),
            "<p>h</p>".into(),
        )
        .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        let headers = raw.split("\r\n\r\n").next().unwrap();
        assert!(
            !headers
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{headers}"
        );
        assert!(
            !headers.lines().any(|l| l.starts_with("X-Injected")),
            "{headers}"
        );
        assert_eq!(msg.envelope().to().len(), 1);
        assert_eq!(msg.envelope().to()[0].to_string(), "eve@campus.test");
    }

    #[test]
    fn addresses_with_header_syntax_are_refused() {
        for bad in [
            "a@b.c\r\nBcc: x@y.z",
            "a@b.c, x@y.z",
            "<a@b.c>",
            "a b@c.d",
            "nobody",
        ] {
            assert!(mailbox("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn smtp_urls() {
        assert_eq!(
            parse_smtp_url("smtp://127.0.0.1:2525").unwrap(),
            (false, "127.0.0.1".into(), 2525)
        );
        assert_eq!(
            parse_smtp_url("smtp://mx.campus.test").unwrap(),
            (false, "mx.campus.test".into(), 25)
        );
        assert_eq!(
            parse_smtp_url("smtps://[::1]").unwrap(),
            (true, "::1".into(), 465)
        );
        assert!(parse_smtp_url("http://x").is_err());
        assert!(parse_smtp_url("smtp://x:0").is_err());
        assert!(parse_smtp_url("smtp://u@x:25").is_err());
    }
}
