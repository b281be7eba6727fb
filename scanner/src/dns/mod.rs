//! DNS checks.
