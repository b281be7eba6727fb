//! The registry report: built from a check and the journal, written as JSON to a file or a
//! spool directory; [`crate::registry`] posts the spool.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use relayguard_core::agent_report::{
    ActionRecord, AgentReport, CheckResult, HostIdentity, Reappearance, SCHEMA_VERSION,
};

use crate::error::{AgentError, Result};
use crate::fsutil::{PathState, restore, to_hex};
use crate::harden::journal::{load, load_contents};
use crate::root::Root;

/// Reads the host identity from files inside the root (so images report their own identity).
pub fn host_identity(root: &Root) -> HostIdentity {
    let first_line = |p: &str| {
        root.read_text(p)
            .ok()
            .flatten()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|l| !l.is_empty())
    };
    let hostname = first_line("/etc/hostname")
        .or_else(|| {
            root.is_live()
                .then(|| first_line("/proc/sys/kernel/hostname"))
                .flatten()
        })
        .unwrap_or_else(|| "unknown".into());
    let os = root
        .read_text("/etc/os-release")
        .ok()
        .flatten()
        .or_else(|| root.read_text("/usr/lib/os-release").ok().flatten())
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        });
    HostIdentity {
        hostname,
        machine_id: first_line("/etc/machine-id"),
        os,
    }
}

/// Actions currently in effect according to the journal.
pub fn journaled_actions(root: &Root) -> Result<Vec<ActionRecord>> {
    Ok(load(root)?
        .map(|(_, entries, _)| {
            entries
                .into_iter()
                .map(|e| ActionRecord {
                    mta: e.mta,
                    mechanism: e.mechanism,
                    path: e
                        .before
                        .first()
                        .map(|b| b.0.clone())
                        .or_else(|| e.service.as_ref().map(|s| s.fmri.clone()))
                        .unwrap_or_default(),
                    description: e.description,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// MTAs that came back after a harden and were switched off again, oldest first, from the
/// journal's round-end lines (gone once `revert` removes the journal).
pub fn reappearances(root: &Root) -> Result<Vec<Reappearance>> {
    Ok(load_contents(root)?
        .map(|c| c.rounds.into_iter().flat_map(|r| r.reappeared).collect())
        .unwrap_or_default())
}

/// Where a mail server's health comes from (see [`crate::queue`] and [`crate::maillog`]).
#[derive(Debug, Clone)]
pub struct QueueSources {
    /// The mail log (a host path); `None`: the first of the MTA's
    /// [`crate::maillog::default_logs`] that exists in the root.
    pub mail_log: Option<std::path::PathBuf>,
    /// Where the mail log's read offset is kept between reports (a host path).
    pub state_dir: std::path::PathBuf,
}

/// Builds the report; with `queue`, the mail queue's health too (mail servers).
pub fn build(root: &Root, check: CheckResult, queue: Option<&QueueSources>) -> Result<AgentReport> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(AgentReport {
        schema_version: SCHEMA_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        generated_at: now,
        host: host_identity(root),
        check,
        actions: journaled_actions(root)?,
        reappeared: reappearances(root)?,
        queue: match queue {
            Some(src) => crate::queue::gather(root, now)?
                .map(|mut q| -> Result<_> {
                    let log = src.mail_log.clone().unwrap_or_else(|| {
                        let logs = crate::maillog::default_logs(q.mta);
                        let found = logs.iter().find(|l| root.exists(l));
                        root.host(found.unwrap_or(&logs[0]))
                    });
                    q.bounces_since_last =
                        crate::maillog::bounces_since_last(q.mta, &log, &src.state_dir)?;
                    Ok(q)
                })
                .transpose()?,
            None => None,
        },
    })
}

/// Writes the report atomically to a host path (temp + fsync + rename).
pub fn write_file(path: &std::path::Path, report: &AgentReport) -> Result<()> {
    let json = serde_json::to_string_pretty(report)? + "\n";
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| AgentError::Refused(format!("{}: not a file name", path.display())))?
        .to_string_lossy()
        .into_owned();
    let r = Root::new(dir);
    restore(
        &r,
        &format!("/{name}"),
        &PathState::File {
            mode: 0o644,
            uid: current_owner(dir).0,
            gid: current_owner(dir).1,
            content_hex: to_hex(json.as_bytes()),
        },
        0,
    )
}

fn current_owner(dir: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir)
        .map(|m| (m.uid(), m.gid()))
        .unwrap_or((0, 0))
}

/// Writes the report into a spool directory as `report-<time>.json`, creating the directory.
pub fn spool(dir: &std::path::Path, report: &AgentReport) -> Result<std::path::PathBuf> {
    fs::create_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
    let path = dir.join(format!(
        "report-{}-{}.json",
        report.generated_at,
        std::process::id()
    ));
    write_file(&path, report)?;
    Ok(path)
}
