//! `harden`: turn detected enablements into a plan, journal every change, apply it.
//!
//! - [`plan`] decides what to change (pure: reads files, writes nothing);
//! - [`journal`] records the state of every path BEFORE it is touched;
//! - [`apply`] executes the plan step by step, each change atomic;
//! - [`reappear`] tells which MTAs came back after an earlier run switched them off.

pub mod apply;
pub mod journal;
pub mod plan;
pub mod reappear;
pub mod stop;

/// What `harden` aims for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stop every MTA from starting at boot.
    Disable,
    /// Keep local mail working: restrict listeners to loopback where the MTA has a knob for it,
    /// disable the others.
    LoopbackOnly,
}

/// The host's role, which decides whether hardening is allowed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Registered (or declared) as not being a mail server: hardening allowed.
    NonMail,
    /// A mail server: hardening refused.
    Mail,
}

impl Mode {
    /// The name used on the command line and in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::LoopbackOnly => "loopback-only",
        }
    }
}
