//! Shared support code for relayguard's integration tests (`mod support;`).

// Each integration-test binary uses only part of the support code.
#![allow(dead_code, unused_imports)]

pub mod postfix;

pub use postfix::{DOMAIN, Personality, Postfix, scanner_source_addr};
