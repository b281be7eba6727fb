//! Learning a host's own names from its greeting and EHLO reply, and recognising addresses that
//! the host would treat as local.

use std::net::IpAddr;

use crate::smtp::Greeting;
use crate::smtp::hostname::{looks_like_hostname, name_in};

/// The most own names used to expand `{host}` vectors (each name multiplies those tests).
pub const MAX_NAMES: usize = 3;

/// What a host calls itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnNames {
    /// Names for the `{host}` relay vectors: the operator's name for the host, the names in its
    /// greeting and EHLO reply, its PTR name, the parent domain of the first of those, every
    /// `--local-domain`.
    pub routing: Vec<String>,
    /// Domains where the host surely delivers locally, for the backscatter probes: the same
    /// without the guessed parent domain (an open relay would accept anything there).
    pub local: Vec<String>,
}

impl OwnNames {
    /// Learns the names from the operator's name for the host, the opening and the PTR name,
    /// and adds the operator's `local_domains`.
    pub fn learn(
        known_name: Option<&str>,
        greeting: &Greeting,
        ptr: Option<&str>,
        local_domains: &[String],
    ) -> OwnNames {
        let banner = greeting.banner_name();
        let ehlo = greeting.ehlo_name();
        let ptr = ptr.and_then(name_in);
        let parent = known_name
            .map(str::to_string)
            .or_else(|| banner.clone())
            .or_else(|| ehlo.clone())
            .and_then(|n| parent_domain(&n));
        let mut local = own_names([
            known_name,
            banner.as_deref(),
            ehlo.as_deref(),
            ptr.as_deref(),
        ]);
        let mut routing = local.clone();
        if let Some(parent) = parent
            && !routing.contains(&parent)
        {
            routing.push(parent);
        }
        for domain in local_domains {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            for list in [&mut local, &mut routing] {
                if !list.contains(&domain) {
                    list.push(domain.clone());
                }
            }
        }
        OwnNames { routing, local }
    }
}

/// The domain a host name belongs to (`mx.example.edu` → `example.edu`), when it has at least
/// three labels: a server is usually a mail exchanger or backup MX for its parent domain, and a
/// backup MX that allows untrusted routing only relays through that domain.
pub fn parent_domain(name: &str) -> Option<String> {
    let (_, parent) = name.split_once('.')?;
    (parent.contains('.') && looks_like_hostname(parent)).then(|| parent.to_ascii_lowercase())
}

/// Collects distinct own names in priority order, at most [`MAX_NAMES`].
pub fn own_names<'a>(candidates: impl IntoIterator<Item = Option<&'a str>>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in candidates.into_iter().flatten() {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if looks_like_hostname(&name) && !names.contains(&name) && names.len() < MAX_NAMES {
            names.push(name);
        }
    }
    names
}

/// The body of an SMTP address literal for `ip`: `192.0.2.1` or `IPv6:2001:db8::1`.
pub fn address_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPv6:{v6}"),
    }
}

/// The domain of an SMTP path such as `<a%b@c>`: the part after the last `@` outside quotes,
/// `None` when there is no `@` (an unqualified or bang-path local part).
pub fn path_domain(path: &str) -> Option<&str> {
    let inner = path.trim_start_matches('<').trim_end_matches('>');
    let mut in_quotes = false;
    let mut escaped = false;
    let mut last_at = None;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            '@' if !in_quotes => last_at = Some(i),
            _ => {}
        }
    }
    last_at.map(|i| &inner[i + 1..])
}

/// Whether the host would read `path` as one of its own (local) addresses: no domain, an empty
/// domain, one of its names or its address literal.
///
/// On a host that accepts every local recipient, accepting such an address proves nothing about
/// relaying: the quoted and percent forms of nmap's tests are the classic false positives.
pub fn is_local_form(path: &str, names: &[String], ip: IpAddr) -> bool {
    match path_domain(path) {
        None => true,
        Some(domain) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            domain.is_empty()
                || names.contains(&domain)
                || domain == format!("[{}]", address_literal(ip)).to_ascii_lowercase()
        }
    }
}

/// The domain of `path`, lower-cased and without a trailing dot, as the controls are compared:
/// `None` when the path has no `@` at all.
pub fn normalized_domain(path: &str) -> Option<String> {
    path_domain(path).map(|d| d.trim_end_matches('.').to_ascii_lowercase())
}

/// Whether `path` is a plainly external address, `<user@ext>`: the external domain after a local
/// part with no routing in it (no `%`, `!`, `@`, quotes) and no source route. A server that
/// accepts it at RCPT has agreed to relay to `ext`: no local delivery can explain the 250.
pub fn is_plain_external(path: &str, ext: &str) -> bool {
    let inner = path.trim_start_matches('<').trim_end_matches('>');
    let Some((local, domain)) = inner.rsplit_once('@') else {
        return false;
    };
    !inner.starts_with('@')
        && !local.is_empty()
        && !local.contains(['%', '!', '@', '"', ':'])
        && domain
            .trim_end_matches('.')
            .eq_ignore_ascii_case(ext.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_domains() {
        assert_eq!(parent_domain("mx.example.edu"), Some("example.edu".into()));
        assert_eq!(
            parent_domain("mail.cs.example.ac.jp"),
            Some("cs.example.ac.jp".into())
        );
        assert_eq!(parent_domain("example.edu"), None);
        assert_eq!(parent_domain("localhost"), None);
    }

    #[test]
    fn own_names_are_deduplicated_and_bounded() {
        let names = own_names([
            Some("a.example"),
            None,
            Some("A.example."),
            Some("b.example"),
            Some("c.example"),
            Some("d.example"),
        ]);
        assert_eq!(names, vec!["a.example", "b.example", "c.example"]);
    }

    #[test]
    fn path_domains_respect_quotes() {
        assert_eq!(path_domain("<u@ext.example>"), Some("ext.example"));
        assert_eq!(path_domain("<\"u@ext.example\">"), None);
        assert_eq!(
            path_domain("<\"u@ext.example\"@[192.0.2.1]>"),
            Some("[192.0.2.1]")
        );
        assert_eq!(
            path_domain("<@mx.example:u@ext.example>"),
            Some("ext.example")
        );
        assert_eq!(path_domain("<ext.example!u>"), None);
        assert_eq!(path_domain("<u@ext.example@>"), Some(""));
        assert_eq!(path_domain("<>"), None);
    }

    #[test]
    fn local_forms() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let names = vec!["mx.example.edu".to_string()];
        assert!(is_local_form("<u%ext.example@mx.example.edu>", &names, ip));
        assert!(is_local_form("<u%ext.example@[192.0.2.1]>", &names, ip));
        assert!(is_local_form("<\"u@ext.example\">", &names, ip));
        assert!(is_local_form("<ext.example!u>", &names, ip));
        assert!(!is_local_form("<u@ext.example>", &names, ip));
        assert!(!is_local_form(
            "<@mx.example.edu:u@ext.example>",
            &names,
            ip
        ));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(is_local_form("<u@[IPv6:2001:db8::1]>", &names, v6));
    }

    #[test]
    fn plain_external_addresses() {
        let ext = "ext.example";
        assert!(is_plain_external("<u@ext.example>", ext));
        assert!(is_plain_external("<u@EXT.example.>", ext));
        assert!(!is_plain_external("<u%ext.example@mx.example.edu>", ext));
        assert!(!is_plain_external("<\"u@ext.example\">", ext));
        assert!(!is_plain_external("<@mx.example.edu:u@ext.example>", ext));
        assert!(!is_plain_external("<ext.example!u>", ext));
        assert!(!is_plain_external("<u@ext.example@[192.0.2.1]>", ext));
        assert!(!is_plain_external("<u@other.example>", ext));
        assert!(!is_plain_external("<>", ext));
        assert_eq!(
            normalized_domain("<u%x@MX.Example.>"),
            Some("mx.example".to_string())
        );
    }
}
