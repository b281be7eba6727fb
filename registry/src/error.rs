//! The registry's error type: every failure is either the caller's fault (a clear message that
//! maps to a 4xx) or ours (a database problem that maps to a 500 and is logged).

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is invalid (bad address, e-mail, role, CIDR, CSV row, report…).
    #[error("{0}")]
    Invalid(String),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller is known but not allowed to do this (e.g. an agent acting for another host).
    #[error("{0}")]
    Forbidden(String),
    /// The write would break a uniqueness rule (duplicate address, CIDR, report id).
    #[error("{0}")]
    Conflict(String),
    /// The database failed (connection, I/O, a bug in our SQL).
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A file or socket operation failed (reading a token file or a certificate, writing an
    /// .eml file, binding the listening port).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `reading /etc/relayguard/tokens`.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A message could not be handed to the SMTP server (the text carries the whole cause).
    #[error("SMTP delivery failed: {0}")]
    Delivery(String),
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// The message of `e` followed by those of its sources, `: `-separated (what `{:#}` shows for
/// an error chain), so nothing of a library's explanation is lost when it becomes text.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        // A unique violation that slipped past our explicit checks (a race between two writers)
        // is still the caller's conflict, not a server failure.
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return Error::Conflict(format!("duplicate key: {}", db.message()));
        }
        Error::Database(e)
    }
}

impl From<relayguard_core::registration::InvalidRole> for Error {
    fn from(e: relayguard_core::registration::InvalidRole) -> Self {
        Error::Invalid(e.to_string())
    }
}

impl From<relayguard_core::registration::InvalidHostStatus> for Error {
    fn from(e: relayguard_core::registration::InvalidHostStatus) -> Self {
        Error::Invalid(e.to_string())
    }
}

/// Shorthand for results of registry operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
