//! The desk's application checks with the real scanner: DNS consistency through the configured
//! resolvers (`relayguard_scanner::dns`) and a relay audit of a `mail-direct` host
//! (`relayguard_scanner::audit`), honouring the exclusions and the audit rate.

use std::net::IpAddr;
use std::sync::Arc;

use relayguard_registry::desk::applications::{
    ApplicationChecks, AuditFinding, BoxFuture, CheckResult, DnsRequest,
};
use relayguard_registry::model::Lang;
use relayguard_registry::notify::remediation::Remediation;
use relayguard_scanner::audit::{AuditConfig, audit};
use relayguard_scanner::dns::{Dns, DnsError};
use relayguard_scanner::pacing::Pacer;
use relayguard_scanner::targets::TargetSpec;

/// The scanner behind the desk.
pub struct ScannerChecks {
    /// The configured resolvers.
    pub dns: Dns,
    /// How the relay audit talks to the host.
    pub audit: Arc<AuditConfig>,
    /// The audit rate limit (shared by every application).
    pub pacer: Arc<Pacer>,
    /// Addresses never audited.
    pub exclusions: Vec<TargetSpec>,
}

/// A DNS name as compared: lower case, no trailing dot.
fn plain(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn excluded(exclusions: &[TargetSpec], ip: IpAddr) -> bool {
    exclusions.iter().any(|e| match e {
        TargetSpec::Net(n) => n.contains(&ip),
        TargetSpec::Range(a, b) => a.is_ipv4() == ip.is_ipv4() && *a <= ip && ip <= *b,
        TargetSpec::Name(_) => false,
    })
}

fn failed(name: &str, what: &str, e: &DnsError) -> CheckResult {
    CheckResult {
        name: name.into(),
        passed: false,
        detail: match e {
            DnsError::NotFound => format!("{what}: no record"),
            other => format!("{what}: the lookup failed ({other}); try again later"),
        },
    }
}

impl ScannerChecks {
    async fn forward(&self, req: &DnsRequest) -> CheckResult {
        let what = format!("A/AAAA {}", req.hostname);
        match self.dns.addresses(&req.hostname).await {
            Ok(addrs) => {
                let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                CheckResult {
                    name: "forward".into(),
                    passed: addrs.contains(&req.address),
                    detail: format!("{what} -> {}", shown.join(", ")),
                }
            }
            Err(e) => failed("forward", &what, &e),
        }
    }

    async fn ptr(&self, req: &DnsRequest) -> CheckResult {
        let what = format!("PTR {}", req.address);
        match self.dns.ptr(req.address).await {
            Ok(names) => CheckResult {
                name: "ptr".into(),
                passed: names.iter().any(|n| plain(n) == req.hostname),
                detail: format!("{what} -> {}", names.join(", ")),
            },
            Err(e) => failed("ptr", &what, &e),
        }
    }

    async fn mx(&self, req: &DnsRequest, domain: &str) -> CheckResult {
        let what = format!("MX {domain}");
        match self.dns.mx(domain).await {
            Ok(mx) => CheckResult {
                name: "mx".into(),
                passed: mx.iter().any(|(_, n)| plain(n) == req.hostname),
                detail: format!(
                    "{what} -> {}",
                    mx.iter()
                        .map(|(p, n)| format!("{p} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            Err(e) => failed("mx", &what, &e),
        }
    }
}

impl ApplicationChecks for ScannerChecks {
    fn dns<'a>(&'a self, req: &'a DnsRequest) -> BoxFuture<'a, Vec<CheckResult>> {
        Box::pin(async move {
            let mut out = vec![self.forward(req).await, self.ptr(req).await];
            if let Some(domain) = &req.mx_domain {
                out.push(self.mx(req, domain).await);
            }
            out
        })
    }

    fn relay_audit<'a>(
        &'a self,
        address: IpAddr,
        hostname: &'a str,
        lang: Lang,
    ) -> BoxFuture<'a, Result<Vec<AuditFinding>, String>> {
        Box::pin(async move {
            if excluded(&self.exclusions, address) {
                return Err(format!(
                    "{address} is excluded from audits; the security team checks it by hand"
                ));
            }
            let result = audit(
                address,
                25,
                Some(hostname),
                self.audit.clone(),
                self.pacer.clone(),
            )
            .await;
            let Some(smtp) = &result.smtp else {
                return Err(format!(
                    "port 25 of {address} did not answer with SMTP ({})",
                    result.error.as_deref().unwrap_or("no greeting")
                ));
            };
            let remediation = Remediation::embedded().map_err(|e| e.to_string())?;
            let fix = remediation.for_mta(&smtp.mta).text(lang).to_string();
            Ok(result
                .findings
                .iter()
                .map(|f| AuditFinding {
                    kind: f.kind.to_string(),
                    severity: f.severity.as_str().to_string(),
                    summary: f.summary.clone(),
                    fix: fix.clone(),
                })
                .collect())
        })
    }
}

/// The checks as `serve`'s flags configure them.
pub fn build(a: &super::ServeArgs) -> anyhow::Result<ScannerChecks> {
    use anyhow::Context;
    use relayguard_core::rules::RuleSet;
    use relayguard_scanner::dns::DnsConfig;
    use relayguard_scanner::smtp::{SessionConfig, TlsSetup};
    use relayguard_scanner::targets;
    use std::time::Duration;

    let servers = a
        .resolver
        .iter()
        .map(|r| DnsConfig::parse_server(r).map_err(|e| anyhow::anyhow!("--resolver {r:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dns = Dns::new(&DnsConfig {
        servers,
        ..DnsConfig::default()
    })
    .context("setting up the desk's DNS resolver (pass --resolver ADDR:PORT)")?;
    let mut exclusions = Vec::new();
    for e in &a.audit_exclude {
        exclusions.extend(targets::parse_exclusion(e)?);
    }
    if !a.audit_allow_special {
        exclusions.extend(targets::special_exclusions());
    }
    let rules = RuleSet::builtin().context("loading the built-in rules")?;
    let audit = AuditConfig {
        session: SessionConfig {
            ehlo_name: a.ehlo_name.clone(),
            connect_timeout: Duration::from_secs(5),
            source: a.audit_source,
            tls: TlsSetup::new(Vec::new()).context("setting up TLS")?,
        },
        external_domain: a.external_domain.clone(),
        local_domains: Vec::new(),
        probe_sender: "relayguard-probe".into(),
        probe_recipient: "relayguard-test".into(),
        command_timeout: Duration::from_secs(30),
        host_deadline: Duration::from_secs(120),
        sessions_per_host: 4,
        tests_per_session: 8,
        // An applicant waits for the answer: no greylisting retry minutes later.
        greylist_wait: Duration::ZERO,
        all_vectors: false,
        rules: Arc::new(rules),
        dns: None,
    };
    Ok(ScannerChecks {
        dns,
        audit: Arc::new(audit),
        pacer: Arc::new(Pacer::new(Some(a.audit_rate))),
        exclusions,
    })
}
