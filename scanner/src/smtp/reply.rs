//! SMTP reply parsing, separated from I/O.
//!
//! The parser takes whatever bytes have arrived and either returns one complete reply and how many
//! bytes it used, says it needs more, or says why the bytes cannot be SMTP. It is bounded (line
//! length and line count) because the peer is untrusted, tolerant where real servers are sloppy
//! (bare LF line endings, a bare `250` without text), and it never panics: see the property tests.

use std::fmt;

/// Bounds on what one reply may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest line accepted, in bytes, line ending excluded. RFC 5321 says 512 with CRLF; real
    /// servers exceed it in EHLO replies, so the default is generous.
    pub max_line: usize,
    /// Most lines in one multi-line reply.
    pub max_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 2048,
            max_lines: 128,
        }
    }
}

/// An RFC 3463 enhanced status code such as `5.7.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject: 1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol, 6 content,
    /// 7 security or policy.
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code of the first line, if it has one.
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line after the code and separator, with control characters escaped.
    pub lines: Vec<String>,
}

impl Reply {
    /// The first digit of the code: 2 success, 3 intermediate, 4 transient, 5 permanent.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// Whether the code is 2xx.
    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    /// The text of every line joined with spaces.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// The reply as the server sent it, one `DDD-text`/`DDD text` string per line.
    pub fn wire_lines(&self) -> Vec<String> {
        let last = self.lines.len().saturating_sub(1);
        self.lines
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let sep = if i == last { ' ' } else { '-' };
                if text.is_empty() && i == last {
                    self.code.to_string()
                } else {
                    format!("{}{}{}", self.code, sep, text)
                }
            })
            .collect()
    }

    /// The code and the text of every line on one line, e.g.
    /// `550 Verification failed for <a@b> Unrouteable address Sender verification failed`:
    /// short evidence that still carries what a multi-line reply says on its last line.
    pub fn summary(&self) -> String {
        let text = self.text();
        if text.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {}", self.code, text)
        }
    }
}

/// Why bytes could not be parsed as an SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line does not start with a three-digit code in 200–599 followed by space, dash or the
    /// end of the line: the peer is not speaking SMTP (or is garbling it).
    #[error("not an SMTP reply line: {0:?}")]
    NotSmtp(String),
    /// A continuation line carries a different code than the first line.
    #[error("reply code changed from {expected} to {found} within one reply")]
    InconsistentCode {
        /// The code of the first line.
        expected: u16,
        /// The code found on a later line.
        found: u16,
    },
    /// A line exceeds [`Limits::max_line`].
    #[error("reply line longer than {0} bytes")]
    LineTooLong(usize),
    /// The reply exceeds [`Limits::max_lines`].
    #[error("reply longer than {0} lines")]
    TooManyLines(usize),
}

/// Parses one reply from the start of `buf`.
///
/// Returns `Ok(Some((reply, consumed)))` when a complete reply is at the start of `buf`,
/// `Ok(None)` when more bytes are needed, and an error when the bytes cannot be an SMTP reply.
pub fn parse_reply(buf: &[u8], limits: Limits) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code = None;
    let mut enhanced = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > limits.max_line + 1 {
                return Err(ReplyError::LineTooLong(limits.max_line));
            }
            // Reject garbage early instead of waiting for a line ending that may never come.
            if let Some(e) = early_garbage(rest) {
                return Err(e);
            }
            return Ok(None);
        };
        let raw = &rest[..nl];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > limits.max_line {
            return Err(ReplyError::LineTooLong(limits.max_line));
        }
        pos += nl + 1;
        let (line_code, last, text) = parse_line(raw)?;
        match code {
            None => {
                code = Some(line_code);
                enhanced = parse_enhanced(&text, line_code);
            }
            Some(expected) if expected != line_code => {
                return Err(ReplyError::InconsistentCode {
                    expected,
                    found: line_code,
                });
            }
            Some(_) => {}
        }
        lines.push(text);
        if last {
            let code = code.expect("set on the first line");
            return Ok(Some((
                Reply {
                    code,
                    enhanced,
                    lines,
                },
                pos,
            )));
        }
        if lines.len() >= limits.max_lines {
            return Err(ReplyError::TooManyLines(limits.max_lines));
        }
    }
}

/// Splits one line into (code, is-last-line, text).
fn parse_line(raw: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    let not_smtp = || ReplyError::NotSmtp(escape(&raw[..raw.len().min(80)]));
    if raw.len() < 3 || !raw[..3].iter().all(u8::is_ascii_digit) {
        return Err(not_smtp());
    }
    let code =
        u16::from(raw[0] - b'0') * 100 + u16::from(raw[1] - b'0') * 10 + u16::from(raw[2] - b'0');
    if !(200..600).contains(&code) {
        return Err(not_smtp());
    }
    match raw.get(3) {
        None => Ok((code, true, String::new())),
        Some(b' ') => Ok((code, true, escape(&raw[4..]))),
        Some(b'-') => Ok((code, false, escape(&raw[4..]))),
        Some(_) => Err(not_smtp()),
    }
}

/// Detects an incomplete first line that can already be told not to be SMTP.
fn early_garbage(rest: &[u8]) -> Option<ReplyError> {
    let head = &rest[..rest.len().min(4)];
    let bad_digit = head.iter().take(3).any(|b| !b.is_ascii_digit());
    let bad_sep = head.len() == 4 && !matches!(head[3], b' ' | b'-' | b'\r');
    (bad_digit || bad_sep).then(|| ReplyError::NotSmtp(escape(&rest[..rest.len().min(80)])))
}

/// Reads an enhanced status code at the start of the text, if its class matches the reply code.
fn parse_enhanced(text: &str, code: u16) -> Option<EnhancedCode> {
    let token = text.split_ascii_whitespace().next()?;
    let mut parts = token.splitn(3, '.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    let valid = matches!(class, 2 | 4 | 5)
        && u16::from(class) == code / 100
        && subject <= 999
        && detail <= 999;
    valid.then_some(EnhancedCode {
        class,
        subject,
        detail,
    })
}

/// Decodes bytes as UTF-8 (lossily) and escapes control characters.
///
/// Server text ends up in terminals, logs and web pages; an ESC sequence in a banner must not be
/// able to repaint an operator's terminal.
pub fn escape(bytes: &[u8]) -> String {
    relayguard_core::escape_controls(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Option<(Reply, usize)>, ReplyError> {
        parse_reply(s.as_bytes(), Limits::default())
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let (reply, used) = parse("454 4.7.1 <a@b>: Relay access denied\r\nextra")
            .unwrap()
            .unwrap();
        assert_eq!(reply.code, 454);
        assert_eq!(reply.enhanced.unwrap().to_string(), "4.7.1");
        assert_eq!(reply.lines, vec!["4.7.1 <a@b>: Relay access denied"]);
        assert_eq!(used, "454 4.7.1 <a@b>: Relay access denied\r\n".len());
    }

    #[test]
    fn multi_line_ehlo() {
        let text = "250-mx.example.edu\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n";
        let (reply, used) = parse(text).unwrap().unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines.len(), 4);
        assert_eq!(used, text.len());
        assert_eq!(reply.wire_lines().join("\r\n") + "\r\n", text);
        assert_eq!(reply.enhanced, None);
        assert_eq!(
            reply.summary(),
            "250 mx.example.edu PIPELINING STARTTLS 8BITMIME"
        );
    }

    #[test]
    fn incomplete_replies_ask_for_more() {
        assert_eq!(parse("250-first\r\n250 la").unwrap(), None);
        assert_eq!(parse("22").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn bare_lf_and_bare_code_are_tolerated() {
        let (reply, _) = parse("250\n").unwrap().unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, vec![String::new()]);
    }

    #[test]
    fn garbage_is_not_smtp() {
        assert!(matches!(
            parse("SSH-2.0-OpenSSH_9.2\r\n"),
            Err(ReplyError::NotSmtp(_))
        ));
        assert!(matches!(parse("HTTP/1.1 400"), Err(ReplyError::NotSmtp(_))));
        assert!(matches!(parse("220x\r\n"), Err(ReplyError::NotSmtp(_))));
        assert!(matches!(parse("150 ok\r\n"), Err(ReplyError::NotSmtp(_))));
        assert!(matches!(
            parse("* OK IMAP4rev1\r\n"),
            Err(ReplyError::NotSmtp(_))
        ));
    }

    #[test]
    fn inconsistent_codes_are_rejected() {
        assert_eq!(
            parse("250-a\r\n251 b\r\n").unwrap_err(),
            ReplyError::InconsistentCode {
                expected: 250,
                found: 251
            }
        );
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_line: 10,
            max_lines: 2,
        };
        let long = format!("250 {}\r\n", "x".repeat(20));
        assert_eq!(
            parse_reply(long.as_bytes(), limits),
            Err(ReplyError::LineTooLong(10))
        );
        let unterminated = format!("250 {}", "x".repeat(20));
        assert_eq!(
            parse_reply(unterminated.as_bytes(), limits),
            Err(ReplyError::LineTooLong(10))
        );
        assert_eq!(
            parse_reply(b"250-a\r\n250-b\r\n250 c\r\n", limits),
            Err(ReplyError::TooManyLines(2))
        );
    }

    #[test]
    fn enhanced_code_class_must_match() {
        let (reply, _) = parse("550 4.7.1 odd\r\n").unwrap().unwrap();
        assert_eq!(reply.enhanced, None);
        let (reply, _) = parse("250 2.1.5 Ok\r\n").unwrap().unwrap();
        assert_eq!(reply.enhanced.unwrap().subject, 1);
    }

    #[test]
    fn control_characters_are_escaped() {
        let (reply, _) = parse("220 evil\x1b[2Jbanner\r\n").unwrap().unwrap();
        assert_eq!(reply.lines[0], "evil\\u{1b}[2Jbanner");
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let limits = Limits { max_line: 64, max_lines: 4 };
            if let Ok(Some((_, used))) = parse_reply(&bytes, limits) {
                prop_assert!(used <= bytes.len());
            }
        }

        #[test]
        fn well_formed_replies_round_trip(
            code in 200u16..600,
            texts in proptest::collection::vec("[ -~]{1,40}", 1..6),
        ) {
            let mut wire = String::new();
            for (i, t) in texts.iter().enumerate() {
                let sep = if i + 1 == texts.len() { ' ' } else { '-' };
                wire.push_str(&format!("{code}{sep}{t}\r\n"));
            }
            let (reply, used) = parse_reply(wire.as_bytes(), Limits::default()).unwrap().unwrap();
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(reply.code, code);
            prop_assert_eq!(reply.lines, texts);
        }

        #[test]
        fn prefixes_of_valid_replies_are_incomplete(cut in 0usize..30) {
            let wire = b"250-mx.example\r\n250-SIZE 1000\r\n250 OK\r\n";
            let cut = cut.min(wire.len() - 1);
            prop_assert_eq!(parse_reply(&wire[..cut], Limits::default()), Ok(None));
        }
    }
}
