//! The versioned JSON report a host agent sends to the registry (owned by the agent work).
