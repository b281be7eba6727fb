//! Solaris and illumos SMF: `svc:/network/smtp:sendmail` and other MTA service instances.
//!
//! SMF keeps its state in a repository database, not in files, so this detector asks the
//! system's own commands through the root's [`crate::command::CommandRunner`]: it runs only on
//! the live root (or with a runner the tests give), never on an image.
//!
//! - `svcs -a -H -o state,fmri` lists the instances and their state (`online` runs now);
//! - `svcprop -p general/enabled FMRI` says whether the instance starts at boot (a temporary
//!   `svcadm disable -t` leaves it `true`);
//! - `svcprop -p config/local_only FMRI` is sendmail's knob: `true` binds loopback only.
//!
//! `harden` runs `svcadm disable FMRI` (persistent), journaled before it runs; `revert` runs
//! `svcadm enable FMRI` for every instance that was enabled. `svc:/network/sendmail-client`
//! is sendmail's queue runner for locally submitted mail: it listens on nothing and is left
//! alone, as dma and nullmailer are.

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::{Action, Detection};
use crate::command::CommandRunner;
use crate::error::{AgentError, Result};
use crate::mta::classify_service_name;
use crate::root::Root;

/// SMF's service listing command; its presence marks a root as using SMF.
pub const SVCS: &str = "/usr/bin/svcs";
/// SMF's property reader.
pub const SVCPROP: &str = "/usr/bin/svcprop";
/// SMF's administration command.
pub const SVCADM: &str = "/usr/sbin/svcadm";

/// The MTA an instance runs, from its FMRI: `svc:/network/smtp:INSTANCE` is named by the
/// instance, any other service by its last path element (`svc:/pkgsrc/postfix:default`).
pub fn classify_fmri(fmri: &str) -> Option<Mta> {
    let rest = fmri.strip_prefix("svc:/")?;
    let (service, instance) = rest.split_once(':').unwrap_or((rest, ""));
    let name = service.rsplit('/').next().unwrap_or(service);
    if name == "sendmail-client" {
        return None;
    }
    if service == "network/smtp" {
        return classify_service_name(instance);
    }
    classify_service_name(name)
}

/// `svcprop -p PROP FMRI` as a boolean; `Ok(None)` when the property does not exist.
fn bool_prop(run: &dyn CommandRunner, fmri: &str, prop: &str) -> Result<Option<bool>> {
    let o = run.run(SVCPROP, &["-p", prop, fmri])?;
    if !o.success {
        return Ok(None);
    }
    match o.stdout.trim() {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        other => Err(AgentError::Refused(format!(
            "svcprop -p {prop} {fmri}: unexpected output {other:?}"
        ))),
    }
}

/// Whether `fmri` is enabled at boot (`general/enabled`).
pub fn enabled(run: &dyn CommandRunner, fmri: &str) -> Result<bool> {
    bool_prop(run, fmri, "general/enabled")?.ok_or_else(|| {
        AgentError::Refused(format!(
            "svcprop -p general/enabled {fmri}: no such property"
        ))
    })
}

/// `svcadm enable|disable FMRI` (persistent); an error names the command and what it said.
pub fn set_enabled(run: &dyn CommandRunner, fmri: &str, on: bool) -> Result<()> {
    let verb = if on { "enable" } else { "disable" };
    let o = run.run(SVCADM, &[verb, fmri])?;
    if o.success {
        Ok(())
    } else {
        Err(AgentError::Refused(format!(
            "svcadm {verb} {fmri} failed: {}",
            o.stderr.trim()
        )))
    }
}

/// Runs the SMF detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    let Some(run) = root.commands() else {
        return d;
    };
    if !root.exists(SVCS) {
        return d;
    }
    let list = match run.run(SVCS, &["-a", "-H", "-o", "state,fmri"]) {
        Ok(o) if o.success => o.stdout,
        Ok(o) => {
            d.warn(format!("svcs -a failed: {}", o.stderr.trim()));
            return d;
        }
        Err(e) => {
            d.warn(format!("svcs -a: {e}"));
            return d;
        }
    };
    for line in list.lines() {
        let mut cols = line.split_whitespace();
        let (Some(state), Some(fmri), None) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        let Some(mta) = classify_fmri(fmri) else {
            continue;
        };
        if let Err(e) = instance(&mut d, run, mta, state, fmri) {
            d.warn(format!("{e} (nothing derived for {fmri})"));
        }
    }
    d
}

/// The facts and target of one MTA instance.
fn instance(
    d: &mut Detection,
    run: &dyn CommandRunner,
    mta: Mta,
    state: &str,
    fmri: &str,
) -> Result<()> {
    let on = enabled(run, fmri)?;
    let local_only = if mta == Mta::Sendmail {
        bool_prop(run, fmri, "config/local_only")?
    } else {
        None
    };
    let evidence = format!("svcprop -p general/enabled {fmri}");
    if on {
        d.fact(
            mta,
            FactKind::EnabledAtBoot,
            Some(Mechanism::Smf),
            &evidence,
            format!("true (state {state})"),
        );
        d.disable(
            mta,
            Mechanism::Smf,
            Action::SmfDisable {
                fmri: fmri.to_string(),
            },
        );
    } else {
        d.fact(
            mta,
            FactKind::DisabledAtBoot,
            Some(Mechanism::Smf),
            &evidence,
            format!("false (state {state})"),
        );
    }
    if state == "online" {
        d.fact(
            mta,
            FactKind::Running,
            Some(Mechanism::Smf),
            format!("svcs {fmri}"),
            "online",
        );
    }
    if let Some(local) = local_only {
        let (fact, detail) = if local {
            (
                FactKind::LoopbackOnly,
                "true: sendmail listens on loopback only",
            )
        } else {
            (
                FactKind::Exposed,
                "false: sendmail listens on every interface",
            )
        };
        d.fact(
            mta,
            fact,
            Some(Mechanism::Smf),
            format!("svcprop -p config/local_only {fmri}"),
            detail,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmris() {
        assert_eq!(
            classify_fmri("svc:/network/smtp:sendmail"),
            Some(Mta::Sendmail)
        );
        assert_eq!(
            classify_fmri("svc:/network/smtp:postfix"),
            Some(Mta::Postfix)
        );
        assert_eq!(
            classify_fmri("svc:/pkgsrc/postfix:default"),
            Some(Mta::Postfix)
        );
        assert_eq!(classify_fmri("svc:/network/sendmail-client:default"), None);
        assert_eq!(classify_fmri("svc:/network/ssh:default"), None);
        assert_eq!(classify_fmri("lrc:/etc/rc2_d/S88sendmail"), None);
    }
}
