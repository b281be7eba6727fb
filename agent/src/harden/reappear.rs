//! Telling a reappearance from the rest of an interrupted run.
//!
//! Once a `harden` run has finished (its round-end line follows its last step in the journal),
//! every step a later run in the same mode plans is for an MTA that came back: a package
//! upgrade re-enabled it, or a new dependency installed one. Those MTAs are reported as
//! reappeared, with the package and version that provide them now. After a crash the journal
//! has no round-end line for its last steps, and the next run only finishes the interrupted one.

use relayguard_core::agent_report::{FactKind, Mta, Reappearance};

use super::Mode;
use super::journal::Contents;
use super::plan::Plan;
use crate::detect::Detection;
use crate::dpkg;
use crate::root::Root;

/// The MTAs `plan` switches off again after the finished run recorded in `prior`, in plan
/// order. Empty for the first run, after an interrupted run, and when the mode changed (a
/// `--mode disable` after `--mode loopback-only` is a new decision, not a reappearance).
pub fn find(
    root: &Root,
    prior: Option<&Contents>,
    plan: &Plan,
    det: &Detection,
    mode: Mode,
    at: u64,
) -> Vec<Reappearance> {
    let Some(prior) = prior else {
        return Vec::new();
    };
    let Some(last) = prior.rounds.last() else {
        return Vec::new();
    };
    if !prior.last_run_finished() || last.mode != mode.as_str() {
        return Vec::new();
    }
    let mut mtas: Vec<Mta> = Vec::new();
    for s in &plan.steps {
        if !mtas.contains(&s.mta) {
            mtas.push(s.mta);
        }
    }
    mtas.into_iter()
        .map(|mta| {
            let mut evidence: Vec<String> = Vec::new();
            for f in &det.findings {
                // What this mode switches off: boot enablement, and in loopback-only mode
                // also a listener bound beyond loopback.
                let counts = f.fact == FactKind::EnabledAtBoot
                    || (mode == Mode::LoopbackOnly && f.fact == FactKind::Exposed);
                if f.mta == mta && counts && !evidence.contains(&f.evidence) {
                    evidence.push(f.evidence.clone());
                }
            }
            let package = dpkg::package_of(root, mta);
            let hardened_version = prior
                .entries
                .iter()
                .filter(|e| e.mta == mta)
                .find_map(|e| e.package.as_ref())
                .filter(|p| package.as_ref().is_some_and(|now| now.name == p.name))
                .map(|p| p.version.clone());
            Reappearance {
                mta,
                at,
                evidence,
                previously_hardened: prior.entries.iter().any(|e| e.mta == mta),
                package,
                hardened_version,
            }
        })
        .collect()
}

/// One line for people: what came back, the proof, and the package that brought it.
pub fn describe(r: &Reappearance) -> String {
    let what = if r.previously_hardened {
        "enabled again"
    } else {
        "newly enabled"
    };
    let pkg = match (&r.package, &r.hardened_version) {
        (Some(p), Some(v)) if *v != p.version => {
            format!(
                "; package {} {} (was {v} when switched off)",
                p.name, p.version
            )
        }
        (Some(p), _) => format!("; package {} {}", p.name, p.version),
        (None, _) => String::new(),
    };
    format!(
        "{} {what} after harden ({}){pkg}; switched off again",
        r.mta.as_str(),
        r.evidence.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayguard_core::agent_report::PackageVersion;

    #[test]
    fn describe_names_an_upgrade() {
        let mut r = Reappearance {
            mta: Mta::Postfix,
            at: 1,
            evidence: vec!["/etc/rc2.d/S01postfix".into()],
            previously_hardened: true,
            package: Some(PackageVersion {
                name: "postfix".into(),
                version: "3.7.11-0+deb12u1".into(),
            }),
            hardened_version: Some("3.7.10-0+deb12u1".into()),
        };
        assert_eq!(
            describe(&r),
            "postfix enabled again after harden (/etc/rc2.d/S01postfix); package postfix 3.7.11-0+deb12u1 (was 3.7.10-0+deb12u1 when switched off); switched off again"
        );
        r.hardened_version = Some("3.7.11-0+deb12u1".into());
        assert!(describe(&r).ends_with("package postfix 3.7.11-0+deb12u1; switched off again"));
        r.previously_hardened = false;
        r.package = None;
        assert_eq!(
            describe(&r),
            "postfix newly enabled after harden (/etc/rc2.d/S01postfix); switched off again"
        );
    }
}
