//! Which Debian package provides an MTA, and at which version, from dpkg's status file
//! (`/var/lib/dpkg/status`). Used to say what brought an MTA back after a harden.

use relayguard_core::agent_report::{Mta, PackageVersion};

use crate::root::Root;

/// dpkg's database of installed packages, inside the root.
pub const STATUS_PATH: &str = "/var/lib/dpkg/status";

/// The packages that provide each MTA's daemon, most specific first (exim4-daemon-heavy and
/// -light are alternatives; exim4-base comes with either).
fn packages_of(mta: Mta) -> &'static [&'static str] {
    match mta {
        Mta::Postfix => &["postfix"],
        Mta::Exim => &["exim4-daemon-heavy", "exim4-daemon-light", "exim4-base"],
        Mta::Sendmail => &["sendmail-bin", "sendmail"],
        Mta::Opensmtpd => &["opensmtpd"],
        Mta::Qmail => &["qmail", "notqmail", "netqmail"],
        Mta::Dma => &["dma"],
        Mta::Nullmailer => &["nullmailer"],
        Mta::Courier => &["courier-mta"],
        Mta::Unknown => &[],
    }
}

/// The installed packages in a dpkg status text: (name, version) of every stanza whose
/// `Status:` ends in `installed`.
pub fn installed(status: &str) -> Vec<PackageVersion> {
    let mut out = Vec::new();
    for stanza in status.split("\n\n") {
        let (mut name, mut version, mut ok) = (None, None, false);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                // "install ok installed"; "deinstall ok config-files" is a removed package.
                ok = v.split_whitespace().last() == Some("installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, ok) {
            out.push(PackageVersion {
                name: n.to_string(),
                version: v.to_string(),
            });
        }
    }
    out
}

/// The installed package that provides `mta` under `root`, when dpkg's status file says so.
/// `None` without a status file (not Debian, or an unreadable one).
pub fn package_of(root: &Root, mta: Mta) -> Option<PackageVersion> {
    let status = root.read_text(STATUS_PATH).ok().flatten()?;
    let have = installed(&status);
    packages_of(mta)
        .iter()
        .find_map(|want| have.iter().find(|p| p.name == *want).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: exim4-base\nStatus: install ok installed\nPriority: important\nVersion: 4.96-15+deb12u7\n\nPackage: postfix\nStatus: deinstall ok config-files\nVersion: 3.7.10-0+deb12u1\n\nPackage: exim4-daemon-light\nStatus: install ok installed\nDescription: lightweight Exim MTA\n more text\nVersion: 4.96-15+deb12u7\n";

    #[test]
    fn installed_packages_only() {
        let p = installed(STATUS);
        assert_eq!(
            p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["exim4-base", "exim4-daemon-light"]
        );
        assert_eq!(p[1].version, "4.96-15+deb12u7");
    }

    #[test]
    fn the_daemon_package_is_preferred() {
        let dir = std::env::temp_dir().join(format!("rg-dpkg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("var/lib/dpkg")).unwrap();
        std::fs::write(dir.join("var/lib/dpkg/status"), STATUS).unwrap();
        let root = Root::new(&dir);
        assert_eq!(
            package_of(&root, Mta::Exim).map(|p| p.name),
            Some("exim4-daemon-light".into())
        );
        // Removed, its configuration kept: not what runs.
        assert_eq!(package_of(&root, Mta::Postfix), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
