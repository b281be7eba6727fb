//! Queue health of a mail server: how many messages wait in which queue, how many are bounces
//! (null sender), and how old the oldest is. A bounce burst that fills the queues stops a mail
//! gateway's mail long before anything else notices.
//!
//! One module per MTA, each reading what that MTA's own listing command prints: Postfix
//! `postqueue -j`, Exim `exim -bpc` and `exim -bp`, OpenSMTPD `smtpctl show queue`, Sendmail
//! `mailq` (`sendmail -bp`). The commands run through the root's
//! [`crate::command::CommandRunner`], on the live root only. Output that does not read as
//! expected is an error naming the command and line, never a zero.

pub mod exim;
pub mod opensmtpd;
pub mod postfix;
pub mod sendmail;

use relayguard_core::agent_report::QueueHealth;

pub use postfix::{POSTQUEUE, parse_postqueue_json};

use crate::command::CommandRunner;
use crate::error::{AgentError, Result};
use crate::root::Root;

/// The queue health of the root's mail server, `Ok(None)` when it has none of the four MTAs'
/// listing commands or the root has no commands (an image). With several installed, the first
/// of Postfix, Exim, OpenSMTPD and Sendmail is read: each of the others installs a `sendmail`
/// and `mailq` of its own, so only their own programs tell them apart.
pub fn gather(root: &Root, now: u64) -> Result<Option<QueueHealth>> {
    let Some(run) = root.commands() else {
        return Ok(None);
    };
    let first = |paths: &[&'static str]| paths.iter().copied().find(|p| root.exists(p));
    if root.exists(POSTQUEUE) {
        return postfix::gather(run, now).map(Some);
    }
    if let Some(exim) = first(exim::PROGRAMS) {
        return exim::gather(run, exim).map(Some);
    }
    if let Some(smtpctl) = first(opensmtpd::PROGRAMS) {
        return opensmtpd::gather(run, smtpctl, now).map(Some);
    }
    if let Some(sendmail) = first(sendmail::PROGRAMS) {
        return sendmail::gather(run, sendmail, now).map(Some);
    }
    Ok(None)
}

/// Runs a listing command and returns what it printed; a failure is an error with its stderr.
fn run_listing(run: &dyn CommandRunner, program: &str, args: &[&str]) -> Result<String> {
    let o = run.run(program, args)?;
    if !o.success {
        return Err(AgentError::Refused(format!(
            "{program} {} failed: {}",
            args.join(" "),
            o.stderr.trim()
        )));
    }
    Ok(o.stdout)
}

/// A listing line the parser does not understand.
fn unreadable(source: &str, lineno: usize, line: &str, why: &str) -> AgentError {
    AgentError::Refused(format!(
        "{source} line {lineno}: {why}: {:?}",
        line.chars().take(200).collect::<String>()
    ))
}
