//! Slackware: `/etc/rc.d/rc.M` runs `/etc/rc.d/rc.NAME` only if it is executable, so the
//! execute bit is the enablement; disabling is `chmod -x`.

use std::os::unix::fs::PermissionsExt;

use relayguard_core::agent_report::{FactKind, Mechanism};

use super::{Action, Detection};
use crate::mta::classify_service_name;
use crate::root::{Root, join};

/// Runs the Slackware detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    for name in root.list_dir("/etc/rc.d") {
        let Some(svc) = name.strip_prefix("rc.") else {
            continue;
        };
        let Some(mta) = classify_service_name(svc) else {
            continue;
        };
        let path = join("/etc/rc.d", &name);
        let Ok(Some(meta)) = root.lstat(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o111 != 0 {
            d.fact(
                mta,
                FactKind::EnabledAtBoot,
                Some(Mechanism::Slackware),
                &path,
                format!("executable (mode {mode:04o}), run by /etc/rc.d/rc.M"),
            );
            d.disable(mta, Mechanism::Slackware, Action::ClearExec { path });
        } else {
            d.fact(
                mta,
                FactKind::DisabledAtBoot,
                Some(Mechanism::Slackware),
                &path,
                format!("not executable (mode {mode:04o})"),
            );
        }
    }
    d
}
