//! `harden`: turn detected enablements into a plan, journal every change, apply it.
//!
//! - [`plan`] decides what to change (pure: reads files, writes nothing);
//! - [`journal`] records the state of every path BEFORE it is touched;
//! - [`apply`] executes the plan step by step, each change atomic.

pub mod apply;
pub mod journal;
pub mod plan;
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
