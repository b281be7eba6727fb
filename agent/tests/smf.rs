//! Solaris/illumos SMF through the library, with a command runner that replays `svcs` and
//! `svcprop` output in the formats those commands print, and keeps the state `svcadm` changes.
//! The listing below is written in `svcs -a -H -o state,fmri`'s format (state column padded
//! to 15 characters); no Solaris host was at hand to record one.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use relayguard_agent::command::{CommandOutput, CommandRunner};
use relayguard_agent::harden::{Mode, apply, journal, plan};
use relayguard_agent::root::Root;
use relayguard_agent::{check, revert};
use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

const SENDMAIL: &str = "svc:/network/smtp:sendmail";

/// State, general/enabled and config/local_only of each instance.
type Services = BTreeMap<String, (String, bool, Option<String>)>;

#[derive(Debug)]
struct Replay {
    services: Mutex<Services>,
    calls: Mutex<Vec<String>>,
    /// `svcadm` answers like an unprivileged caller.
    refuse_svcadm: AtomicBool,
}

impl Replay {
    fn new(local_only: &str) -> Arc<Replay> {
        let mut s = Services::new();
        for (state, fmri, on, local) in [
            ("online", "svc:/network/ssh:default", true, None),
            ("online", SENDMAIL, true, Some(local_only)),
            ("online", "svc:/network/sendmail-client:default", true, None),
            ("disabled", "svc:/pkgsrc/postfix:default", false, None),
        ] {
            s.insert(
                fmri.to_string(),
                (state.to_string(), on, local.map(str::to_string)),
            );
        }
        Arc::new(Replay {
            services: Mutex::new(s),
            calls: Mutex::new(Vec::new()),
            refuse_svcadm: AtomicBool::new(false),
        })
    }

    fn state(&self, fmri: &str) -> (String, bool) {
        let s = self.services.lock().unwrap();
        let (state, on, _) = &s[fmri];
        (state.clone(), *on)
    }

    fn svcadm_calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("/usr/sbin/svcadm"))
            .cloned()
            .collect()
    }
}

fn out(stdout: &str) -> CommandOutput {
    CommandOutput {
        success: true,
        stdout: stdout.to_string(),
        stderr: String::new(),
    }
}

fn fail(stderr: &str) -> CommandOutput {
    CommandOutput {
        success: false,
        stdout: String::new(),
        stderr: stderr.to_string(),
    }
}

impl CommandRunner for Replay {
    fn run(&self, program: &str, args: &[&str]) -> relayguard_agent::error::Result<CommandOutput> {
        // A poisoned lock means another assertion already failed: carry on with its data.
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("{program} {}", args.join(" ")));
        let mut s = self
            .services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(match (program, args) {
            ("/usr/bin/svcs", ["-a", "-H", "-o", "state,fmri"]) => out(&s
                .iter()
                .map(|(f, (state, _, _))| format!("{state:<15}{f}\n"))
                .collect::<String>()),
            ("/usr/bin/svcprop", ["-p", prop, fmri]) => match (s.get(*fmri), *prop) {
                (Some((_, on, _)), "general/enabled") => out(&format!("{on}\n")),
                (Some((_, _, Some(l))), "config/local_only") => out(&format!("{l}\n")),
                (Some(_), _) => fail(&format!(
                    "svcprop: Couldn't find property `{prop}' for instance `{fmri}'.\n"
                )),
                (None, _) => fail(&format!(
                    "svcprop: Pattern '{fmri}' doesn't match any entities\n"
                )),
            },
            ("/usr/sbin/svcadm", [verb, fmri]) if !self.refuse_svcadm.load(Ordering::SeqCst) => {
                let Some(e) = s.get_mut(*fmri) else {
                    return Ok(fail("svcadm: Pattern doesn't match any instances\n"));
                };
                let on = *verb == "enable";
                e.0 = if on { "online" } else { "disabled" }.to_string();
                e.1 = on;
                out("")
            }
            ("/usr/sbin/svcadm", _) => fail(&format!(
                "svcadm: {}: Permission denied.\n",
                args.last().unwrap()
            )),
            _ => fail(&format!("{program}: not recorded")),
        })
    }
}

/// An illumos root: svcs present, the replayed commands its system's.
fn solaris(name: &str, runner: Arc<Replay>) -> (TempRoot, Root) {
    let r = TempRoot::new(name);
    r.write("/usr/bin/svcs", "", 0o555);
    r.write("/etc/release", "  OmniOS v11 r151050\n", 0o644);
    let root = Root::with_runner(r.0.clone(), runner);
    (r, root)
}

#[test]
fn smf_sendmail_is_found_disabled_and_reverted() {
    let run = Replay::new("false");
    let (r, root) = solaris("smf", run.clone());
    let (c, det) = check(&root);
    let on = facts(&c, Mta::Sendmail, FactKind::EnabledAtBoot);
    assert_eq!(on.len(), 1, "{:?}", c.findings);
    assert_eq!(on[0].mechanism, Some(Mechanism::Smf));
    assert_eq!(
        on[0].evidence,
        format!("svcprop -p general/enabled {SENDMAIL}")
    );
    assert_eq!(on[0].detail, "true (state online)");
    assert!(!facts(&c, Mta::Sendmail, FactKind::Running).is_empty());
    assert!(!facts(&c, Mta::Sendmail, FactKind::Exposed).is_empty());
    assert_eq!(
        facts(&c, Mta::Postfix, FactKind::DisabledAtBoot)[0].evidence,
        "svcprop -p general/enabled svc:/pkgsrc/postfix:default"
    );
    assert!(
        !c.findings
            .iter()
            .any(|f| f.evidence.contains("sendmail-client")),
        "the queue runner listens on nothing"
    );

    let before = tree(&r.0);
    let p = plan::build(&root, &det, Mode::Disable).unwrap();
    assert_eq!(p.steps.len(), 1, "{:?}", p.steps);
    let round = apply::Round {
        mode: Mode::Disable,
        at: 1,
        reappeared: &[],
    };
    let done = apply::apply(&root, &p, &[], round).unwrap();
    assert_eq!(done[0].path, SENDMAIL);
    assert_eq!(
        run.svcadm_calls(),
        [format!("/usr/sbin/svcadm disable {SENDMAIL}")]
    );
    assert_eq!(run.state(SENDMAIL), ("disabled".to_string(), false));
    let j = journal::load(&root).unwrap().unwrap().1;
    assert_eq!(
        j[0].service,
        Some(journal::ServiceState {
            fmri: SENDMAIL.into(),
            enabled: true
        })
    );
    // Idempotent.
    let (c, det) = check(&root);
    assert!(facts(&c, Mta::Sendmail, FactKind::EnabledAtBoot).is_empty());
    assert!(
        plan::build(&root, &det, Mode::Disable)
            .unwrap()
            .steps
            .is_empty()
    );

    let s = revert::revert(&root).unwrap();
    assert_eq!(s.undone, [format!("svcadm disable {SENDMAIL}")]);
    assert_eq!(run.state(SENDMAIL), ("online".to_string(), true));
    assert_eq!(
        run.svcadm_calls().last().unwrap(),
        &format!("/usr/sbin/svcadm enable {SENDMAIL}")
    );
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn a_failed_svcadm_after_the_journal_line_is_reverted() {
    // What a crash between the journal line and the change leaves: the line, no change.
    let run = Replay::new("false");
    run.refuse_svcadm.store(true, Ordering::SeqCst);
    let (r, root) = solaris("smf-refused", run.clone());
    let before = tree(&r.0);
    let (_, det) = check(&root);
    let p = plan::build(&root, &det, Mode::Disable).unwrap();
    let round = apply::Round {
        mode: Mode::Disable,
        at: 1,
        reappeared: &[],
    };
    let err = apply::apply(&root, &p, &[], round).unwrap_err();
    assert!(err.to_string().contains("Permission denied"), "{err}");
    assert_eq!(journal::load(&root).unwrap().unwrap().1.len(), 1);
    assert_eq!(run.state(SENDMAIL), ("online".to_string(), true));
    // Revert enables what was enabled: with svcadm still refusing it says so and keeps the
    // journal; nothing was changed either way.
    assert!(revert::revert(&root).is_err());
    assert!(journal::load(&root).unwrap().is_some());
    assert_eq!(run.state(SENDMAIL), ("online".to_string(), true));
    // Once svcadm works, revert finishes: enabling an enabled instance changes nothing.
    run.refuse_svcadm.store(false, Ordering::SeqCst);
    revert::revert(&root).unwrap();
    assert_eq!(
        run.svcadm_calls().last().unwrap(),
        &format!("/usr/sbin/svcadm enable {SENDMAIL}")
    );
    assert_eq!(run.state(SENDMAIL), ("online".to_string(), true));
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn local_only_sendmail_stays_in_loopback_mode() {
    let run = Replay::new("true");
    let (_r, root) = solaris("smf-local", run.clone());
    let (c, det) = check(&root);
    assert_eq!(
        facts(&c, Mta::Sendmail, FactKind::LoopbackOnly)[0].evidence,
        format!("svcprop -p config/local_only {SENDMAIL}")
    );
    assert!(facts(&c, Mta::Sendmail, FactKind::Exposed).is_empty());
    let p = plan::build(&root, &det, Mode::LoopbackOnly).unwrap();
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    let p = plan::build(&root, &det, Mode::Disable).unwrap();
    assert_eq!(p.steps.len(), 1);
}

#[test]
fn odd_svcprop_output_is_a_warning_and_no_target() {
    let run = Replay::new("maybe");
    let (_r, root) = solaris("smf-odd", run);
    let (c, det) = check(&root);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("config/local_only") && w.contains(SENDMAIL)),
        "{:?}",
        c.warnings
    );
    assert!(det.targets.is_empty());
}

#[test]
fn an_image_runs_no_commands() {
    // Without a runner, a root that is not `/` is an image: its commands would act on the host.
    let r = TempRoot::new("smf-image");
    r.write("/usr/bin/svcs", "", 0o555);
    let (c, _) = check(&Root::new(r.0.clone()));
    assert!(
        !c.findings
            .iter()
            .any(|f| f.mechanism == Some(Mechanism::Smf))
    );
}
