//! xinetd: `/etc/xinetd.conf` (a `defaults` block, `includedir`) and `/etc/xinetd.d/*`.
//!
//! A service is enabled unless its block says `disable = yes`, or the `defaults` block lists it
//! in `disabled`, or `defaults` has an `enabled` list that omits it. Files in an includedir whose
//! name contains a dot or ends in `~` are ignored by xinetd, and so by us.

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::{Action, Detection};
use crate::error::{AgentError, Result};
use crate::mta::{classify_program, smtp_port_of_service};
use crate::root::{Root, join};

/// Inside path of the main xinetd configuration.
pub const XINETD_CONF: &str = "/etc/xinetd.conf";

/// One `service NAME { ... }` or `defaults { ... }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// `service` or `defaults`.
    pub kind: String,
    /// Service name (empty for defaults).
    pub name: String,
    /// 0-based index of the closing `}` line.
    pub close: usize,
    /// Attributes: (key, operator, value, 0-based line).
    pub attrs: Vec<(String, String, String, usize)>,
}

impl Block {
    /// Last value of attribute `key` with operator `=`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .rev()
            .find(|(k, op, _, _)| k == key && op == "=")
            .map(|(_, _, v, _)| v.as_str())
    }
}

/// Parsed file: blocks and `includedir` directives.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Blocks in file order.
    pub blocks: Vec<Block>,
    /// `includedir` directories.
    pub includedirs: Vec<String>,
}

/// Parses an xinetd configuration file; structural errors name the line.
pub fn parse(path: &str, text: &str) -> Result<Parsed> {
    let mut p = Parsed::default();
    let mut pending: Option<(String, String, usize)> = None;
    let mut open: Option<Block> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(b) = open.as_mut() {
            if line == "}" {
                b.close = i;
                p.blocks.push(open.take().expect("block is open"));
                continue;
            }
            let (k, op, v) = split_attr(line).ok_or_else(|| {
                AgentError::parse(path, i + 1, format!("not an attribute: {line:?}"))
            })?;
            b.attrs.push((k, op, v, i));
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        match first {
            "{" => {
                let (kind, name, _) = pending.take().ok_or_else(|| {
                    AgentError::parse(path, i + 1, "'{' without service/defaults")
                })?;
                open = Some(Block {
                    kind,
                    name,
                    close: 0,
                    attrs: Vec::new(),
                });
            }
            "service" | "defaults" => {
                let name = if first == "service" {
                    words
                        .next()
                        .filter(|w| *w != "{")
                        .ok_or_else(|| AgentError::parse(path, i + 1, "service without a name"))?
                        .to_string()
                } else {
                    String::new()
                };
                if line.ends_with('{') {
                    open = Some(Block {
                        kind: first.to_string(),
                        name,
                        close: 0,
                        attrs: Vec::new(),
                    });
                } else {
                    pending = Some((first.to_string(), name, i));
                }
            }
            "includedir" => p
                .includedirs
                .push(words.next().unwrap_or_default().to_string()),
            "include" => {}
            _ => {
                return Err(AgentError::parse(
                    path,
                    i + 1,
                    format!("unexpected {line:?}"),
                ));
            }
        }
    }
    if open.is_some() || pending.is_some() {
        return Err(AgentError::parse(
            path,
            0,
            "unterminated block (missing '}')",
        ));
    }
    Ok(p)
}

fn split_attr(line: &str) -> Option<(String, String, String)> {
    let pos = line.find('=')?;
    let (mut key, op) = (&line[..pos], "=");
    let (key2, op2) = if let Some(k) = key.strip_suffix('+') {
        (k, "+=")
    } else if let Some(k) = key.strip_suffix('-') {
        (k, "-=")
    } else {
        (key, op)
    };
    key = key2.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    Some((
        key.to_string(),
        op2.to_string(),
        line[pos + 1..].trim().to_string(),
    ))
}

/// Sets `disable = yes` in service `service` of `text`: rewrites an existing `disable` line
/// (keeping its indentation) or inserts one before the closing brace.
pub fn disable_service(path: &str, text: &str, service: &str) -> Result<String> {
    let parsed = parse(path, text)?;
    let b = parsed
        .blocks
        .iter()
        .find(|b| b.kind == "service" && b.name == service)
        .ok_or_else(|| AgentError::parse(path, 0, format!("service {service} not found")))?;
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if let Some((_, _, _, li)) = b
        .attrs
        .iter()
        .rev()
        .find(|(k, op, _, _)| k == "disable" && op == "=")
    {
        let l = &lines[*li];
        let eq = l.find('=').unwrap_or(l.len());
        let nl = if l.ends_with('\n') { "\n" } else { "" };
        lines[*li] = format!("{}= yes{nl}", &l[..eq]);
    } else {
        let indent = b
            .attrs
            .first()
            .map(|(_, _, _, li)| {
                let l = &lines[*li];
                l[..l.len() - l.trim_start().len()].to_string()
            })
            .unwrap_or_else(|| "\t".to_string());
        lines.insert(b.close, format!("{indent}disable         = yes\n"));
    }
    Ok(lines.concat())
}

/// Runs the xinetd detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    let mut files: Vec<String> = Vec::new();
    let mut defaults: Option<Block> = None;
    let mut dirs = vec!["/etc/xinetd.d".to_string()];
    let main = match root.read_text(XINETD_CONF) {
        Ok(t) => t,
        Err(e) => {
            d.warn(e.to_string());
            None
        }
    };
    if let Some(t) = &main {
        match parse(XINETD_CONF, t) {
            Ok(p) => {
                defaults = p.blocks.iter().find(|b| b.kind == "defaults").cloned();
                dirs = p.includedirs.clone();
                files.push(XINETD_CONF.to_string());
            }
            Err(e) => {
                d.warn(e.to_string());
                return d;
            }
        }
    } else if !root.is_dir("/etc/xinetd.d") {
        return d;
    }
    for dir in &dirs {
        for f in root.list_dir(dir) {
            if f.contains('.') || f.ends_with('~') {
                continue;
            }
            files.push(join(dir, &f));
        }
    }
    let list = |key: &str| -> Vec<String> {
        defaults
            .as_ref()
            .map(|b| {
                b.attrs
                    .iter()
                    .filter(|(k, _, _, _)| k == key)
                    .flat_map(|(_, _, v, _)| {
                        v.split_whitespace().map(str::to_string).collect::<Vec<_>>()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (dis_list, en_list) = (list("disabled"), list("enabled"));
    for file in files {
        let text = match root.read_text(&file) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                d.warn(e.to_string());
                continue;
            }
        };
        let parsed = match parse(&file, &text) {
            Ok(p) => p,
            Err(e) => {
                d.warn(e.to_string());
                continue;
            }
        };
        for b in parsed.blocks.iter().filter(|b| b.kind == "service") {
            let port = b
                .get("port")
                .and_then(smtp_port_of_service)
                .or_else(|| smtp_port_of_service(&b.name));
            let program = format!(
                "{} {}",
                b.get("server").unwrap_or(""),
                b.get("server_args").unwrap_or("")
            );
            let mta = classify_program(&program);
            let (Some(port), mta) = (port, mta.unwrap_or(Mta::Unknown)) else {
                continue;
            };
            let id = b.get("id").unwrap_or(&b.name).to_string();
            let ev = format!("{file}:{}", b.close + 1);
            let why_off = if b
                .get("disable")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
            {
                Some("disable = yes".to_string())
            } else if dis_list.contains(&id) {
                Some(format!("listed in {XINETD_CONF} defaults 'disabled'"))
            } else if !en_list.is_empty() && !en_list.contains(&id) {
                Some(format!("not in {XINETD_CONF} defaults 'enabled'"))
            } else {
                None
            };
            let bind = b
                .get("bind")
                .or(b.get("interface"))
                .unwrap_or("all interfaces");
            let detail = format!(
                "service {} port {port} bound to {bind}, server {}",
                b.name,
                program.trim()
            );
            match why_off {
                Some(w) => d.fact(
                    mta,
                    FactKind::DisabledAtBoot,
                    Some(Mechanism::Xinetd),
                    ev,
                    format!("{detail} ({w})"),
                ),
                None => {
                    d.fact(
                        mta,
                        FactKind::EnabledAtBoot,
                        Some(Mechanism::Xinetd),
                        ev,
                        detail,
                    );
                    d.disable(
                        mta,
                        Mechanism::Xinetd,
                        Action::XinetdDisable {
                            path: file.clone(),
                            service: b.name.clone(),
                        },
                    );
                }
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMTP: &str = "# qmail\nservice smtp\n{\n\tsocket_type = stream\n\twait = no\n\tdisable = no\n\tserver = /var/qmail/bin/tcp-env\n}\n";

    #[test]
    fn parse_and_disable() {
        let p = parse("/etc/xinetd.d/smtp_psa", SMTP).unwrap();
        assert_eq!(p.blocks[0].get("disable"), Some("no"));
        let n = disable_service("/etc/xinetd.d/smtp_psa", SMTP, "smtp").unwrap();
        assert!(n.contains("\tdisable = yes\n"), "{n}");
        let no_attr = SMTP.replace("\tdisable = no\n", "");
        let n = disable_service("x", &no_attr, "smtp").unwrap();
        let p = parse("x", &n).unwrap();
        assert_eq!(p.blocks[0].get("disable"), Some("yes"));
    }

    #[test]
    fn malformed() {
        assert!(
            parse("x", "service smtp\n{\n\tdisable = no\n")
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
        assert!(
            parse("x", "service smtp\n{\n\tjunk\n}\n")
                .unwrap_err()
                .to_string()
                .contains("x:3")
        );
        assert!(parse("x", "\u{1}\u{2}garbage\n").is_err());
    }
}
