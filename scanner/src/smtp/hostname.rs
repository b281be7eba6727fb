//! The host name a server gives for itself: RFC 5321 makes the first word of the greeting and of
//! the EHLO reply the server's domain, so reading it is part of speaking SMTP.

use std::net::IpAddr;

/// Whether `s` looks like a DNS host name (at least one dot, LDH labels, not an address).
pub fn looks_like_hostname(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    s.len() <= 253
        && s.contains('.')
        && s.parse::<IpAddr>().is_err()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The host name a greeting or EHLO line starts with, if it starts with one.
pub fn name_in(line: &str) -> Option<String> {
    let token = line.split_ascii_whitespace().next()?;
    looks_like_hostname(token).then(|| token.trim_end_matches('.').to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_recognised() {
        assert!(looks_like_hostname("mx.example.edu"));
        assert!(looks_like_hostname("mx.example.edu."));
        assert!(!looks_like_hostname("localhost"));
        assert!(!looks_like_hostname("192.0.2.1"));
        assert!(!looks_like_hostname("mx.exa mple"));
        assert!(!looks_like_hostname("-bad.example"));
        assert_eq!(
            name_in("MX.Example.EDU ESMTP Postfix"),
            Some("mx.example.edu".into())
        );
        assert_eq!(name_in("ESMTP ready"), None);
    }
}
