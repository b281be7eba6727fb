//! systemd: wants/requires/upholds links, masked units and SMTP socket units.
//!
//! Unit search path precedence is `/etc` > `/run` > `/usr/lib` (and `/lib` on split-usr Debian).
//! Links in vendor directories (`/usr/lib/.../*.wants`) are package-owned "static" enablement:
//! we report them but only mask, never delete package files.

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::unitfile;
use super::{Action, Detection};
use crate::mta::{SMTP_PORTS, classify_service_name};
use crate::root::{Root, join};

/// Unit directories in precedence order.
pub const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Directories where the admin (not a package) enables and masks units.
const ADMIN_DIRS: [&str; 2] = ["/etc/systemd/system", "/run/systemd/system"];

/// Whether the root boots with systemd (its PID 1 binary is present).
pub fn is_systemd_root(root: &Root) -> bool {
    root.exists("/lib/systemd/systemd") || root.exists("/usr/lib/systemd/systemd")
}

/// Unit directories that exist, with `/lib` dropped when it is the same as `/usr/lib`
/// (merged-usr systems), so links are not reported twice.
fn unit_dirs(root: &Root) -> Vec<&'static str> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for d in UNIT_DIRS {
        if !root.is_dir(d) {
            continue;
        }
        let r = root.resolve(d);
        if !seen.contains(&r) {
            seen.push(r);
            out.push(d);
        }
    }
    out
}

/// Finds the unit file that systemd would load for `unit` (highest precedence), if any.
pub fn unit_file(root: &Root, unit: &str) -> Option<String> {
    UNIT_DIRS
        .iter()
        .map(|d| join(d, unit))
        .find(|p| root.exists(p))
}

/// Whether `unit` is masked (a file in /etc or /run linked to /dev/null, or empty).
pub fn masked_by(root: &Root, unit: &str) -> Option<String> {
    for d in ADMIN_DIRS {
        let p = join(d, unit);
        if root.read_link(&p).as_deref() == Some("/dev/null") {
            return Some(p);
        }
    }
    None
}

/// Runs the systemd detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    let dirs = unit_dirs(root);
    if dirs.is_empty() {
        return d;
    }
    let smtp_sockets = smtp_socket_units(root, &dirs, &mut d);
    // Units that are enabled somewhere and should be masked when hardening.
    let mut to_mask: Vec<(Mta, Mechanism, String)> = Vec::new();

    for dir in &dirs {
        for sub in root.list_dir(dir) {
            let Some(target) = [".wants", ".requires", ".upholds"]
                .iter()
                .find_map(|s| sub.strip_suffix(s))
            else {
                continue;
            };
            let subdir = join(dir, &sub);
            for unit in root.list_dir(&subdir) {
                let (mta, mech) =
                    if let Some((mta, _)) = smtp_sockets.iter().find(|(_, u)| *u == unit) {
                        (*mta, Mechanism::SystemdSocket)
                    } else if let Some(mta) = classify_service_name(&unit) {
                        (mta, Mechanism::Systemd)
                    } else {
                        continue;
                    };
                let path = join(&subdir, &unit);
                let link = root
                    .read_link(&path)
                    .map(|t| format!(" -> {t}"))
                    .unwrap_or_default();
                let masked = masked_by(root, &unit);
                // A masked unit never starts, whatever links point at it.
                let (fact, detail) = match &masked {
                    Some(m) => (
                        FactKind::DisabledAtBoot,
                        format!("{target} wants {unit}{link}, but masked by {m}"),
                    ),
                    None => (
                        FactKind::EnabledAtBoot,
                        format!("{target} wants {unit}{link}"),
                    ),
                };
                d.fact(mta, fact, Some(mech), &path, detail);
                if ADMIN_DIRS.contains(dir) {
                    d.disable(mta, mech, Action::RemoveLink { path: path.clone() });
                }
                if masked.is_none() {
                    to_mask.push((mta, mech, unit.clone()));
                }
                if let (true, None, Some(g)) = (unit == "postfix.service", &masked, generator(root))
                {
                    d.fact(
                        mta,
                        FactKind::EnabledAtBoot,
                        Some(Mechanism::Systemd),
                        g,
                        "postfix-instance-generator adds postfix@-.service (the real daemon) to postfix.service.wants",
                    );
                }
            }
        }
    }
    for dir in ADMIN_DIRS {
        for unit in root.list_dir(dir) {
            let Some(mta) = classify_service_name(&unit).or_else(|| {
                smtp_sockets
                    .iter()
                    .find(|(_, u)| *u == unit)
                    .map(|(m, _)| *m)
            }) else {
                continue;
            };
            if masked_by(root, &unit).is_some() {
                d.fact(
                    mta,
                    FactKind::Masked,
                    Some(Mechanism::Systemd),
                    join(dir, &unit),
                    format!("{unit} -> /dev/null"),
                );
            }
        }
    }
    for (mta, mech, unit) in to_mask {
        d.disable(mta, mech, Action::Mask { unit });
    }
    d
}

fn generator(root: &Root) -> Option<String> {
    [
        "/lib/systemd/system-generators/postfix-instance-generator",
        "/usr/lib/systemd/system-generators/postfix-instance-generator",
    ]
    .iter()
    .find(|p| root.exists(p))
    .map(std::string::ToString::to_string)
}

/// Finds `.socket` units with a `ListenStream=` on an SMTP port; reports each and returns
/// (mta, unit name) so the wants scan can tell them apart from unrelated sockets.
fn smtp_socket_units(root: &Root, dirs: &[&str], d: &mut Detection) -> Vec<(Mta, String)> {
    let mut out: Vec<(Mta, String)> = Vec::new();
    for dir in dirs {
        for unit in root.list_dir(dir) {
            if !unit.ends_with(".socket") || out.iter().any(|(_, u)| *u == unit) {
                continue;
            }
            // Only the winning file counts (an /etc override hides the vendor file).
            let Some(path) = unit_file(root, &unit) else {
                continue;
            };
            if path != join(dir, &unit) {
                continue;
            }
            let text = match root.read_text(&path) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    // A masked socket is a link to /dev/null: not a regular file, not an error.
                    if root.read_link(&path).as_deref() != Some("/dev/null") {
                        d.warn(e.to_string());
                    }
                    continue;
                }
            };
            let (entries, _) = unitfile::parse(&text);
            for e in entries
                .iter()
                .filter(|e| e.section == "Socket" && e.key == "ListenStream")
            {
                let Some((addr, port)) = unitfile::listen_port(&e.value) else {
                    continue;
                };
                if !SMTP_PORTS.contains(&port) {
                    continue;
                }
                let mta = classify_service_name(&unit)
                    .or_else(|| {
                        entries
                            .iter()
                            .find(|x| x.key == "Service")
                            .and_then(|x| classify_service_name(&x.value))
                    })
                    .or_else(|| {
                        // Accept=yes sockets start NAME@.service; read its ExecStart.
                        let svc = unit.replace(".socket", "@.service");
                        unit_file(root, &svc)
                            .and_then(|p| root.read_text(&p).ok().flatten())
                            .and_then(|t| crate::mta::classify_program(&t))
                    })
                    .unwrap_or(Mta::Unknown);
                let exposure = if unitfile::is_loopback_addr(&addr) {
                    "loopback only"
                } else {
                    "exposed"
                };
                d.fact(
                    mta,
                    FactKind::Installed,
                    Some(Mechanism::SystemdSocket),
                    format!("{path}:{}", e.line),
                    format!("ListenStream={} ({exposure})", e.value),
                );
                if !out.iter().any(|(_, u)| *u == unit) {
                    out.push((mta, unit.clone()));
                }
            }
        }
    }
    out
}
