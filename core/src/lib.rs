//! relayguard-core: the vocabulary shared by the scanner, the host agent and the registry.

pub mod agent_report;
