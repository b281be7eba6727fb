//! Live facts of the running host: MTA processes and SMTP listeners.
//!
//! Linux reads `/proc`; other systems report the facts as skipped rather than guess.
//! Facts are only gathered when the agent inspects `/` (not an image under `--root`).

pub mod proc;
pub mod sockets;

use relayguard_core::agent_report::LiveFacts;

use crate::detect::Detection;

/// Adds process and socket findings to `d` (Linux, live root only) and says what was done.
pub fn gather(d: &mut Detection) -> LiveFacts {
    #[cfg(target_os = "linux")]
    {
        let procs = proc::scan(std::path::Path::new("/proc"));
        proc::report(&procs, d);
        sockets::report(std::path::Path::new("/proc"), &procs, d);
        LiveFacts::Checked
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = d;
        LiveFacts::Skipped {
            reason: "process and socket facts are only implemented for Linux /proc".into(),
        }
    }
}
