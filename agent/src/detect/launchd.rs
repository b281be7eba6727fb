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

/// The label → disabled map of the database, `Ok(None)` when there is no database yet.
fn read_db(root: &Root) -> Result<Option<Dictionary>> {
    let Some(bytes) = root.read_bytes(DISABLED_DB)? else {
        return Ok(None);
    };
    match parse(&bytes) {
        Ok(Value::Dictionary(d)) => Ok(Some(d)),
        Ok(_) => Err(AgentError::Refused(format!(
            "{DISABLED_DB}: not a dictionary of job labels"
        ))),
        Err(e) => Err(AgentError::Refused(format!("{DISABLED_DB}: {e}"))),
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
    let jobs: Vec<String> = JOB_DIRS
        .iter()
        .flat_map(|dir| {
            root.list_dir(dir)
                .into_iter()
                .filter(|n| n.ends_with(".plist"))
                .map(|n| join(dir, &n))
        })
        .collect();
    if jobs.is_empty() {
        return d;
    }
    // An unreadable database: report nothing as off or on, and never rewrite it.
    let db = match read_db(root) {
        Ok(db) => db,
        Err(e) => {
            d.warn(e.to_string());
            return d;
        }
    };
    for path in jobs {
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
        let own = job.get("Disabled").and_then(Value::as_boolean);
        let over = db
            .as_ref()
            .and_then(|db| db.get(label))
            .and_then(Value::as_boolean);
        if over == Some(true) || (over.is_none() && own == Some(true)) {
            let (ev, why) = match over {
                Some(true) => (
                    DISABLED_DB.to_string(),
                    format!("{label} => true (launchctl disable)"),
                ),
                _ => (at, format!("{label}: Disabled = true in the job")),
            };
            d.fact(
                mta,
                FactKind::DisabledAtBoot,
                Some(Mechanism::Launchd),
                ev,
                why,
            );
            continue;
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
                at,
                format!("{label}: loaded, but nothing starts it (no RunAtLoad, KeepAlive or on-demand key)"),
            );
            continue;
        }
        let mut detail = format!("launchd job {label} ({}", triggers.join(", "));
        if over == Some(false) && own == Some(true) {
            detail.push_str(&format!("; enabled by {DISABLED_DB}"));
        }
        detail.push(')');
        d.fact(
            mta,
            FactKind::EnabledAtBoot,
            Some(Mechanism::Launchd),
            at,
            detail,
        );
        d.disable(
            mta,
            Mechanism::Launchd,
            Action::LaunchdDisable {
                label: label.to_string(),
            },
        );
    }
    d
}

/// The database with `labels` switched off, in the format it had (binary stays binary); a
/// new database is XML. `current` is the database's content, `None` when there is none.
pub fn disable_in_db(current: Option<&[u8]>, labels: &[String]) -> Result<Vec<u8>> {
    let (mut db, binary) = match current {
        Some(bytes) => match parse(bytes) {
            Ok(Value::Dictionary(d)) => (d, bytes.starts_with(b"bplist")),
            Ok(_) => {
                return Err(AgentError::Refused(format!(
                    "{DISABLED_DB}: not a dictionary of job labels"
                )));
            }
            Err(e) => return Err(AgentError::Refused(format!("{DISABLED_DB}: {e}"))),
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
    written.map_err(|e| AgentError::Refused(format!("{DISABLED_DB}: {e}")))?;
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
