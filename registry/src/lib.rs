//! relayguard central registry (see issue 4): not started yet.
