//! `/etc/inetd.conf`: one service per line,
//! `service socktype proto wait user server-path argv...`.
//!
//! A line whose service is smtp/25, submission/587 or smtps/465 and that is not commented
//! makes inetd accept SMTP and run the named program (qmail is often started
//! this way and then never shows up in `ps`). Disabling comments the line with a marker.

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::{Action, Detection};
use crate::mta::{classify_program, smtp_port_of_service};
use crate::root::Root;

/// Inside path of the inetd configuration.
pub const INETD_CONF: &str = "/etc/inetd.conf";

/// Prefix the agent puts in front of lines it disables, so humans can see why.
pub const MARKER: &str = "#relayguard-agent# ";

/// An SMTP service line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpLine {
    /// 0-based line index.
    pub index: usize,
    /// Port served.
    pub port: u16,
    /// Optional bound address (`addr:service` form).
    pub addr: Option<String>,
    /// Whether the line is commented out.
    pub commented: bool,
    /// MTA recognised from the server program and arguments.
    pub mta: Mta,
}

/// Finds SMTP service lines (enabled and commented). Malformed enabled SMTP lines are
/// returned as warnings `(line, message)`.
pub fn scan(text: &str) -> (Vec<SmtpLine>, Vec<(usize, String)>) {
    let mut out = Vec::new();
    let mut warns = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let (commented, body) = match t.strip_prefix('#') {
            Some(rest) => (
                true,
                rest.trim_start_matches(MARKER.trim_start_matches('#'))
                    .trim_start(),
            ),
            None => (false, t),
        };
        let f: Vec<&str> = body.split_whitespace().collect();
        let Some(first) = f.first() else { continue };
        let (addr, svc) = match first.rsplit_once(':') {
            Some((a, s)) => (Some(a.to_string()), s),
            None => (None, *first),
        };
        let Some(port) = smtp_port_of_service(svc) else {
            continue;
        };
        if f.len() < 6 {
            if !commented {
                warns.push((
                    i + 1,
                    format!(
                        "SMTP service line has {} fields, expected at least 6",
                        f.len()
                    ),
                ));
            }
            continue;
        }
        if commented && !matches!(f[1], "stream" | "dgram") {
            continue; // prose comment mentioning smtp
        }
        let program = f[5..].join(" ");
        out.push(SmtpLine {
            index: i,
            port,
            addr,
            commented,
            mta: classify_program(&program).unwrap_or(Mta::Unknown),
        });
    }
    (out, warns)
}

/// Runs the inetd detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    let text = match root.read_text(INETD_CONF) {
        Ok(Some(t)) => t,
        Ok(None) => return d,
        Err(e) => {
            d.warn(e.to_string());
            return d;
        }
    };
    let (lines, warns) = scan(&text);
    for (l, m) in warns {
        d.warn(format!("{INETD_CONF}:{l}: {m}"));
    }
    let all: Vec<&str> = text.lines().collect();
    for s in lines {
        let ev = format!("{INETD_CONF}:{}", s.index + 1);
        let detail = format!("port {}: {}", s.port, all[s.index].trim());
        if s.commented {
            d.fact(
                s.mta,
                FactKind::DisabledAtBoot,
                Some(Mechanism::Inetd),
                ev,
                detail,
            );
        } else {
            d.fact(
                s.mta,
                FactKind::EnabledAtBoot,
                Some(Mechanism::Inetd),
                ev,
                detail,
            );
            d.disable(
                s.mta,
                Mechanism::Inetd,
                Action::CommentLines {
                    path: INETD_CONF.to_string(),
                    lines: vec![s.index],
                },
            );
        }
    }
    d
}

/// Comments the given 0-based lines with [`MARKER`], leaving already-commented lines alone.
pub fn comment_lines(text: &str, lines: &[usize]) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| {
            if lines.contains(&i) && !l.trim_start().starts_with('#') {
                format!("{MARKER}{l}")
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_smtp_lines() {
        let t = "# inetd\nsmtp stream tcp nowait qmaild /var/qmail/bin/tcp-env tcp-env /var/qmail/bin/qmail-smtpd\n\
                 #submission stream tcp nowait root /usr/sbin/exim4 exim4 -bs\nftp stream tcp nowait root /usr/sbin/ftpd ftpd\nsmtp stream\n";
        let (l, w) = scan(t);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].mta, Mta::Qmail);
        assert!(!l[0].commented);
        assert!(l[1].commented && l[1].port == 587 && l[1].mta == Mta::Exim);
        assert_eq!(w.len(), 1);
        let c = comment_lines(t, &[1]);
        assert!(c.contains("#relayguard-agent# smtp stream"));
        assert!(scan(&c).0.iter().all(|s| s.commented));
    }
}
