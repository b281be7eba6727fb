//! The filesystem root the agent inspects and changes.
//!
//! Paths inside the agent are always written as they appear on the inspected system
//! (`/etc/rc.conf`); [`Root`] maps them to host paths. Absolute symlink targets are resolved
//! inside the root too, so a link `/var/service/x -> /etc/sv/x` in an image never escapes to the
//! host's own `/etc`.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::command::{CommandRunner, SystemRunner};
use crate::error::{AgentError, Result};

/// Upper bound on files we read whole: configuration files are small, and a huge or endless
/// file (e.g. a device) must not exhaust memory.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// A directory treated as `/`, and the commands of the system it belongs to.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
    runner: Option<Arc<dyn CommandRunner>>,
}

impl Root {
    /// Creates a root at `base` (`/` for the live system).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root {
            base: base.into(),
            runner: None,
        }
    }

    /// A root whose system commands are `runner` (tests replay recorded output with it).
    pub fn with_runner(base: impl Into<PathBuf>, runner: Arc<dyn CommandRunner>) -> Self {
        Root {
            base: base.into(),
            runner: Some(runner),
        }
    }

    /// The system's commands: the given runner, or the real ones on the live root. `None` for
    /// an image: its commands would act on the host, not on it.
    pub fn commands(&self) -> Option<&dyn CommandRunner> {
        match &self.runner {
            Some(r) => Some(r.as_ref()),
            None if self.is_live() => Some(&SystemRunner),
            None => None,
        }
    }

    /// The host directory acting as `/`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Whether this is the live system's own root.
    pub fn is_live(&self) -> bool {
        self.base == Path::new("/")
    }

    /// Maps an inside path (`/etc/x`) to the host path.
    pub fn host(&self, inside: &str) -> PathBuf {
        self.base.join(inside.trim_start_matches('/'))
    }

    /// Metadata without following a final symlink; `None` when absent.
    pub fn lstat(&self, inside: &str) -> Result<Option<fs::Metadata>> {
        let p = self.host(inside);
        match fs::symlink_metadata(&p) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotADirectory => Ok(None),
            Err(e) => Err(AgentError::io(p, e)),
        }
    }

    /// Whether anything (file, dir, link — even dangling) exists at `inside`.
    pub fn exists(&self, inside: &str) -> bool {
        matches!(self.lstat(inside), Ok(Some(_)))
    }

    /// Reads a text file; `Ok(None)` when absent. Non-UTF-8 content is an error naming the file,
    /// because every format we parse is text and guessing at binary junk could mislead.
    pub fn read_text(&self, inside: &str) -> Result<Option<String>> {
        let Some(bytes) = self.read_bytes(inside)? else {
            return Ok(None);
        };
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(AgentError::parse(
                inside,
                0,
                format!(
                    "not a text file (invalid UTF-8 at byte {})",
                    e.utf8_error().valid_up_to()
                ),
            )),
        }
    }

    /// Reads a file's bytes (following symlinks inside the root); `Ok(None)` when absent.
    pub fn read_bytes(&self, inside: &str) -> Result<Option<Vec<u8>>> {
        let resolved = self.resolve(inside);
        let p = self.host(&resolved);
        let meta = match fs::metadata(&p) {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(None);
            }
            Err(e) => return Err(AgentError::io(p, e)),
        };
        if !meta.is_file() {
            return Err(AgentError::parse(inside, 0, "not a regular file"));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(AgentError::parse(
                inside,
                0,
                format!("file too large ({} bytes)", meta.len()),
            ));
        }
        fs::read(&p).map(Some).map_err(|e| AgentError::io(p, e))
    }

    /// Reads a symlink's target verbatim; `None` if not a symlink or absent.
    pub fn read_link(&self, inside: &str) -> Option<String> {
        fs::read_link(self.host(inside))
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    }

    /// Lists directory entry names sorted; empty when the directory is absent or unreadable
    /// (absence is the normal case: most roots have only one init system).
    pub fn list_dir(&self, inside: &str) -> Vec<String> {
        let resolved = self.resolve(inside);
        let Ok(rd) = fs::read_dir(self.host(&resolved)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = rd
            .filter_map(std::result::Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Whether `inside` (following links inside the root) is a directory.
    pub fn is_dir(&self, inside: &str) -> bool {
        self.host(&self.resolve(inside)).is_dir()
    }

    /// Follows symlinks component by component, interpreting absolute targets inside the root.
    /// Returns the resolved inside path (best effort: stops at the first missing component or
    /// after 40 hops, like the kernel's ELOOP limit).
    pub fn resolve(&self, inside: &str) -> String {
        let mut hops = 0;
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = components(inside).into_iter().rev().collect();
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(c);
            let cur = format!("/{}", done.join("/"));
            if let Some(target) = self.read_link(&cur) {
                hops += 1;
                if hops > 40 {
                    return cur;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for t in components(&target).into_iter().rev() {
                    todo.push(t);
                }
            }
        }
        format!("/{}", done.join("/"))
    }
}

fn components(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// Joins an inside directory and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_absolute_links_inside_root() {
        let tmp = std::env::temp_dir().join(format!("rg-root-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.join("etc/sv/qmail")).unwrap();
        fs::create_dir_all(tmp.join("var/service")).unwrap();
        std::os::unix::fs::symlink("/etc/sv/qmail", tmp.join("var/service/qmail")).unwrap();
        let r = Root::new(&tmp);
        assert_eq!(r.resolve("/var/service/qmail"), "/etc/sv/qmail");
        assert_eq!(r.resolve("/var/service/qmail/down"), "/etc/sv/qmail/down");
        assert!(r.is_dir("/var/service/qmail"));
        fs::remove_dir_all(&tmp).unwrap();
    }
}
