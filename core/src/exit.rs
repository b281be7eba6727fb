//! The exit codes of every relayguard binary (`relayguard`, `relayguard-registry`,
//! `relayguard-agent`): one scheme, so scripts and systemd units read them the same way.
//! Documented in docs/cli.md and ARCHITECTURE.md.

/// Done; nothing to act on.
pub const OK: u8 = 0;
/// Done, and there is something to act on: a sweep with findings, an agent `check` that found an
/// MTA enabled at boot, running or listening.
pub const ATTENTION: u8 = 1;
/// An error, or bad arguments (clap exits with 2 on a usage error too): the message says what.
pub const ERROR: u8 = 2;
/// Refused on purpose: the agent's `harden` on a host whose role is not non-mail.
pub const REFUSED: u8 = 4;
/// Another run holds the lock (the agent's `harden`/`revert`); nothing was changed.
pub const BUSY: u8 = 5;
/// Interrupted with Ctrl-C; what was gathered so far was written and marked so.
pub const INTERRUPTED: u8 = 130;
