//! The SMTP conversation engine: reply parsing, connections with deadlines and transcripts,
//! session opening with EHLO/HELO and TLS.

pub mod connection;
pub mod hostname;
pub mod reply;
pub mod session;
pub mod tls;

pub use connection::{Connection, SessionError, Timing};
pub use reply::{EnhancedCode, Reply};
pub use session::{Failed, Greeting, OpenFailure, SessionConfig, SessionTarget, TlsMode};
pub use tls::{Handover, TlsSetup};
