//! relayguard host agent (see issue 3): not started yet.
