//! Errors of the agent. Each variant names the file involved so an operator can act on it.

use std::path::PathBuf;

/// Everything that can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// An I/O operation on a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file (host path, i.e. including the root).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configuration file could not be interpreted safely.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file, as seen inside the root (e.g. `/etc/rc.conf`).
        path: String,
        /// 1-based line number (0 when the whole file is at fault).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The journal is unreadable or inconsistent.
    #[error("journal {path}: {message}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The operation was refused (wrong role, conflicting files, ...).
    #[error("{0}")]
    Refused(String),
    /// Another `harden` or `revert` holds the root's lock.
    #[error("busy: {0}")]
    Busy(String),
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The registry could not be reached or refused a request.
    #[error("registry: {0}")]
    Registry(String),
}

impl AgentError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a parse error for `path` at 1-based `line`.
    pub fn parse(path: &str, line: usize, message: impl Into<String>) -> Self {
        AgentError::Parse {
            path: path.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// Result alias used throughout the agent.
pub type Result<T> = std::result::Result<T, AgentError>;
