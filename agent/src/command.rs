//! Running system commands (Solaris SMF's `svcs`, `svcprop`, `svcadm`) behind a trait, so
//! that tests replay recorded output instead of needing the system.

use std::fmt::Debug;
use std::process::Command;

use crate::error::{AgentError, Result};

/// What a command printed and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs a program with arguments and collects its output.
pub trait CommandRunner: Debug + Send + Sync {
    /// Runs `program` with `args`; `Err` only when it could not be run at all.
    fn run(&self, program: &str, args: &[&str]) -> Result<CommandOutput>;
}

/// The real system's commands.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, program: &str, args: &[&str]) -> Result<CommandOutput> {
        let o = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| AgentError::io(std::path::Path::new(program), e))?;
        Ok(CommandOutput {
            success: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        })
    }
}
