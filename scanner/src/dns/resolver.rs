//! The resolver handle: configuration, bounded concurrency, error mapping, typed lookups.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use relayguard_core::FindingKind;
use relayguard_core::Severity;
use relayguard_core::rules::RuleSet;
use tokio::sync::Semaphore;

use super::names::reverse_name;
use super::plain;
use super::ptr::GenericPtrRules;

/// Why a lookup gave no answer. Every resolver error maps to one of these; none panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN) or has no record of the asked type (NODATA).
    #[error("no such record (NXDOMAIN or no data)")]
    NotFound,
    /// The server answered SERVFAIL: it could not resolve the name (broken zone, lame delegation).
    #[error("server failure (SERVFAIL)")]
    ServFail,
    /// No answer within the configured timeout and attempts.
    #[error("timed out")]
    Timeout,
    /// Anything else: REFUSED, a malformed name, no usable server, an I/O error.
    #[error("{0}")]
    Other(String),
}

/// Resolver settings as plain data (e.g. from `--resolver ADDR:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Resolvers to ask, UDP with TCP fallback. Empty: the `nameserver` lines of
    /// `/etc/resolv.conf` on port 53.
    pub servers: Vec<SocketAddr>,
    /// How long to wait for one answer.
    pub timeout: Duration,
    /// How many times a query is tried before it fails.
    pub attempts: usize,
    /// How many answers the resolver caches (0 disables the cache).
    pub cache_size: u64,
    /// How many lookups this handle runs at once; more wait their turn.
    pub concurrency: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            timeout: Duration::from_secs(3),
            attempts: 2,
            cache_size: 4096,
            concurrency: 64,
        }
    }
}

impl DnsConfig {
    /// The defaults, asking exactly these resolvers.
    pub fn with_servers(servers: Vec<SocketAddr>) -> Self {
        DnsConfig {
            servers,
            ..DnsConfig::default()
        }
    }

    /// Parses a `--resolver` value: `ADDR`, `ADDR:PORT`, `[V6ADDR]:PORT` (port 53 if absent).
    pub fn parse_server(text: &str) -> Result<SocketAddr, DnsError> {
        let text = text.trim();
        if let Ok(sa) = text.parse::<SocketAddr>() {
            return Ok(sa);
        }
        if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, 53));
        }
        Err(DnsError::Other(format!(
            "invalid resolver address {text:?} (expected ADDR, ADDR:PORT or [V6ADDR]:PORT)"
        )))
    }
}

/// Reads the `nameserver` lines of a resolv.conf text.
fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|addr| addr.split('%').next()?.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// A DNS handle: a caching hickory resolver, a bound on lookups in flight, the generic-PTR
/// patterns and the severities to give findings. Cheap to clone; share one per sweep.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    limit: Arc<Semaphore>,
    servers: Arc<[SocketAddr]>,
    timeout: Duration,
    rules: Option<Arc<RuleSet>>,
    pub(crate) generic: Arc<GenericPtrRules>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Dns {
    /// Builds a handle from the configuration (the built-in generic-PTR patterns, default
    /// severities). Fails only on a configuration without any usable resolver.
    pub fn new(config: &DnsConfig) -> Result<Dns, DnsError> {
        let servers = if config.servers.is_empty() {
            let text = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| {
                DnsError::Other(format!("no resolver given and /etc/resolv.conf: {e}"))
            })?;
            resolv_conf_servers(&text)
        } else {
            config.servers.clone()
        };
        if servers.is_empty() {
            return Err(DnsError::Other(
                "no resolver given and none in /etc/resolv.conf".into(),
            ));
        }
        let name_servers = servers
            .iter()
            .map(|sa| {
                let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                for c in &mut ns.connections {
                    c.port = sa.port();
                }
                ns
            })
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            TokioRuntimeProvider::default(),
        );
        let opts = builder.options_mut();
        opts.timeout = config.timeout;
        opts.attempts = config.attempts.max(1);
        opts.cache_size = config.cache_size;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        let resolver = builder
            .build()
            .map_err(|e| DnsError::Other(format!("resolver setup: {e}")))?;
        Ok(Dns {
            resolver,
            limit: Arc::new(Semaphore::new(config.concurrency.max(1))),
            servers: servers.into(),
            timeout: config.timeout,
            rules: None,
            generic: Arc::new(GenericPtrRules::builtin()),
        })
    }

    /// Uses `rules` for the severities of findings (else each kind's default).
    pub fn with_rules(mut self, rules: RuleSet) -> Dns {
        self.rules = Some(Arc::new(rules));
        self
    }

    /// Uses these generic-PTR patterns instead of the built-in `rules/generic-ptr.yaml`.
    pub fn with_generic_ptr_rules(mut self, rules: GenericPtrRules) -> Dns {
        self.generic = Arc::new(rules);
        self
    }

    /// The resolvers this handle asks.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// The per-query timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The severity findings of `kind` get.
    pub fn severity(&self, kind: FindingKind) -> Severity {
        self.rules
            .as_ref()
            .map_or_else(|| kind.default_severity(), |r| r.severity(kind))
    }

    /// Empties the answer cache (e.g. between two sweeps).
    pub fn clear_cache(&self) {
        self.resolver.clear_cache();
    }

    /// Looks `name` up (treated as fully qualified) and returns the answers of type `rtype`.
    pub(crate) async fn lookup(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<Vec<RData>, DnsError> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let name = Name::from_ascii(&fqdn)
            .map_err(|e| DnsError::Other(format!("invalid name {fqdn:?}: {e}")))?;
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| DnsError::Other("resolver closed".into()))?;
        let lookup = self.resolver.lookup(name, rtype).await.map_err(map_error)?;
        let answers: Vec<RData> = lookup
            .answers()
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data.clone())
            .collect();
        if answers.is_empty() {
            Err(DnsError::NotFound)
        } else {
            Ok(answers)
        }
    }

    /// The PTR names of `ip`, without trailing dots, lower-cased.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let answers = self.lookup(&reverse_name(ip), RecordType::PTR).await?;
        Ok(answers
            .into_iter()
            .filter_map(|r| match r {
                RData::PTR(p) => Some(plain(&p.0.to_ascii())),
                _ => None,
            })
            .collect())
    }

    /// The IPv4 addresses of `name`.
    pub async fn ipv4(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let answers = self.lookup(name, RecordType::A).await?;
        Ok(answers
            .into_iter()
            .filter_map(|r| match r {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .collect())
    }

    /// The IPv6 addresses of `name`.
    pub async fn ipv6(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let answers = self.lookup(name, RecordType::AAAA).await?;
        Ok(answers
            .into_iter()
            .filter_map(|r| match r {
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect())
    }

    /// The A and AAAA addresses of `name`. `NotFound` only when it has neither; a failure of
    /// one family with answers in the other returns those answers.
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let (v4, v6) = tokio::join!(self.ipv4(name), self.ipv6(name));
        match (v4, v6) {
            (Ok(mut a), Ok(b)) => {
                a.extend(b);
                Ok(a)
            }
            (Ok(a), Err(_)) | (Err(_), Ok(a)) => Ok(a),
            (Err(DnsError::NotFound), Err(e)) | (Err(e), Err(_)) => Err(e),
        }
    }

    /// The MX records of `zone` as (preference, exchange without trailing dot), by preference.
    pub async fn mx(&self, zone: &str) -> Result<Vec<(u16, String)>, DnsError> {
        let answers = self.lookup(zone, RecordType::MX).await?;
        let mut mx: Vec<(u16, String)> = answers
            .into_iter()
            .filter_map(|r| match r {
                RData::MX(m) => Some((m.preference, plain(&m.exchange.to_ascii()))),
                _ => None,
            })
            .collect();
        mx.sort();
        Ok(mx)
    }

    /// The TXT strings of `name`, each record's character-strings joined, lossily decoded.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let answers = self.lookup(name, RecordType::TXT).await?;
        Ok(answers
            .into_iter()
            .filter_map(|r| match r {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The SOA serial of `zone`, through the resolver.
    pub async fn soa_serial(&self, zone: &str) -> Result<u32, DnsError> {
        let answers = self.lookup(zone, RecordType::SOA).await?;
        answers
            .into_iter()
            .find_map(|r| match r {
                RData::SOA(s) => Some(s.serial),
                _ => None,
            })
            .ok_or(DnsError::NotFound)
    }
}

/// Maps a hickory error to the four outcomes callers care about.
pub(crate) fn map_error(e: NetError) -> DnsError {
    match e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(_)) => DnsError::NotFound,
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => map_response_code(code),
        NetError::Timeout => DnsError::Timeout,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => DnsError::Timeout,
        other => {
            let text = other.to_string();
            if text.contains("timed out") {
                DnsError::Timeout
            } else {
                DnsError::Other(text)
            }
        }
    }
}

/// Maps a DNS response code that is an error.
pub(crate) fn map_response_code(code: ResponseCode) -> DnsError {
    match code {
        ResponseCode::NXDomain => DnsError::NotFound,
        ResponseCode::ServFail => DnsError::ServFail,
        ResponseCode::Refused => DnsError::Other("server refused the query (REFUSED)".into()),
        other => DnsError::Other(format!(
            "server answered {}",
            super::zone::rcode_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_addresses_parse_with_and_without_port() {
        assert_eq!(
            DnsConfig::parse_server("127.0.0.1:5300").unwrap(),
            "127.0.0.1:5300".parse().unwrap()
        );
        assert_eq!(
            DnsConfig::parse_server("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            DnsConfig::parse_server("[::1]:5300").unwrap(),
            "[::1]:5300".parse().unwrap()
        );
        assert_eq!(
            DnsConfig::parse_server("::1").unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert!(DnsConfig::parse_server("resolver.example").is_err());
    }

    #[test]
    fn resolv_conf_nameservers_are_read() {
        let text =
            "# comment\nsearch campus.test\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n";
        assert_eq!(
            resolv_conf_servers(text),
            vec![
                "192.0.2.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn response_codes_map_to_clear_errors() {
        assert_eq!(
            map_response_code(ResponseCode::NXDomain),
            DnsError::NotFound
        );
        assert_eq!(
            map_response_code(ResponseCode::ServFail),
            DnsError::ServFail
        );
        assert!(matches!(
            map_response_code(ResponseCode::Refused),
            DnsError::Other(m) if m.contains("REFUSED")
        ));
        assert_eq!(map_error(NetError::Timeout), DnsError::Timeout);
        assert_eq!(
            map_error(NetError::Dns(HickoryDnsError::ResponseCode(
                ResponseCode::ServFail
            ))),
            DnsError::ServFail
        );
    }
}
