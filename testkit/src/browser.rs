//! Debian's headless Chromium, pointed at a page served on loopback: the DOM after scripts and
//! layout (`--dump-dom`), or a PNG screenshot.
//!
//! Every run gets a fresh profile directory and has background networking, component updates,
//! sync and QUIC switched off, and the URL must name a loopback host, so a test never sends a
//! packet off the machine. Pages authenticate with HTTP Basic in the URL
//! (`http://admin:TOKEN@127.0.0.1:PORT/…`), which the registry's pages accept.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `chromium` package installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Longest a single Chromium run may take before it is killed (seconds).
const TIMEOUT_SECS: u32 = 90;

/// Panics unless `url` is `http://` or `https://` to a loopback host.
fn check_loopback(url: &str) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or_else(|| panic!("not an http(s) URL: {url}"));
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    assert!(
        loopback,
        "the browser only visits loopback hosts, not {host:?}"
    );
}

/// Chromium with the flags every run uses and a fresh profile in `profile`.
fn chromium(profile: &Path) -> Command {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: install Debian's chromium package (scripts/install-test-deps.sh)"
    );
    let mut c = Command::new("timeout");
    c.arg(TIMEOUT_SECS.to_string()).arg(CHROMIUM).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The DOM of `url` after it loaded, serialised as HTML.
pub fn dump_dom(url: &str) -> String {
    check_loopback(url);
    let profile = tempfile::tempdir().expect("a temporary profile directory");
    let out = chromium(profile.path())
        .args(["--window-size=1280,1000", "--dump-dom", url])
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium --dump-dom {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Saves a PNG of `url` in a `width`×`height` window to `png`; returns its path.
pub fn screenshot(url: &str, png: &Path, width: u32, height: u32) -> PathBuf {
    check_loopback(url);
    let profile = tempfile::tempdir().expect("a temporary profile directory");
    let png = std::path::absolute(png).expect("an absolute path for the screenshot");
    let out = chromium(profile.path())
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success() && png.exists(),
        "chromium --screenshot {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    png
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_urls_are_visited() {
        for ok in [
            "http://127.0.0.1:8080/x",
            "http://admin:t@127.0.0.5:1/",
            "http://[::1]:80/",
            "http://localhost/",
        ] {
            super::check_loopback(ok);
        }
        for bad in [
            "http://192.0.2.1/",
            "http://example.org/",
            "http://127.0.0.1.example.org/",
        ] {
            assert!(
                std::panic::catch_unwind(|| super::check_loopback(bad)).is_err(),
                "{bad}"
            );
        }
    }
}
