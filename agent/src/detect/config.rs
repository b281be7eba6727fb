//! MTA configuration that decides which addresses the listener binds, and the loopback-only
//! edits `harden --mode loopback-only` makes (postfix `inet_interfaces`, Debian exim4
//! `dc_local_interfaces`, OpenSMTPD `listen on`).
//!
//! Sendmail's `DaemonPortOptions` is reported but not edited: sendmail.cf is generated from
//! sendmail.mc by m4, so an edit would be lost on the next rebuild; loopback-only mode falls
//! back to disabling sendmail's boot entries instead.

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::master_cf;
use super::unitfile::is_loopback_addr;
use super::{Action, Detection, TargetMode};
use crate::root::Root;

/// Value postfix understands as "loopback interfaces only".
pub const POSTFIX_LOOPBACK: &str = "loopback-only";
/// Debian exim4 loopback setting (the Debian default for a non-internet site).
pub const EXIM_LOOPBACK: &str = "127.0.0.1 ; ::1";

/// Last `key = value` of a postfix main.cf (continuation lines start with whitespace), with its
/// 0-based line.
pub fn main_cf_get(text: &str, key: &str) -> Option<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with(char::is_whitespace) || l.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=')
            && k.trim() == key
        {
            let mut v = v.trim().to_string();
            for c in lines[i + 1..]
                .iter()
                .take_while(|c| c.starts_with(char::is_whitespace) && !c.trim().is_empty())
            {
                v.push(' ');
                v.push_str(c.trim());
            }
            found = Some((v, i));
        }
    }
    found
}

/// Sets `key = value` in main.cf: replaces the last logical line for `key` or appends.
pub fn main_cf_set(text: &str, key: &str, value: &str) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    match main_cf_get(text, key) {
        Some((_, i)) => {
            let mut end = i + 1;
            while end < lines.len()
                && lines[end].starts_with(char::is_whitespace)
                && !lines[end].trim().is_empty()
            {
                end += 1;
            }
            lines.splice(i..end, [format!("{key} = {value}\n")]);
            lines.concat()
        }
        None => {
            let mut out = lines.concat();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("{key} = {value}\n"));
            out
        }
    }
}

/// Last `key=value` of a shell-style variable file (values may be single/double quoted).
pub fn shell_get(text: &str, key: &str) -> Option<(String, usize)> {
    let mut found = None;
    for (i, l) in text.lines().enumerate() {
        if let Some(v) = l
            .trim_start()
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
        {
            found = Some((
                v.trim().trim_matches(|c| c == '\'' || c == '"').to_string(),
                i,
            ));
        }
    }
    found
}

/// Sets `key='value'` in a shell-style file: replaces the last assignment or appends.
pub fn shell_set(text: &str, key: &str, value: &str) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let new = format!("{key}='{value}'\n");
    match shell_get(text, key) {
        Some((_, i)) => lines[i] = new,
        None => {
            if lines.last().is_some_and(|l| !l.ends_with('\n')) {
                lines.push("\n".into());
            }
            lines.push(new);
        }
    }
    lines.concat()
}

/// `listen on IFACE ...` lines of smtpd.conf: (0-based line, interface).
pub fn smtpd_listens(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[0] == "listen" && w[1] == "on").then(|| (i, w[2].to_string()))
        })
        .collect()
}

/// Whether an OpenSMTPD `listen on` target stays on this host: the unix `socket`, a loopback
/// interface (`lo0`, `lo1`, ...) or the `lo` group, `localhost`, a loopback address. Quotes
/// around it are dropped; anything else (`all`, `egress`, `em0`, an address) is reachable.
pub fn smtpd_iface_is_loopback(iface: &str) -> bool {
    let i = iface.trim_matches('"');
    i == "socket"
        || is_loopback_addr(i)
        || i.strip_prefix("lo")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Replaces the interface of the given `listen on` lines with `localhost`.
pub fn smtpd_listen_local(text: &str, lines: &[usize]) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| {
            if !lines.contains(&i) {
                return l.to_string();
            }
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 3 || w[0] != "listen" || w[1] != "on" {
                return l.to_string();
            }
            let indent = &l[..l.len() - l.trim_start().len()];
            let mut rest = w[3..].join(" ");
            if !rest.is_empty() {
                rest.insert(0, ' ');
            }
            let nl = if l.ends_with('\n') { "\n" } else { "" };
            format!("{indent}listen on localhost{rest}{nl}")
        })
        .collect()
}

fn loopback_list(v: &str) -> bool {
    let items: Vec<&str> = v
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    !items.is_empty()
        && items
            .iter()
            .all(|i| *i == "loopback-only" || is_loopback_addr(i))
}

/// Records whether an MTA's listening setting is loopback-only or exposed and, when exposed,
/// the action that restricts it in `--mode loopback-only`.
fn interface_fact(
    d: &mut Detection,
    mta: Mta,
    loopback: bool,
    evidence: String,
    detail: String,
    restrict: Action,
) {
    let kind = if loopback {
        FactKind::LoopbackOnly
    } else {
        FactKind::Exposed
    };
    d.fact(mta, kind, Some(Mechanism::Config), evidence, detail);
    if !loopback {
        d.push_target(mta, Mechanism::Config, TargetMode::Loopback, restrict);
    }
}

/// Postfix in one configuration directory: main.cf's `inet_interfaces` is the default bind
/// address; master.cf says which services listen and may bind their own host.
fn postfix(root: &Root, dir: &str, d: &mut Detection) {
    let main_path = format!("{dir}/main.cf");
    let master_path = format!("{dir}/master.cf");
    let read = |p: &str, d: &mut Detection| match root.read_text(p) {
        Ok(t) => t,
        Err(e) => {
            d.warn(e.to_string());
            None
        }
    };
    let main = read(&main_path, d);
    let master = read(&master_path, d);
    if main.is_none() && master.is_none() {
        return;
    }
    let main_text = main.as_deref().unwrap_or("");
    let (ifaces, if_ev) = match main_cf_get(main_text, "inet_interfaces") {
        Some((v, i)) => (v, format!("{main_path}:{}", i + 1)),
        None => (
            "all".to_string(),
            format!("{main_path} (no inet_interfaces: default all)"),
        ),
    };
    let ifaces_local = loopback_list(&ifaces);
    let set_ifaces = Action::SetMainCf {
        path: main_path.clone(),
        key: "inet_interfaces".into(),
        value: POSTFIX_LOOPBACK.into(),
    };
    let Some(master) = master else {
        // No master.cf to read: judge by main.cf alone, as the stock master.cf's smtp service
        // binds inet_interfaces.
        interface_fact(
            d,
            Mta::Postfix,
            ifaces_local,
            if_ev,
            format!("inet_interfaces = {ifaces}"),
            set_ifaces,
        );
        return;
    };
    let disable = main_cf_get(main_text, "master_service_disable");
    let services = master_cf::parse(&master);
    let mut listeners = 0;
    let mut exposed_hosts = Vec::new();
    for s in master_cf::effective(&services) {
        if !s.kind.eq_ignore_ascii_case("inet") || !s.is_smtp_server() {
            continue;
        }
        let ev = format!("{master_path}:{}", s.line() + 1);
        let (host, port) = s.host_port();
        let what = format!("{} inet {}", s.name, s.command);
        if let Some((list, i)) = &disable
            && let Some(item) = master_cf::disabled_by(list, s)
        {
            d.fact(
                Mta::Postfix,
                FactKind::DisabledAtBoot,
                Some(Mechanism::Config),
                ev,
                format!(
                    "{what}: switched off by master_service_disable ({item}, {main_path}:{})",
                    i + 1
                ),
            );
            continue;
        }
        listeners += 1;
        let port_note =
            master_cf::port_number(&port).map_or(String::new(), |n| format!(" port {n}"));
        let ignored = if s.overrides_inet_interfaces() {
            " (its -o inet_interfaces is ignored: the master binds the socket from main.cf)"
        } else {
            ""
        };
        match host {
            Some(h) => {
                let local = master_cf::host_is_loopback(&h);
                let detail = format!(
                    "{what}: binds {h}{port_note} (host field overrides inet_interfaces){ignored}"
                );
                if !local {
                    exposed_hosts.push(s.line());
                }
                let kind = if local {
                    FactKind::LoopbackOnly
                } else {
                    FactKind::Exposed
                };
                d.fact(Mta::Postfix, kind, Some(Mechanism::Config), ev, detail);
            }
            None => {
                let detail = format!(
                    "{what}:{port_note} binds inet_interfaces = {ifaces} ({if_ev}){ignored}"
                );
                interface_fact(
                    d,
                    Mta::Postfix,
                    ifaces_local,
                    ev,
                    detail,
                    set_ifaces.clone(),
                );
            }
        }
    }
    if !exposed_hosts.is_empty() {
        d.push_target(
            Mta::Postfix,
            Mechanism::Config,
            TargetMode::Loopback,
            Action::MasterCfLoopback {
                path: master_path.clone(),
                lines: exposed_hosts,
            },
        );
    }
    if listeners == 0 {
        d.fact(
            Mta::Postfix,
            FactKind::LoopbackOnly,
            Some(Mechanism::Config),
            master_path,
            "no active inet smtpd or postscreen service: nothing listens on the network",
        );
    }
}

/// Runs the configuration detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    for dir in ["/etc/postfix", "/usr/local/etc/postfix"] {
        postfix(root, dir, &mut d);
    }
    let exim = "/etc/exim4/update-exim4.conf.conf";
    match root.read_text(exim) {
        Ok(Some(text)) => {
            let (value, ev) = match shell_get(&text, "dc_local_interfaces") {
                Some((v, i)) => (v, format!("{exim}:{}", i + 1)),
                None => (String::new(), exim.to_string()),
            };
            let loopback = loopback_list(&value);
            let detail = if loopback {
                format!("dc_local_interfaces='{value}'")
            } else {
                format!("dc_local_interfaces='{value}' (empty = all interfaces)")
            };
            interface_fact(
                &mut d,
                Mta::Exim,
                loopback,
                ev,
                detail,
                Action::SetShellVar {
                    path: exim.into(),
                    key: "dc_local_interfaces".into(),
                    value: EXIM_LOOPBACK.into(),
                },
            );
        }
        Ok(None) => {}
        Err(e) => d.warn(e.to_string()),
    }
    for path in [
        "/etc/smtpd.conf",
        "/etc/smtpd/smtpd.conf",
        "/usr/local/etc/mail/smtpd.conf",
        "/etc/mail/smtpd.conf",
    ] {
        let text = match root.read_text(path) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                d.warn(e.to_string());
                continue;
            }
        };
        let listens = smtpd_listens(&text);
        let exposed: Vec<usize> = listens
            .iter()
            .filter(|(_, iface)| !smtpd_iface_is_loopback(iface))
            .map(|(i, _)| *i)
            .collect();
        let ifaces: Vec<&str> = listens.iter().map(|(_, f)| f.as_str()).collect();
        if listens.is_empty() {
            continue;
        }
        let evidence_line = exposed.first().map_or(listens[0].0, |i| *i);
        interface_fact(
            &mut d,
            Mta::Opensmtpd,
            exposed.is_empty(),
            format!("{path}:{}", evidence_line + 1),
            format!("listen on {}", ifaces.join(", ")),
            Action::SmtpdListenLocal {
                path: path.into(),
                lines: exposed,
            },
        );
    }
    if let Ok(Some(cf)) = root.read_text("/etc/mail/sendmail.cf") {
        let opts: Vec<(usize, &str)> = cf
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("O DaemonPortOptions="))
            .collect();
        if !opts.is_empty() {
            let all_local = opts.iter().all(|(_, l)| {
                l.split(',').any(|kv| {
                    kv.trim()
                        .strip_prefix("Addr=")
                        .is_some_and(is_loopback_addr)
                })
            });
            let fact = if all_local {
                FactKind::LoopbackOnly
            } else {
                FactKind::Exposed
            };
            d.fact(
                Mta::Sendmail,
                fact,
                Some(Mechanism::Config),
                format!("/etc/mail/sendmail.cf:{}", opts[0].0 + 1),
                opts.iter().map(|(_, l)| *l).collect::<Vec<_>>().join(" | "),
            );
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_cf() {
        let t = "myhostname = x\ninet_interfaces = all\n  , 10.0.0.1\ninet_protocols = all\n";
        assert_eq!(
            main_cf_get(t, "inet_interfaces").unwrap().0,
            "all , 10.0.0.1"
        );
        let n = main_cf_set(t, "inet_interfaces", "loopback-only");
        assert_eq!(
            n,
            "myhostname = x\ninet_interfaces = loopback-only\ninet_protocols = all\n"
        );
        assert!(loopback_list("loopback-only"));
        assert!(loopback_list("127.0.0.1, [::1]"));
        assert!(!loopback_list("all"));
    }

    #[test]
    fn exim_and_smtpd() {
        let t = "dc_eximconfig_configtype='internet'\ndc_local_interfaces=''\n";
        assert_eq!(
            shell_set(t, "dc_local_interfaces", EXIM_LOOPBACK),
            "dc_eximconfig_configtype='internet'\ndc_local_interfaces='127.0.0.1 ; ::1'\n"
        );
        let s = "listen on localhost\nlisten on eth0 port 587\n";
        assert_eq!(smtpd_listens(s).len(), 2);
        for l in [
            "lo0",
            "lo1",
            "lo",
            "socket",
            "localhost",
            "\"127.0.0.1\"",
            "::1",
        ] {
            assert!(smtpd_iface_is_loopback(l), "{l}");
        }
        for e in [
            "all",
            "egress",
            "em0",
            "local",
            "\"0.0.0.0\"",
            "192.0.2.1",
            "lookup",
        ] {
            assert!(!smtpd_iface_is_loopback(e), "{e}");
        }
        assert_eq!(
            smtpd_listen_local(s, &[1]),
            "listen on localhost\nlisten on localhost port 587\n"
        );
    }
}
