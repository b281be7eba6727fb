//! Secrets: random bearer tokens, their stored SHA-256, constant-time comparison.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// A new random token `PREFIX_` + 64 hex digits (256 bits from the OS generator).
pub fn generate(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Invalid("the system random number generator failed".into()))?;
    Ok(format!("{prefix}_{}", hex(&bytes)))
}

/// SHA-256 of the token, lower-case hex: what the database keeps instead of the secret.
pub fn hash_hex(secret: &str) -> String {
    hex(digest(&SHA256, secret.as_bytes()).as_ref())
}

/// Constant-time equality (length differences are not hidden; compare fixed-size hashes).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `presented` equals any of `configured`, in time independent of where it matches:
/// both sides are hashed to fixed length and every candidate is compared.
pub fn matches_any(presented: &str, configured: &[String]) -> bool {
    let p = digest(&SHA256, presented.as_bytes());
    let mut found = subtle::Choice::from(0);
    for c in configured {
        found |= p.as_ref().ct_eq(digest(&SHA256, c.as_bytes()).as_ref());
    }
    found.into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
