//! SysV rc directories: `/etc/rcN.d` (Debian, Solaris, HP-UX) and `/etc/rc.d/rcN.d` (RHEL).
//!
//! `rc N` runs every `S##name` entry of the runlevel's directory with `start`; anything not
//! starting with a capital `S` is skipped. Solaris ships hard links (regular
//! files), Linux symlinks into `../init.d`. The default runlevel comes from `/etc/inittab`
//! (`id:N:initdefault:`); without inittab (systemd hosts) runlevels 2–5 all count, because
//! systemd-sysv-generator maps them onto multi-user/graphical targets.

use relayguard_core::agent_report::{FactKind, Mechanism};

use super::systemd;
use super::{Action, Detection};
use crate::mta::classify_service_name;
use crate::root::{Root, join};

/// Runlevels whose start links matter at boot.
const BOOT_LEVELS: [&str; 5] = ["S", "2", "3", "4", "5"];

/// Reads the default runlevel from `/etc/inittab`, with the line that says so.
pub fn default_runlevel(root: &Root, d: &mut Detection) -> Option<(String, usize)> {
    let text = match root.read_text("/etc/inittab") {
        Ok(Some(t)) => t,
        Ok(None) => return None,
        Err(e) => {
            d.warn(e.to_string());
            return None;
        }
    };
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = t.split(':').collect();
        if f.len() >= 3 && f[2] == "initdefault" && !f[1].is_empty() {
            return Some((f[1].to_string(), i + 1));
        }
    }
    None
}

/// Splits `S20postfix` into ('S', "20", "postfix").
fn split_entry(name: &str) -> Option<(char, &str, &str)> {
    let mut chars = name.chars();
    let sk = chars.next()?;
    if sk != 'S' && sk != 'K' {
        return None;
    }
    let rest = &name[1..];
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 || digits == rest.len() {
        return None;
    }
    Some((sk, &rest[..digits], &rest[digits..]))
}

/// Runs the SysV detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    let default = default_runlevel(root, &mut d);
    let systemd_init = systemd::is_systemd_root(root);
    let mut generated_done: Vec<String> = Vec::new();
    for base in ["/etc", "/etc/rc.d"] {
        for lvl in BOOT_LEVELS {
            let dir = join(base, &format!("rc{lvl}.d"));
            // /etc/rc.d/rcN.d may be the same directory as /etc/rcN.d (RHEL compat links).
            if base == "/etc/rc.d" && root.resolve(&dir) == root.resolve(&format!("/etc/rc{lvl}.d"))
            {
                continue;
            }
            for name in root.list_dir(&dir) {
                let Some((sk, num, script)) = split_entry(&name) else {
                    continue;
                };
                let Some(mta) = classify_service_name(script) else {
                    continue;
                };
                let path = join(&dir, &name);
                let style = match root.read_link(&path) {
                    Some(t) => format!("-> {t}"),
                    None => "script (hard link, Solaris style)".to_string(),
                };
                let runlevel_note = match &default {
                    Some((n, line)) if n == lvl => {
                        format!("; default runlevel {n} per /etc/inittab:{line}")
                    }
                    Some((n, _)) => format!("; default runlevel is {n}"),
                    None => String::new(),
                };
                let unit = format!("{script}.service");
                let native = systemd::unit_file(root, &unit);
                let runlevel_note = match (&native, systemd_init) {
                    (Some(u), true) => {
                        format!("{runlevel_note}; inert under systemd (native unit {u})")
                    }
                    _ => runlevel_note,
                };
                if sk == 'K' {
                    d.fact(
                        mta,
                        FactKind::DisabledAtBoot,
                        Some(Mechanism::Sysv),
                        &path,
                        format!("kill entry {style}{runlevel_note}"),
                    );
                    continue;
                }
                d.fact(
                    mta,
                    FactKind::EnabledAtBoot,
                    Some(Mechanism::Sysv),
                    &path,
                    format!("start entry {style}{runlevel_note}"),
                );
                d.disable(
                    mta,
                    Mechanism::Sysv,
                    Action::RenameStart {
                        from: path.clone(),
                        to: join(&dir, &format!("K{num}{script}")),
                    },
                );
                // Under systemd an init script without a native unit becomes a generated
                // unit; masking it keeps it off even if a package later re-adds S links.
                if systemd_init && native.is_none() && !generated_done.contains(&unit) {
                    generated_done.push(unit.clone());
                    d.fact(
                        mta,
                        FactKind::EnabledAtBoot,
                        Some(Mechanism::SystemdSysvGenerated),
                        &path,
                        format!("systemd-sysv-generator turns /etc/init.d/{script} into {unit}"),
                    );
                    d.disable(mta, Mechanism::SystemdSysvGenerated, Action::Mask { unit });
                }
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(split_entry("S88sendmail"), Some(('S', "88", "sendmail")));
        assert_eq!(split_entry("K01exim4"), Some(('K', "01", "exim4")));
        assert_eq!(split_entry("S88"), None);
        assert_eq!(split_entry("README"), None);
        assert_eq!(split_entry("_S88sendmail"), None);
    }
}
