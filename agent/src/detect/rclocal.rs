//! BSD-style `/etc/rc.local` (SunOS 4.x and friends): sendmail is started by a block such as
//! `if [ -f /usr/lib/sendmail ]; then /usr/lib/sendmail -bd -q1h; fi`.
//!
//! Disabling comments the whole enclosing `if ... fi` block (commenting only the daemon line
//! could leave an empty `then` branch, which is a shell syntax error that breaks booting).

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::{Action, Detection};
use crate::root::Root;

/// Files scanned for daemon start lines.
const FILES: [&str; 3] = ["/etc/rc.local", "/etc/rc.d/rc.local", "/etc/rc"];

/// Recognises a line that starts an MTA daemon.
fn daemon_line(l: &str) -> Option<Mta> {
    let w: Vec<&str> = l
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(' || c == ')')
        .collect();
    let has = |s: &str| w.contains(&s);
    if l.contains("sendmail") && (has("-bd") || w.iter().any(|x| x.starts_with("-bd"))) {
        Some(Mta::Sendmail)
    } else if l.contains("qmail-start") || l.contains("/var/qmail/rc") {
        Some(Mta::Qmail)
    } else if l.contains("postfix") && has("start") {
        Some(Mta::Postfix)
    } else if l.contains("exim") && has("-bd") {
        Some(Mta::Exim)
    } else if l.contains("smtpd")
        && !l.contains("postfix")
        && (l.contains("/usr/sbin/smtpd") || l.contains("/usr/local/sbin/smtpd"))
    {
        Some(Mta::Opensmtpd)
    } else {
        None
    }
}

/// Returns (mta, first line, last line) ranges to comment, 0-based inclusive.
pub fn scan(text: &str) -> Vec<(Mta, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut stack: Vec<usize> = Vec::new();
    let mut matching: Vec<Option<usize>> = vec![None; lines.len()];
    let mut enclosing: Vec<Option<usize>> = vec![None; lines.len()];
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        if t.starts_with('#') {
            continue;
        }
        enclosing[i] = stack.last().copied();
        let opens = t.starts_with("if ") || t.starts_with("if[");
        let closes_inline = t.ends_with(" fi") || t.ends_with(";fi") || t.contains("; fi;");
        if opens && !closes_inline {
            stack.push(i);
        } else if (t == "fi" || t.starts_with("fi ") || t.starts_with("fi;")) && !stack.is_empty() {
            let o = stack.pop().expect("stack not empty");
            matching[o] = Some(i);
        }
    }
    let mut out: Vec<(Mta, usize, usize)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().starts_with('#') {
            continue;
        }
        let Some(mta) = daemon_line(l) else { continue };
        let range = match enclosing[i].and_then(|o| matching[o].map(|c| (o, c))) {
            Some((o, c)) => (mta, o, c),
            None => (mta, i, i),
        };
        if !out.iter().any(|r| r.1 == range.1) {
            out.push(range);
        }
    }
    out
}

/// Runs the rc.local detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    for f in FILES {
        let text = match root.read_text(f) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                d.warn(e.to_string());
                continue;
            }
        };
        for (mta, a, b) in scan(&text) {
            let first = text.lines().nth(a).unwrap_or_default().trim().to_string();
            d.fact(
                mta,
                FactKind::EnabledAtBoot,
                Some(Mechanism::RcLocal),
                format!("{f}:{}", a + 1),
                format!("lines {}-{}: {first}", a + 1, b + 1),
            );
            d.disable(
                mta,
                Mechanism::RcLocal,
                Action::CommentLines {
                    path: f.to_string(),
                    lines: (a..=b).collect(),
                },
            );
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sunos_block() {
        let t = "#\nif [ -f /usr/lib/sendmail -a -f /etc/sendmail.cf ]; then\n\t(cd /var/spool/mqueue; rm -f nf* lf*)\n\t/usr/lib/sendmail -bd -q1h; echo -n ' sendmail'\nfi\necho done\n";
        assert_eq!(scan(t), vec![(Mta::Sendmail, 1, 4)]);
        assert_eq!(
            scan("/usr/lib/sendmail -bd -q1h\n"),
            vec![(Mta::Sendmail, 0, 0)]
        );
        assert!(scan("#/usr/lib/sendmail -bd\n").is_empty());
    }
}
