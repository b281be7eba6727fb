//! macOS launchd: job definitions in `/System/Library/LaunchDaemons` and `/Library/LaunchDaemons`
//! (property lists, XML or binary), and launchd's database of disabled jobs,
//! `/var/db/com.apple.xpc.launchd/disabled.plist` (what `launchctl print-disabled system` shows
//! and `launchctl disable system/LABEL` writes).
//!
//! A job is switched off when the database maps its label to `true`; `false` there switches it
//! on whatever the job's own `Disabled` key says; without an entry the `Disabled` key decides.
//! A job that is on starts at boot (`RunAtLoad`, `KeepAlive`) or on demand (`Sockets`,
//! `QueueDirectories`, `WatchPaths`, timers): macOS's own Postfix job starts the master when
//! mail is queued, and the master then binds what master.cf says. The job files are left alone
//! (System Integrity Protection guards `/System`); `harden` writes the database, as
//! `launchctl disable` does.
//!
//! Agents are jobs launchd starts in a user's session at login: `/Library/LaunchAgents` for
//! every user, `/Users/NAME/Library/LaunchAgents` for one (where `brew services start` without
//! sudo puts Homebrew's MTAs). Their domain is `gui/UID` and its database is
//! `/var/db/com.apple.xpc.launchd/disabled.UID.plist` (what `launchctl disable gui/UID/LABEL`
//! writes). A user is a directory in `/Users` (not `Shared`), its UID the directory's owner. A
//! job for every user is judged, and switched off, in each user's domain.

use std::io::Cursor;

use plist::{Dictionary, Value};
use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::{Action, Detection};
use crate::error::{AgentError, Result};
use crate::mta::{classify_program, classify_service_name};
use crate::root::{Root, join};

/// launchd's database of disabled system jobs.
pub const DISABLED_DB: &str = "/var/db/com.apple.xpc.launchd/disabled.plist";

/// Where system jobs (daemons, started at boot without a login) are defined.
pub const JOB_DIRS: [&str; 2] = ["/System/Library/LaunchDaemons", "/Library/LaunchDaemons"];

/// Where agents for every user are defined; each user's own are in `/Users/NAME/` + this.
pub const AGENT_DIR: &str = "/Library/LaunchAgents";

/// The disabled-jobs database of user `uid`'s domain (`gui/UID`).
pub fn user_db(uid: u32) -> String {
    format!("/var/db/com.apple.xpc.launchd/disabled.{uid}.plist")
}

/// The users of a macOS root: (home, uid) of every directory in `/Users` but `Shared`.
fn users(root: &Root) -> Vec<(String, u32)> {
    use std::os::unix::fs::MetadataExt;
    root.list_dir("/Users")
        .into_iter()
        .filter(|n| n != "Shared" && !n.starts_with('.'))
        .filter_map(|n| {
            let home = join("/Users", &n);
            let m = root.lstat(&home).ok().flatten()?;
            m.is_dir().then(|| (home, m.uid()))
        })
        .collect()
}

/// A launchd domain a job is loaded in: `system` or `gui/UID`, with its database.
#[derive(Debug, Clone)]
struct Domain {
    name: String,
    db: String,
}

/// The `.plist` files of a directory, as inside paths.
fn plists(root: &Root, dir: &str) -> Vec<String> {
    root.list_dir(dir)
        .into_iter()
        .filter(|n| n.ends_with(".plist"))
        .map(|n| join(dir, &n))
        .collect()
}

/// Every job file with the domains it is loaded in.
fn jobs(root: &Root) -> Vec<(String, Vec<Domain>)> {
    let system = Domain {
        name: "system".into(),
        db: DISABLED_DB.into(),
    };
    let gui = |uid: u32| Domain {
        name: format!("gui/{uid}"),
        db: user_db(uid),
    };
    let users = users(root);
    let mut out: Vec<(String, Vec<Domain>)> = JOB_DIRS
        .iter()
        .flat_map(|dir| plists(root, dir))
        .map(|p| (p, vec![system.clone()]))
        .collect();
    for p in plists(root, AGENT_DIR) {
        out.push((p, users.iter().map(|(_, uid)| gui(*uid)).collect()));
    }
    for (home, uid) in &users {
        for p in plists(root, &join(home, "Library/LaunchAgents")) {
            out.push((p, vec![gui(*uid)]));
        }
    }
    out
}

/// The keys that make launchd start a loaded job, at boot or on demand.
const TRIGGERS: [&str; 8] = [
    "RunAtLoad",
    "KeepAlive",
    "Sockets",
    "QueueDirectories",
    "WatchPaths",
    "StartInterval",
    "StartCalendarInterval",
    "StartOnMount",
];

/// Which MTA a job runs: Apple's Postfix job by its label, Homebrew's `homebrew.mxcl.NAME` by
/// its formula name, anything else by its program. Labels alone are not enough: macOS also has
/// `com.apple.postfix.newaliases`, which only rebuilds the aliases.
pub fn classify_job(label: &str, program: &str) -> Option<Mta> {
    if label == "com.apple.postfix.master" || label == "org.postfix.master" {
        return Some(Mta::Postfix);
    }
    if let Some(formula) = label.strip_prefix("homebrew.mxcl.")
        && let Some(m) = classify_service_name(formula)
    {
        return Some(m);
    }
    classify_program(program)
}

/// Parses a property list, XML or binary.
pub fn parse(bytes: &[u8]) -> std::result::Result<Value, plist::Error> {
    Value::from_reader(Cursor::new(bytes))
}

/// The label → disabled map of a database, `Ok(None)` when there is no database yet.
fn read_db(root: &Root, db: &str) -> Result<Option<Dictionary>> {
    let Some(bytes) = root.read_bytes(db)? else {
        return Ok(None);
    };
    match parse(&bytes) {
        Ok(Value::Dictionary(d)) => Ok(Some(d)),
        Ok(_) => Err(AgentError::Refused(format!(
            "{db}: not a dictionary of job labels"
        ))),
        Err(e) => Err(AgentError::Refused(format!("{db}: {e}"))),
    }
}

/// `path:LINE` of the label in an XML job file; the bare path for a binary one.
fn evidence(path: &str, bytes: &[u8], label: &str) -> String {
    if bytes.starts_with(b"bplist") {
        return path.to_string();
    }
    let needle = format!("<string>{label}</string>");
    String::from_utf8_lossy(bytes)
        .lines()
        .position(|l| l.contains(&needle))
        .map_or_else(|| path.to_string(), |i| format!("{path}:{}", i + 1))
}

/// Runs the launchd detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    let jobs = jobs(root);
    if jobs.is_empty() {
        return d;
    }
    // Each database read once. An unreadable one: nothing in its domain is reported off or on,
    // and it is never rewritten.
    let mut dbs: std::collections::BTreeMap<String, Option<Option<Dictionary>>> =
        std::collections::BTreeMap::new();
    for (path, domains) in jobs {
        let Ok(Some(bytes)) = root.read_bytes(&path) else {
            continue;
        };
        let job = match parse(&bytes) {
            Ok(Value::Dictionary(j)) => j,
            Ok(_) => continue,
            Err(e) => {
                d.warn(format!("{path}: {e}"));
                continue;
            }
        };
        let Some(label) = job.get("Label").and_then(Value::as_string) else {
            continue;
        };
        let program = job
            .get("Program")
            .and_then(Value::as_string)
            .or_else(|| {
                job.get("ProgramArguments")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(Value::as_string)
            })
            .unwrap_or("");
        let Some(mta) = classify_job(label, program) else {
            continue;
        };
        let at = evidence(&path, &bytes, label);
        for dom in domains {
            let db = dbs
                .entry(dom.db.clone())
                .or_insert_with(|| match read_db(root, &dom.db) {
                    Ok(db) => Some(db),
                    Err(e) => {
                        d.warn(e.to_string());
                        None
                    }
                });
            let Some(db) = db.as_ref() else {
                continue;
            };
            judge(&mut d, &job, mta, label, &at, &dom, db.as_ref());
        }
    }
    d
}

/// One job in one domain: a fact, and a target when it is on.
fn judge(
    d: &mut Detection,
    job: &Dictionary,
    mta: Mta,
    label: &str,
    at: &str,
    dom: &Domain,
    db: Option<&Dictionary>,
) {
    // Agents start at the user's login, daemons at boot.
    let when = if dom.name == "system" {
        String::new()
    } else {
        format!(" in {}, at the user's login", dom.name)
    };
    let own = job.get("Disabled").and_then(Value::as_boolean);
    let over = db.and_then(|db| db.get(label)).and_then(Value::as_boolean);
    if over == Some(true) || (over.is_none() && own == Some(true)) {
        let (ev, why) = match over {
            Some(true) => (
                dom.db.clone(),
                format!("{label} => true (launchctl disable {}/{label})", dom.name),
            ),
            _ => (
                at.to_string(),
                format!("{label}: Disabled = true in the job"),
            ),
        };
        d.fact(
            mta,
            FactKind::DisabledAtBoot,
            Some(Mechanism::Launchd),
            ev,
            why,
        );
        return;
    }
    let triggers: Vec<&str> = TRIGGERS
        .iter()
        .copied()
        .filter(|k| match job.get(k) {
            Some(Value::Boolean(b)) => *b,
            Some(_) => true,
            None => false,
        })
        .collect();
    if triggers.is_empty() {
        d.fact(
            mta,
            FactKind::DisabledAtBoot,
            Some(Mechanism::Launchd),
            at.to_string(),
            format!(
                "{label}: loaded, but nothing starts it (no RunAtLoad, KeepAlive or on-demand key)"
            ),
        );
        return;
    }
    let mut detail = format!("launchd job {label}{when} ({}", triggers.join(", "));
    if over == Some(false) && own == Some(true) {
        detail.push_str(&format!("; enabled by {}", dom.db));
    }
    detail.push(')');
    d.fact(
        mta,
        FactKind::EnabledAtBoot,
        Some(Mechanism::Launchd),
        at.to_string(),
        detail,
    );
    d.disable(
        mta,
        Mechanism::Launchd,
        Action::LaunchdDisable {
            label: label.to_string(),
            domain: dom.name.clone(),
            db: dom.db.clone(),
        },
    );
}

/// The database with `labels` switched off, in the format it had (binary stays binary); a
/// new database is XML. `current` is the database's content, `None` when there is none.
pub fn disable_in_db(current: Option<&[u8]>, labels: &[String]) -> Result<Vec<u8>> {
    let (mut db, binary) = match current {
        Some(bytes) => match parse(bytes) {
            Ok(Value::Dictionary(d)) => (d, bytes.starts_with(b"bplist")),
            Ok(_) => {
                return Err(AgentError::Refused(
                    "launchd database: not a dictionary of job labels".into(),
                ));
            }
            Err(e) => return Err(AgentError::Refused(format!("launchd database: {e}"))),
        },
        None => (Dictionary::new(), false),
    };
    for l in labels {
        db.insert(l.clone(), Value::Boolean(true));
    }
    let mut out = Vec::new();
    let v = Value::Dictionary(db);
    let written = if binary {
        v.to_writer_binary(&mut out)
    } else {
        v.to_writer_xml(&mut out)
    };
    written.map_err(|e| AgentError::Refused(format!("launchd database: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_told_apart() {
        assert_eq!(
            classify_job("com.apple.postfix.master", "master"),
            Some(Mta::Postfix)
        );
        assert_eq!(
            classify_job("com.apple.postfix.newaliases", "/usr/bin/newaliases"),
            None
        );
        assert_eq!(
            classify_job(
                "homebrew.mxcl.opensmtpd",
                "/opt/homebrew/opt/opensmtpd/sbin/smtpd"
            ),
            Some(Mta::Opensmtpd)
        );
        assert_eq!(
            classify_job("org.example.mail", "/usr/local/sbin/exim"),
            Some(Mta::Exim)
        );
        assert_eq!(classify_job("com.apple.ftpd", "/usr/libexec/ftpd"), None);
    }

    #[test]
    fn the_database_keeps_its_format_and_other_entries() {
        let mut d = Dictionary::new();
        d.insert("com.apple.ftpd".into(), Value::Boolean(true));
        let mut bin = Vec::new();
        Value::Dictionary(d.clone())
            .to_writer_binary(&mut bin)
            .unwrap();
        let out = disable_in_db(Some(&bin), &["com.apple.postfix.master".into()]).unwrap();
        assert!(out.starts_with(b"bplist00"));
        let v = parse(&out).unwrap();
        let v = v.as_dictionary().unwrap();
        assert_eq!(v.get("com.apple.ftpd"), Some(&Value::Boolean(true)));
        assert_eq!(
            v.get("com.apple.postfix.master"),
            Some(&Value::Boolean(true))
        );
        let xml = disable_in_db(None, &["homebrew.mxcl.exim".into()]).unwrap();
        assert!(
            String::from_utf8(xml)
                .unwrap()
                .contains("<key>homebrew.mxcl.exim</key>")
        );
        assert!(disable_in_db(Some(b"not a plist"), &[]).is_err());
    }
}
