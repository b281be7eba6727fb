//! OpenRC (Gentoo, Alpine): `/etc/runlevels/LEVEL/NAME -> /etc/init.d/NAME`.
//!
//! Every runlevel directory counts (boot, default, sysinit, custom and stacked ones): a link
//! anywhere can start the service. Disabling removes the link, like `rc-update del`.

use relayguard_core::agent_report::{FactKind, Mechanism};

use super::{Action, Detection};
use crate::mta::classify_service_name;
use crate::root::{Root, join};

/// Runs the OpenRC detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    for level in root.list_dir("/etc/runlevels") {
        let dir = join("/etc/runlevels", &level);
        for name in root.list_dir(&dir) {
            let Some(mta) = classify_service_name(&name) else {
                continue;
            };
            let path = join(&dir, &name);
            let target = root
                .read_link(&path)
                .unwrap_or_else(|| "(not a link)".into());
            d.fact(
                mta,
                FactKind::EnabledAtBoot,
                Some(Mechanism::Openrc),
                &path,
                format!("runlevel {level} -> {target}"),
            );
            d.disable(mta, Mechanism::Openrc, Action::RemoveLink { path });
        }
    }
    d
}
