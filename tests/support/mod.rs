//! Shared support code for relayguard's integration tests (`mod support;`).

// Each integration-test binary uses only part of the support code.
#![allow(dead_code, unused_imports)]

pub mod postfix;
pub mod report;

pub use postfix::{DOMAIN, Personality, Postfix, scanner_source_addr};

/// A registry database private to this test process, so sweeps run by tests never touch the
/// user's own registry (`RELAYGUARD_DATABASE` for every CLI invocation).
pub fn test_database() -> String {
    let dir = std::env::temp_dir().join(format!("relayguard-test-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the test database directory");
    format!("sqlite://{}/registry.db", dir.display())
}
