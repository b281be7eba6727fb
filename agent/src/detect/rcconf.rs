//! FreeBSD `rc.conf` family: `/etc/defaults/rc.conf`, `/etc/defaults/vendor.conf`,
//! `/etc/rc.conf`, `/etc/rc.conf.local`, then `rc.conf.d/NAME` (file or directory of files)
//! under `/etc` and `/usr/local/etc`. Later assignments win, as with `load_rc_config`.
//!
//! rc.conf is shell. We interpret only plain assignments (`var=value`, `var="value"`,
//! `var='value'`, with an optional trailing comment) and refuse — with file and line — any
//! assignment to a variable we care about that uses expansion (`$`, backticks, `$(...)`) or is
//! unterminated, because guessing its value could report a host as safe when it is not.

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::{Action, Detection, TargetMode};
use crate::error::{AgentError, Result};
use crate::root::Root;

/// How a value was quoted, so an edit can keep the admin's style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// `var=value`
    None,
    /// `var='value'`
    Single,
    /// `var="value"`
    Double,
}

/// One plain assignment in an rc.conf-style file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assign {
    /// Variable name.
    pub var: String,
    /// Unquoted value.
    pub value: String,
    /// 0-based line index.
    pub line: usize,
    /// Byte range of the value token (quotes included) within the line.
    pub span: (usize, usize),
    /// Quoting style.
    pub quote: Quote,
}

/// Variables whose assignments we must understand exactly.
fn relevant(var: &str) -> bool {
    [
        "sendmail",
        "postfix",
        "exim",
        "smtpd",
        "opensmtpd",
        "qmail",
        "mta_",
    ]
    .iter()
    .any(|p| var.starts_with(p))
}

/// Parses the plain assignments of an rc.conf-style file. Errors only for lines assigning
/// relevant variables in a way we cannot interpret; other shell is skipped.
pub fn parse(path: &str, text: &str) -> Result<Vec<Assign>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lead = line.len() - line.trim_start().len();
        let t = &line[lead..];
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let name_len = t
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count();
        let is_assign = name_len > 0
            && !t.as_bytes()[0].is_ascii_digit()
            && t.as_bytes().get(name_len) == Some(&b'=');
        if !is_assign {
            // Shell we do not model (if/case/functions). If it mentions a relevant variable
            // being set, the effective value is unknowable: say so.
            if t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '='))
                .any(|w| w.split_once('=').is_some_and(|(v, _)| relevant(v)))
            {
                return Err(AgentError::parse(
                    path,
                    i + 1,
                    "assignment inside shell logic cannot be interpreted",
                ));
            }
            continue;
        }
        let var = &t[..name_len];
        let vstart = lead + name_len + 1;
        let rest = &line[vstart..];
        let (value, vlen, quote) = match rest.chars().next() {
            Some('"') => match rest[1..].find('"') {
                Some(end) => (rest[1..1 + end].to_string(), end + 2, Quote::Double),
                None => {
                    if relevant(var) {
                        return Err(AgentError::parse(path, i + 1, "unterminated double quote"));
                    }
                    continue;
                }
            },
            Some('\'') => match rest[1..].find('\'') {
                Some(end) => (rest[1..1 + end].to_string(), end + 2, Quote::Single),
                None => {
                    if relevant(var) {
                        return Err(AgentError::parse(path, i + 1, "unterminated single quote"));
                    }
                    continue;
                }
            },
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == ';' || c == '#')
                    .unwrap_or(rest.len());
                (rest[..end].to_string(), end, Quote::None)
            }
        };
        let tail = rest[vlen..].trim_start();
        let bad_tail = !(tail.is_empty() || tail.starts_with('#'));
        let expands = quote != Quote::Single
            && (value.contains('$') || value.contains('`') || value.contains('\\'));
        if relevant(var) && (expands || bad_tail) {
            let why = if expands {
                "shell expansion ($, `...` or $(...)) cannot be evaluated safely"
            } else {
                "trailing shell after the value cannot be interpreted"
            };
            return Err(AgentError::parse(path, i + 1, why));
        }
        out.push(Assign {
            var: var.to_string(),
            value,
            line: i,
            span: (vstart, vstart + vlen),
            quote,
        });
    }
    Ok(out)
}

/// `checkyesno` from rc.subr: YES/TRUE/ON/1 are true, case-insensitive; anything else false.
pub fn checkyesno(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1")
}

/// Sets `var` to `value` with sysrc semantics: replace the value of the LAST assignment in
/// place (keeping its quoting and trailing comment), or append `var="value"` when absent.
pub fn set_var(path: &str, text: &str, var: &str, value: &str) -> Result<String> {
    let assigns = parse(path, text)?;
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if let Some(a) = assigns.iter().rev().find(|a| a.var == var) {
        let l = &lines[a.line];
        let new_tok = match a.quote {
            Quote::Double => format!("\"{value}\""),
            Quote::Single => format!("'{value}'"),
            Quote::None => value.to_string(),
        };
        lines[a.line] = format!("{}{}{}", &l[..a.span.0], new_tok, &l[a.span.1..]);
        return Ok(lines.concat());
    }
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("{var}=\"{value}\"\n"));
    Ok(out)
}

/// The winning assignment of a variable: file, 1-based line, value.
#[derive(Debug, Clone)]
struct Winner {
    file: String,
    line: usize,
    value: String,
}

/// Files consulted for service `name`, in load order.
fn files_for(root: &Root, name: &str) -> Vec<String> {
    let mut files: Vec<String> = [
        "/etc/defaults/rc.conf",
        "/etc/defaults/vendor.conf",
        "/etc/rc.conf",
        "/etc/rc.conf.local",
    ]
    .iter()
    .map(std::string::ToString::to_string)
    .collect();
    for base in ["/etc/rc.conf.d", "/usr/local/etc/rc.conf.d"] {
        let p = format!("{base}/{name}");
        if root.is_dir(&p) {
            files.extend(root.list_dir(&p).into_iter().map(|f| format!("{p}/{f}")));
        } else {
            files.push(p);
        }
    }
    files
}

/// Computes the winning assignments of `vars` for service `name`. `Err` carries the warning
/// of the first file that could not be interpreted.
fn winners(
    root: &Root,
    name: &str,
    vars: &[&str],
) -> std::result::Result<Vec<Option<Winner>>, String> {
    let mut w: Vec<Option<Winner>> = vec![None; vars.len()];
    for file in files_for(root, name) {
        let text = match root.read_text(&file) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let assigns = parse(&file, &text).map_err(|e| e.to_string())?;
        for a in assigns {
            if let Some(k) = vars.iter().position(|v| *v == a.var) {
                w[k] = Some(Winner {
                    file: file.clone(),
                    line: a.line + 1,
                    value: a.value.clone(),
                });
            }
        }
    }
    Ok(w)
}

fn editable_file(w: &Winner) -> Option<String> {
    // Values only set in defaults are changed by appending to /etc/rc.conf, never by
    // editing /etc/defaults (which the OS upgrade overwrites).
    if w.file.starts_with("/etc/defaults/") {
        None
    } else {
        Some(w.file.clone())
    }
}

/// Runs the rc.conf detector (only on roots that have an rc.conf).
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    if !root.exists("/etc/defaults/rc.conf") && !root.exists("/etc/rc.conf") {
        return d;
    }
    // OpenBSD's rc.conf speaks of `*_flags`, not `*_enable`: its own detector reads it.
    if super::openbsd::is_openbsd(root) {
        return d;
    }
    sendmail(root, &mut d);
    for (mta, name, var, script) in [
        (
            Mta::Postfix,
            "postfix",
            "postfix_enable",
            "/usr/local/etc/rc.d/postfix",
        ),
        (Mta::Exim, "exim", "exim_enable", "/usr/local/etc/rc.d/exim"),
        (
            Mta::Opensmtpd,
            "smtpd",
            "smtpd_enable",
            "/usr/local/etc/rc.d/smtpd",
        ),
    ] {
        let w = match winners(root, name, &[var]) {
            Ok(w) => w,
            Err(e) => {
                d.warn(e);
                continue;
            }
        };
        let Some(w) = w.into_iter().next().flatten() else {
            continue;
        };
        let ev = format!("{}:{}", w.file, w.line);
        if checkyesno(&w.value) {
            let note = if root.exists(script) {
                format!("{var}=\"{}\" (rc script {script})", w.value)
            } else {
                format!("{var}=\"{}\" (rc script {script} not installed)", w.value)
            };
            d.fact(
                mta,
                FactKind::EnabledAtBoot,
                Some(Mechanism::RcConf),
                ev,
                note,
            );
            d.disable(
                mta,
                Mechanism::RcConf,
                Action::RcConfSet {
                    file: editable_file(&w),
                    var: var.to_string(),
                    value: "NO".to_string(),
                },
            );
        } else {
            d.fact(
                mta,
                FactKind::DisabledAtBoot,
                Some(Mechanism::RcConf),
                ev,
                format!("{var}=\"{}\"", w.value),
            );
        }
    }
    d
}

/// The sendmail knobs and their meaning; the last three default to YES in
/// /etc/defaults/rc.conf, so stock FreeBSD runs a localhost submission daemon and queue runners.
const SENDMAIL_VARS: [(&str, &str); 4] = [
    (
        "sendmail_enable",
        "full inbound daemon (sendmail -bd on all interfaces)",
    ),
    ("sendmail_submit_enable", "localhost-only submission daemon"),
    (
        "sendmail_outbound_enable",
        "outbound queue runner (no listener)",
    ),
    (
        "sendmail_msp_queue_enable",
        "MSP clientmqueue runner (no listener)",
    ),
];

fn sendmail(root: &Root, d: &mut Detection) {
    let vars: Vec<&str> = SENDMAIL_VARS.iter().map(|(v, _)| *v).collect();
    let w = match winners(root, "sendmail", &vars) {
        Ok(w) => w,
        Err(e) => {
            d.warn(e);
            return;
        }
    };
    if w.iter().all(Option::is_none) {
        return;
    }
    let on = |k: usize| w[k].as_ref().is_some_and(|x| checkyesno(&x.value));
    let ev = |k: usize| {
        w[k].as_ref()
            .map(|x| format!("{}:{}", x.file, x.line))
            .unwrap_or_else(|| "/etc/defaults/rc.conf".to_string())
    };
    let val = |k: usize| w[k].as_ref().map(|x| x.value.clone()).unwrap_or_default();
    if val(0).eq_ignore_ascii_case("NONE") {
        d.fact(
            Mta::Sendmail,
            FactKind::DisabledAtBoot,
            Some(Mechanism::RcConf),
            ev(0),
            "sendmail_enable=\"NONE\" turns off all four sendmail daemons",
        );
        return;
    }
    // rc.d/sendmail: enable=YES forces submit and outbound off; otherwise submit wins over
    // outbound; the MSP queue runner is independent.
    let mut active = Vec::new();
    if on(0) {
        active.push(0);
    } else if on(1) {
        active.push(1);
    } else if on(2) {
        active.push(2);
    }
    if on(3) {
        active.push(3);
    }
    let req = if root.exists("/etc/mail/sendmail.cf") || !root.exists("/etc/rc.d/sendmail") {
        String::new()
    } else {
        " (note: /etc/mail/sendmail.cf missing, rc.d/sendmail would refuse to start)".to_string()
    };
    for k in active {
        let (var, what) = SENDMAIL_VARS[k];
        d.fact(
            Mta::Sendmail,
            FactKind::EnabledAtBoot,
            Some(Mechanism::RcConf),
            ev(k),
            format!("{var}=\"{}\": {what}{req}", val(k)),
        );
    }
    for (k, (var, _)) in SENDMAIL_VARS.iter().enumerate() {
        if !on(k) {
            continue;
        }
        let Some(winner) = &w[k] else { continue };
        let action = Action::RcConfSet {
            file: editable_file(winner),
            var: var.to_string(),
            value: "NO".to_string(),
        };
        d.disable(Mta::Sendmail, Mechanism::RcConf, action.clone());
        if k == 0 {
            // loopback-only: drop the full daemon, keep the localhost submission daemon.
            d.push_target(
                Mta::Sendmail,
                Mechanism::RcConf,
                TargetMode::Loopback,
                action,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoting_styles() {
        let a = parse("/etc/rc.conf", "a=\"YES\" # c\nb='no'\nc=On\n  # x\n").unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].value, "YES");
        assert_eq!(a[1].quote, Quote::Single);
        assert_eq!(a[2].value, "On");
        assert!(checkyesno("On") && checkyesno("1") && checkyesno("TRUE") && !checkyesno("NONE"));
    }

    #[test]
    fn refuses_expansion_and_unterminated() {
        let e = parse("/etc/rc.conf", "x=1\nsendmail_enable=\"$(echo YES)\"\n").unwrap_err();
        assert!(e.to_string().contains("/etc/rc.conf:2"), "{e}");
        let e = parse("/etc/rc.conf", "sendmail_enable=\"YES\n").unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
        let e = parse("/etc/rc.conf", "postfix_enable=`echo YES`\n").unwrap_err();
        assert!(e.to_string().contains("expansion"), "{e}");
        let e = parse("/etc/rc.conf", "if true; then sendmail_enable=YES; fi\n").unwrap_err();
        assert!(e.to_string().contains("shell logic"), "{e}");
        // Irrelevant variables may use any shell.
        assert!(parse("/etc/rc.conf", "hostname=\"$(hostname)\"\n").is_ok());
    }

    #[test]
    fn set_keeps_style_and_comment_and_edits_last() {
        let t = "sendmail_enable=\"YES\"\nfoo=1\nsendmail_enable='YES'\t# mine\n";
        let n = set_var("/etc/rc.conf", t, "sendmail_enable", "NO").unwrap();
        assert_eq!(
            n,
            "sendmail_enable=\"YES\"\nfoo=1\nsendmail_enable='NO'\t# mine\n"
        );
        let n = set_var("/etc/rc.conf", "foo=1", "postfix_enable", "NO").unwrap();
        assert_eq!(n, "foo=1\npostfix_enable=\"NO\"\n");
    }
}
