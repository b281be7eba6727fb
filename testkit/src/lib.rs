//! relayguard-testkit: the real servers relayguard's tests run against, shared by every package's
//! integration tests (a dev-dependency, never published).
//!
//! - [`postfix`]: real Debian Postfix instances on their own `127.77.X.Y` loopback aliases, in the
//!   personalities the scanner is tested against, and a Maildir sink for what notify sends.
//! - [`dnat`]: Postfix instances behind an nftables DNAT in network namespaces of their own.
//! - [`nsd`]: a real authoritative DNS server (nsd) on a loopback port serving the test zones in
//!   `testkit/fixtures/dns/zones/`.
//! - [`postgrey`]: a real postgrey greylisting policy daemon on a loopback port.
//! - [`report`]: readers of `relayguard sweep --format json` documents.
//! - [`db`]: fresh registry databases, SQLite or in a real PostgreSQL cluster started on first use.
//! - [`browser`]: Debian's headless Chromium loading a page served on loopback.
//!
//! Everything here needs the Debian packages that `scripts/install-test-deps.sh` installs and, for
//! Postfix, root; a missing one fails loudly with the package to install, never skips.

pub mod browser;
pub mod db;
pub mod dnat;
pub mod nsd;
pub mod postfix;
pub mod postgrey;
pub mod report;

pub use postfix::{DOMAIN, Personality, Postfix, scanner_source_addr};

use std::sync::Arc;
use std::time::Duration;

use relayguard_core::rules::RuleSet;
use relayguard_scanner::AuditConfig;
use relayguard_scanner::smtp::{SessionConfig, TlsSetup};

/// The audit settings the scanner's own tests start from (change fields with `..`): quick
/// timeouts for loopback servers, built-in rules, no DNS checks, three sessions per host.
pub fn audit_config() -> AuditConfig {
    AuditConfig {
        session: SessionConfig {
            ehlo_name: "scanner.test".into(),
            connect_timeout: Duration::from_secs(2),
            source: None,
            tls: TlsSetup::new(Vec::new()).expect("an empty set of extra roots"),
        },
        external_domain: "ext.example".into(),
        local_domains: Vec::new(),
        probe_sender: "probe".into(),
        probe_recipient: "victim".into(),
        command_timeout: Duration::from_secs(2),
        host_deadline: Duration::from_secs(20),
        sessions_per_host: 3,
        tests_per_session: 8,
        greylist_wait: Duration::ZERO,
        all_vectors: false,
        rules: Arc::new(RuleSet::builtin().expect("the built-in rules load")),
        dns: None,
    }
}
pub use postgrey::Postgrey;

/// A registry database private to this test process, so sweeps run by tests never touch the
/// user's own registry (`RELAYGUARD_DATABASE` for every CLI invocation).
pub fn test_database() -> String {
    let dir = std::env::temp_dir().join(format!("relayguard-test-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the test database directory");
    format!("sqlite://{}/registry.db", dir.display())
}
