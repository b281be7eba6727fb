//! Reading `relayguard sweep --format json` documents in tests.

use std::collections::BTreeSet;
use std::fmt::Display;

use serde_json::Value;

/// The host entry for `addr`; panics with the whole document when it is missing.
pub fn host(doc: &Value, addr: impl Display) -> &Value {
    let addr = addr.to_string();
    doc["hosts"]
        .as_array()
        .expect("a hosts array")
        .iter()
        .find(|h| h["address"] == addr.as_str())
        .unwrap_or_else(|| panic!("{addr} missing from {doc:#}"))
}

/// The finding kinds of a host entry.
pub fn kinds(host: &Value) -> BTreeSet<String> {
    host["findings"]
        .as_array()
        .expect("a findings array")
        .iter()
        .map(|f| f["kind"].as_str().expect("a kind").to_string())
        .collect()
}

/// The tests of one kind (`relay`, `backscatter`, `vrfy`, `expn`) of a host entry.
pub fn tests_of<'a>(host: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    host["tests"]
        .as_array()
        .expect("a tests array")
        .iter()
        .filter(move |t| t["kind"] == kind)
}
