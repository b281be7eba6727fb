//! What relayguard asks a server and how it reads the answers: relay vectors, own names,
//! verdicts, and the findings drawn from them.

pub mod findings;
pub mod names;
pub mod relay;
pub mod verdict;
