//! Shared helpers for the agent's integration tests: temporary roots, the real-package
//! fixture, running the binary, and whole-tree snapshots for byte-identity checks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use relayguard_core::agent_report::{CheckResult, FactKind, Mta, MtaFact};

/// Path of the agent binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_relayguard-agent");

/// A temporary directory removed on drop.
pub struct TempRoot(pub PathBuf);

impl TempRoot {
    /// Creates an empty root named after the test.
    pub fn new(name: &str) -> TempRoot {
        let p = std::env::temp_dir()
            .join("relayguard-agent-tests")
            .join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempRoot(p)
    }

    /// Host path of an inside path.
    pub fn p(&self, inside: &str) -> PathBuf {
        self.0.join(inside.trim_start_matches('/'))
    }

    /// Writes a file (creating parents) with a mode.
    pub fn write(&self, inside: &str, content: &str, mode: u32) {
        let p = self.p(inside);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Creates a symlink (creating parents).
    pub fn link(&self, inside: &str, target: &str) {
        let p = self.p(inside);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &p).unwrap();
    }

    /// Reads a file as text.
    pub fn read(&self, inside: &str) -> String {
        fs::read_to_string(self.p(inside)).unwrap()
    }

    /// Root as a string argument.
    pub fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Where downloaded .debs are cached: $RELAYGUARD_DEB_CACHE, else `<target dir>/debs`
/// (derived from the test binary's location, so `CARGO_TARGET_DIR` is honoured).
pub fn deb_cache() -> PathBuf {
    if let Ok(c) = std::env::var("RELAYGUARD_DEB_CACHE") {
        return PathBuf::from(c);
    }
    Path::new(BIN)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("debs")
}

/// Builds a Debian root from real package files (see tests/fixtures/build-debian-root.sh).
/// Panics with the script's explanation when packages cannot be obtained: never passes silently.
pub fn debian_root(name: &str) -> TempRoot {
    debian_root_with(name, &[])
}

/// [`debian_root`] plus further real packages (downloaded and enabled alongside).
pub fn debian_root_with(name: &str, extra: &[&str]) -> TempRoot {
    let r = TempRoot::new(name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/build-debian-root.sh");
    let out = Command::new("sh")
        .env("RELAYGUARD_EXTRA_DEBS", extra.join(" "))
        .arg(&script)
        .arg(&r.0)
        .arg(deb_cache())
        .output()
        .expect("run build-debian-root.sh");
    assert!(
        out.status.success(),
        "building the real-package fixture failed (needs dpkg-deb, init-system-helpers and apt-get download access, or .debs in {}):\n{}",
        deb_cache().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    r
}

/// Installs (or upgrades) real packages into an existing root: unpacked over it, recorded in
/// its dpkg status, and enabled as their postinst enables them (build-debian-root.sh with
/// `RELAYGUARD_ONLY_DEBS`).
pub fn install_debs(r: &TempRoot, pkgs: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/build-debian-root.sh");
    let out = Command::new("sh")
        .env("RELAYGUARD_ONLY_DEBS", pkgs.join(" "))
        .arg(&script)
        .arg(&r.0)
        .arg(deb_cache())
        .output()
        .expect("run build-debian-root.sh");
    assert!(
        out.status.success(),
        "installing {pkgs:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Version field of a cached real .deb (what dpkg records when it installs it).
pub fn deb_version(pkg: &str) -> String {
    let deb = fs::read_dir(deb_cache())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pkg}_")))
        })
        .unwrap_or_else(|| panic!("no cached .deb for {pkg}"));
    let o = Command::new("dpkg-deb")
        .arg("-f")
        .arg(&deb)
        .arg("Version")
        .output()
        .expect("dpkg-deb");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Runs the agent with arguments and extra environment.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run relayguard-agent")
}

/// Runs the agent.
pub fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `check --format json` and parses the result.
pub fn check(root: &TempRoot) -> CheckResult {
    let o = run(&["check", "--root", &root.arg(), "--format", "json"]);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "check failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("check JSON")
}

/// Findings of one MTA and fact.
pub fn facts(r: &CheckResult, mta: Mta, fact: FactKind) -> Vec<MtaFact> {
    r.findings
        .iter()
        .filter(|f| f.mta == mta && f.fact == fact)
        .cloned()
        .collect()
}

/// Everything `revert` must restore about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// 'f', 'd', 'l'.
    pub kind: char,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link target.
    pub link: Option<String>,
    /// File content.
    pub content: Option<Vec<u8>>,
}

/// Snapshots every path under `root` (content, mode, owner, link target).
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let ft = m.file_type();
            let node = Node {
                kind: if ft.is_symlink() {
                    'l'
                } else if ft.is_dir() {
                    'd'
                } else {
                    'f'
                },
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                link: ft
                    .is_symlink()
                    .then(|| fs::read_link(&p).unwrap().display().to_string()),
                content: ft.is_file().then(|| fs::read(&p).unwrap()),
            };
            out.insert(rel, node);
            if ft.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two snapshots are identical, listing the differing paths.
pub fn assert_same_tree(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("missing after: {k}")),
            Some(w) if w != v => diffs.push(format!(
                "changed: {k} ({}/{:o}/{:?} vs {}/{:o}/{:?})",
                v.kind, v.mode, v.link, w.kind, w.mode, w.link
            )),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("extra after: {k}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "tree differs ({} paths):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// `systemctl --root=ROOT is-enabled UNIT` (the real tool).
pub fn systemctl_is_enabled(root: &TempRoot, unit: &str) -> String {
    let o = Command::new("systemctl")
        .arg(format!("--root={}", root.arg()))
        .args(["is-enabled", unit])
        .output()
        .expect("systemctl not found: install the systemd package");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}
