//! Applications at the desk: what an administrator asks for, the checks run on submission, and
//! the decision.
//!
//! The checks need DNS and a relay audit, which are the scanner's; the registry does not depend
//! on the scanner, so they come through [`ApplicationChecks`], which the `relayguard-registry`
//! binary implements with the real scanner.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Lang, Role, parse_address, parse_email, parse_hostname, parse_text};

/// Finding kinds that keep a `mail-direct` application from being approved.
pub const BLOCKING_KINDS: &[&str] = &["open-relay", "relay-suspected", "backscatter-source"];

/// A boxed future, as the check trait returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The result of one check run on submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Which check: `forward` (name → address), `ptr` (address → name), `mx` (an MX names the
    /// host), `relay-audit`.
    pub name: String,
    /// Whether it passed (a lookup that failed is not a pass).
    pub passed: bool,
    /// What was found, for the applicant.
    pub detail: String,
}

/// A finding of the relay audit, as the applicant is shown it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFinding {
    /// The finding kind, e.g. `open-relay`.
    pub kind: String,
    /// Its severity name.
    pub severity: String,
    /// One line saying what was seen.
    pub summary: String,
    /// How to fix it for the MTA that answered (empty when unknown).
    #[serde(default)]
    pub fix: String,
}

/// What the DNS checks are asked: the name and address applied for, and the mail domain whose
/// MX must name the host (None when the role needs no MX).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRequest {
    /// The address applied for.
    pub address: IpAddr,
    /// Its host name.
    pub hostname: String,
    /// The domain whose MX records must include `hostname`.
    pub mx_domain: Option<String>,
}

/// The checks run on an application: DNS consistency through the configured resolvers, and a
/// relay audit of a host that asks for a firewall pass.
pub trait ApplicationChecks: Send + Sync {
    /// The DNS consistency checks: `forward`, `ptr`, and `mx` when asked.
    fn dns<'a>(&'a self, req: &'a DnsRequest) -> BoxFuture<'a, Vec<CheckResult>>;

    /// A relay audit of `address` (port 25), honouring the scanner's exclusions and rate
    /// limits. Its findings (with the fix in `lang`), or why the host could not be audited.
    fn relay_audit<'a>(
        &'a self,
        address: IpAddr,
        hostname: &'a str,
        lang: Lang,
    ) -> BoxFuture<'a, std::result::Result<Vec<AuditFinding>, String>>;
}

/// Where an application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplicationStatus {
    /// Every check passed; the registration was made or updated.
    Approved,
    /// Every check passed; the security team approves by hand.
    Held,
    /// A check failed: the applicant fixes it and applies again.
    NeedsChanges,
    /// Withdrawn by the applicant (or the team).
    Cancelled,
}

impl ApplicationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationStatus::Approved => "approved",
            ApplicationStatus::Held => "held",
            ApplicationStatus::NeedsChanges => "needs-changes",
            ApplicationStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for ApplicationStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "approved" => ApplicationStatus::Approved,
            "held" => ApplicationStatus::Held,
            "needs-changes" => ApplicationStatus::NeedsChanges,
            "cancelled" => ApplicationStatus::Cancelled,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown application status {other:?}"
                )));
            }
        })
    }
}

/// An application as given (form or JSON); every field is validated by [`ApplicationInput::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationInput {
    /// The host's address.
    pub address: String,
    /// The host's DNS name.
    pub hostname: String,
    /// `mail-direct`, `mail-via-gateway` or `internal-only`.
    pub role: String,
    /// Who answers for the host.
    pub contact_name: String,
    /// Where findings and the outcome go.
    pub contact_email: String,
    /// `en` or `ja` (default `en`).
    #[serde(default)]
    pub lang: Option<String>,
    /// The domain whose MX names the host (default: the host name's parent domain).
    #[serde(default)]
    pub mail_domain: Option<String>,
    /// Free text.
    #[serde(default)]
    pub note: Option<String>,
}

/// A validated application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApplication {
    /// Canonical address.
    pub address: String,
    /// Lower-cased host name without the trailing dot.
    pub hostname: String,
    /// The role applied for.
    pub role: Role,
    /// Contact's name.
    pub contact_name: String,
    /// Contact's address.
    pub contact_email: String,
    /// The contact's language.
    pub lang: Lang,
    /// The domain whose MX must name the host, for roles that need one.
    pub mail_domain: Option<String>,
    /// Free text.
    pub note: String,
}

impl ApplicationInput {
    /// Validates every field, each with a message naming it.
    pub fn validate(&self) -> Result<NewApplication> {
        let field = |name: &str, e: Error| Error::Invalid(format!("{name}: {e}"));
        let address = parse_address(&self.address).map_err(|e| field("address", e))?;
        let hostname = parse_hostname(&self.hostname).map_err(|e| field("host name", e))?;
        let role: Role = self
            .role
            .trim()
            .parse()
            .map_err(|e| field("role", Error::from(e)))?;
        if !matches!(
            role,
            Role::MailDirect | Role::MailViaGateway | Role::InternalOnly
        ) {
            return Err(Error::Invalid(format!(
                "role: {} is not applied for at the desk (choose mail-direct, mail-via-gateway or internal-only)",
                role.as_str()
            )));
        }
        let contact_name = parse_text("contact name", &self.contact_name, true)
            .map_err(|e| field("contact", e))?;
        let contact_email =
            parse_email(&self.contact_email).map_err(|e| field("contact e-mail", e))?;
        let lang = match self.lang.as_deref().map(str::trim) {
            None | Some("") => Lang::En,
            Some(l) => l.parse().map_err(|e| field("language", e))?,
        };
        let needs_mx = matches!(role, Role::MailDirect | Role::MailViaGateway);
        let mail_domain = match self.mail_domain.as_deref().map(str::trim) {
            Some(d) if !d.is_empty() => {
                Some(parse_hostname(d).map_err(|e| field("mail domain", e))?)
            }
            _ => hostname
                .split_once('.')
                .map(|(_, parent)| parent.to_string()),
        };
        if needs_mx && mail_domain.as_deref().is_none_or(|d| !d.contains('.')) {
            return Err(Error::Invalid(
                "mail domain: give the domain whose MX names this host (the host name has no parent domain to assume)".into(),
            ));
        }
        Ok(NewApplication {
            address,
            hostname,
            role,
            contact_name,
            contact_email,
            lang,
            mail_domain: if needs_mx { mail_domain } else { None },
            note: parse_text("note", self.note.as_deref().unwrap_or(""), false)?,
        })
    }
}

/// The checks' results and the decision they lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Approved, held or needs-changes.
    pub status: ApplicationStatus,
    /// Each check's result.
    pub checks: Vec<CheckResult>,
    /// The relay audit's findings (mail-direct only).
    pub findings: Vec<AuditFinding>,
}

/// Runs the checks an application needs and decides: every DNS check passed and, for
/// `mail-direct`, no blocking finding → approved (held when `manual_approval`); otherwise
/// needs-changes.
pub async fn decide(
    app: &NewApplication,
    checks: &dyn ApplicationChecks,
    manual_approval: bool,
) -> Outcome {
    let address: IpAddr = app
        .address
        .parse()
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let mut results = checks
        .dns(&DnsRequest {
            address,
            hostname: app.hostname.clone(),
            mx_domain: app.mail_domain.clone(),
        })
        .await;
    let mut findings = Vec::new();
    if app.role == Role::MailDirect {
        match checks.relay_audit(address, &app.hostname, app.lang).await {
            Ok(f) => {
                let blocking: Vec<&AuditFinding> = f
                    .iter()
                    .filter(|f| BLOCKING_KINDS.contains(&f.kind.as_str()))
                    .collect();
                results.push(CheckResult {
                    name: "relay-audit".into(),
                    passed: blocking.is_empty(),
                    detail: if blocking.is_empty() {
                        "the relay audit found no open relay, suspected relay or backscatter".into()
                    } else {
                        blocking
                            .iter()
                            .map(|f| format!("{}: {}", f.kind, f.summary))
                            .collect::<Vec<_>>()
                            .join("; ")
                    },
                });
                findings = f;
            }
            Err(why) => results.push(CheckResult {
                name: "relay-audit".into(),
                passed: false,
                detail: format!("the host could not be audited: {why}"),
            }),
        }
    }
    let status = if results.iter().all(|c| c.passed) {
        if manual_approval {
            ApplicationStatus::Held
        } else {
            ApplicationStatus::Approved
        }
    } else {
        ApplicationStatus::NeedsChanges
    };
    Outcome {
        status,
        checks: results,
        findings,
    }
}
