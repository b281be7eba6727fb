//! Postfix `master.cf`: which services listen on TCP, and where.
//!
//! `inet_interfaces` in main.cf is only the default: a service of type `inet` whose name is
//! `host:port` (`127.0.0.1:10025`, `0.0.0.0:smtp`, `[::1]:submission`) binds that host instead,
//! whatever main.cf says. The master process binds the sockets itself from main.cf's
//! `inet_interfaces`, so a `-o inet_interfaces=...` on a service line only reaches the child
//! process and moves no listener. `master_service_disable` in main.cf switches services off.
//!
//! The syntax follows Postfix's own reader: a logical line starts with non-whitespace; lines
//! that start with whitespace continue it; comment lines (first non-blank `#`) and blank lines
//! are skipped and do NOT end a logical line; of several entries with the same name and type
//! only the last counts.

use super::inetd::MARKER;
use super::unitfile::is_loopback_addr;

/// One master.cf service entry (a logical line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Service name field as written (`smtp`, `127.0.0.1:10025`, ...).
    pub name: String,
    /// Service type (`inet`, `unix`, `pass`, ...).
    pub kind: String,
    /// Command field (`smtpd`, `postscreen`, ...).
    pub command: String,
    /// Command arguments after the command (`-o name=value`, ...).
    pub args: Vec<String>,
    /// 0-based physical lines holding the entry's text (first line first), without the comment
    /// lines interleaved with them.
    pub lines: Vec<usize>,
}

impl Service {
    /// 0-based first line of the entry.
    pub fn line(&self) -> usize {
        self.lines[0]
    }

    /// Host and port of an inet service name, as Postfix's `host_port` splits it: `[host]:port`,
    /// `host:port` split at the last colon (so `::1:smtp` is host `::1`), or a bare port.
    pub fn host_port(&self) -> (Option<String>, String) {
        let n = self.name.as_str();
        if let Some(rest) = n.strip_prefix('[')
            && let Some((h, p)) = rest.split_once("]:")
        {
            return (Some(h.to_string()), p.to_string());
        }
        match n.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (Some(h.to_string()), p.to_string()),
            Some((_, p)) => (None, p.to_string()),
            None => (None, n.to_string()),
        }
    }

    /// Whether the command receives SMTP: `smtpd`, or `postscreen`, which answers port 25 in
    /// front of smtpd.
    pub fn is_smtp_server(&self) -> bool {
        let base = self.command.rsplit('/').next().unwrap_or("");
        base == "smtpd" || base == "postscreen"
    }

    /// Whether the arguments try `-o inet_interfaces=...` (short or long form), which the master
    /// ignores when it binds the socket.
    pub fn overrides_inet_interfaces(&self) -> bool {
        let mut prev_o = false;
        for a in &self.args {
            let a2 = a.trim_start_matches('{').trim_start();
            if prev_o && a2.starts_with("inet_interfaces") {
                return true;
            }
            if a == "{" && prev_o {
                continue;
            }
            prev_o = a == "-o";
        }
        false
    }
}

/// Port number of a Postfix service port (numeric, or the common names).
pub fn port_number(port: &str) -> Option<u16> {
    match port.to_ascii_lowercase().as_str() {
        "smtp" => Some(25),
        "submission" => Some(587),
        "smtps" | "submissions" | "urd" => Some(465),
        "lmtp" => Some(24),
        p => p.parse().ok(),
    }
}

/// Parses master.cf into its entries, in file order (duplicates included).
pub fn parse(text: &str) -> Vec<Service> {
    let mut logical: Vec<(Vec<usize>, String)> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if l.starts_with(char::is_whitespace) {
            // A continuation before any entry belongs to nothing; Postfix warns and skips it.
            if let Some(cur) = logical.last_mut() {
                cur.0.push(i);
                cur.1.push(' ');
                cur.1.push_str(t);
            }
        } else {
            logical.push((vec![i], l.to_string()));
        }
    }
    logical
        .into_iter()
        .filter_map(|(lines, text)| {
            let f: Vec<&str> = text.split_whitespace().collect();
            (f.len() >= 8).then(|| Service {
                name: f[0].to_string(),
                kind: f[1].to_string(),
                command: f[7].to_string(),
                args: f[8..]
                    .iter()
                    .map(std::string::ToString::to_string)
                    .collect(),
                lines,
            })
        })
        .collect()
}

/// The key Postfix uses to tell entries apart: type and canonical name (host and port
/// number), so `127.0.0.1:25` and `127.0.0.1:smtp` are the same service.
fn key(s: &Service) -> (String, Option<String>, String) {
    let (h, p) = s.host_port();
    let port = port_number(&p).map_or(p.to_ascii_lowercase(), |n| n.to_string());
    (
        s.kind.to_ascii_lowercase(),
        h.map(|h| h.to_ascii_lowercase()),
        port,
    )
}

/// The entries Postfix keeps: for each name and type the last one.
pub fn effective(services: &[Service]) -> Vec<&Service> {
    services
        .iter()
        .enumerate()
        .filter(|(i, s)| !services[i + 1..].iter().any(|o| key(o) == key(s)))
        .map(|(_, s)| s)
        .collect()
}

/// Whether main.cf's `master_service_disable` list switches `s` off: items are `type` or
/// `name/type` (`name.type` before Postfix 2.11), `!item` excludes, the first match decides.
pub fn disabled_by(list: &str, s: &Service) -> Option<String> {
    for item in list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|i| !i.is_empty())
    {
        let (neg, pat) = match item.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, item),
        };
        let hit = match pat.rsplit_once(['/', '.']) {
            Some((n, t)) => n.eq_ignore_ascii_case(&s.name) && t.eq_ignore_ascii_case(&s.kind),
            None => pat.eq_ignore_ascii_case(&s.kind),
        };
        if hit {
            return (!neg).then(|| item.to_string());
        }
    }
    None
}

/// Whether a service's host field is a loopback address.
pub fn host_is_loopback(host: &str) -> bool {
    is_loopback_addr(host)
}

/// Makes the entries starting at the given 0-based lines loopback-only: the host field becomes
/// `127.0.0.1` (`[::1]` for an IPv6 host). When another entry already has that name and type
/// (Postfix would keep only the last), the entry is commented out instead, every one of its
/// lines, so no continuation line attaches itself to the entry above.
pub fn make_loopback(text: &str, starts: &[usize]) -> String {
    let services = parse(text);
    let mut rename: Vec<(usize, String)> = Vec::new();
    let mut comment: Vec<usize> = Vec::new();
    let mut taken = Vec::new();
    for s in services.iter().filter(|s| starts.contains(&s.line())) {
        let (host, port) = s.host_port();
        let new_host = if host.as_deref().is_some_and(|h| h.contains(':')) {
            "[::1]"
        } else {
            "127.0.0.1"
        };
        let mut renamed = s.clone();
        renamed.name = format!("{new_host}:{port}");
        let k = key(&renamed);
        let clash =
            services.iter().any(|o| o.line() != s.line() && key(o) == k) || taken.contains(&k);
        if clash {
            comment.extend(&s.lines);
        } else {
            taken.push(k);
            rename.push((s.line(), renamed.name));
        }
    }
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| {
            if comment.contains(&i) {
                format!("{MARKER}{l}")
            } else if let Some((_, name)) = rename.iter().find(|(n, _)| *n == i) {
                let field_end = l.find(char::is_whitespace).unwrap_or(l.len());
                format!("{name}{}", &l[field_end..])
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CF: &str = r#"# head
smtp      inet  n       -       y       -       -       smtpd
#submission inet n       -       y       -       -       smtpd
#  -o syslog_name=postfix/submission
relay     unix  -       -       y       -       -       smtp
        -o syslog_name=postfix/$service_name
#       -o smtp_helo_timeout=5

        -o smtp_connect_timeout=5
0.0.0.0:submission inet n - y - - smtpd -o { inet_interfaces = 127.0.0.1 }
[::1]:smtps inet n - y - - smtpd
127.0.0.1:10025 inet n - n - - smtpd
"#;

    #[test]
    fn parses_continuations_across_comments_and_blank_lines() {
        let s = parse(CF);
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].name, "smtp");
        assert_eq!(s[0].line(), 1);
        assert_eq!(s[1].lines, vec![4, 5, 8]);
        assert_eq!(s[1].args.len(), 4);
        assert_eq!(
            s[2].host_port(),
            (Some("0.0.0.0".into()), "submission".into())
        );
        assert!(s[2].overrides_inet_interfaces());
        assert_eq!(s[3].host_port(), (Some("::1".into()), "smtps".into()));
        assert_eq!(s[4].host_port(), (Some("127.0.0.1".into()), "10025".into()));
        assert_eq!(s[0].host_port(), (None, "smtp".into()));
    }

    #[test]
    fn last_entry_wins_and_disable_list() {
        let t = "smtp inet n - y - - smtpd\n127.0.0.1:25 inet n - y - - smtpd\n127.0.0.1:smtp inet n - y - - postscreen\n";
        let s = parse(t);
        let e = effective(&s);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].command, "postscreen");
        assert!(disabled_by("inet", &s[0]).is_some());
        assert!(disabled_by("smtp/inet", &s[0]).is_some());
        assert!(disabled_by("smtp.inet", &s[0]).is_some());
        assert!(disabled_by("!smtp/inet, inet", &s[0]).is_none());
        assert!(disabled_by("!smtp/inet, inet", &s[1]).is_some());
        assert!(disabled_by("unix", &s[0]).is_none());
    }

    #[test]
    fn loopback_edit_renames_or_comments() {
        let s = parse(CF);
        let out = make_loopback(CF, &[s[2].line(), s[0].line()]);
        assert!(out.contains("\n127.0.0.1:smtp      inet  n"), "{out}");
        assert!(out.contains("\n127.0.0.1:submission inet n - y"), "{out}");
        let t = "0.0.0.0:smtp inet n - y - - smtpd\n  -o a=b\n127.0.0.1:25 inet n - y - - smtpd\n";
        let out = make_loopback(t, &[0]);
        assert_eq!(
            out,
            format!(
                "{MARKER}0.0.0.0:smtp inet n - y - - smtpd\n{MARKER}  -o a=b\n127.0.0.1:25 inet n - y - - smtpd\n"
            )
        );
        assert_eq!(
            make_loopback("[2001:db8::1]:smtp inet n - y - - smtpd", &[0]),
            "[::1]:smtp inet n - y - - smtpd"
        );
    }
}
