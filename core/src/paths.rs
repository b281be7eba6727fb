//! Where relayguard keeps its files.

use std::path::PathBuf;

/// relayguard's data directory: `$XDG_DATA_HOME/relayguard`, else
/// `$HOME/.local/share/relayguard`, else `./.relayguard` (e.g. a service without a home).
pub fn data_dir() -> PathBuf {
    let non_empty = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        PathBuf::from(xdg).join("relayguard")
    } else if let Some(home) = non_empty("HOME") {
        PathBuf::from(home).join(".local/share/relayguard")
    } else {
        PathBuf::from(".relayguard")
    }
}
