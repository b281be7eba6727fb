//! The result of sweeping one address and port: the schema of `relayguard sweep` output.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::finding::Finding;
use crate::transcript::Transcript;

/// What a TCP connect to the port showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    /// The connection was accepted.
    Open,
    /// The host answered with a reset.
    Closed,
    /// No answer within the timeout (or an ICMP unreachable), after the retry.
    Filtered,
}

impl PortState {
    /// The lower-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
        }
    }
}

/// The outcome of one test (a relay vector, a backscatter probe, VRFY…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The server accepted (250/251 at RCPT; for VRFY/EXPN a positive answer).
    Accepted,
    /// A policy refusal: 5xx, or a 4xx whose enhanced code says security/policy (4.7.x).
    Refused,
    /// The server wants authentication first (530, 5.7.0 "authentication required").
    AuthRequired,
    /// No conclusion: a temporary failure, 252, a hang-up, a timeout, or an answer that cannot be
    /// told from local delivery on a host that accepts every local recipient.
    Inconclusive,
    /// Not sent: the verdict it would have informed was already decided (a plainly external
    /// recipient accepted proves an open relay); `--all-vectors` sends every test regardless.
    NotRun,
}

impl Verdict {
    /// The kebab-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Refused => "refused",
            Verdict::AuthRequired => "auth-required",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotRun => "not-run",
        }
    }
}

/// What kind of test produced a [`TestResult`]: the id of the scanner probe that ran it
/// (`relay`, `backscatter`, `vrfy`, `expn`, ...).
///
/// An open set rather than an enum, so that a new probe does not change this crate; the
/// serialized form is the plain id string, as it always was.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TestKind(Cow<'static, str>);

// The built-in kinds keep the names of the enum variants they once were, so code comparing
// against `TestKind::Relay` reads (and compiles) as before.
#[allow(non_upper_case_globals)]
impl TestKind {
    /// A relay vector from the rules.
    pub const Relay: TestKind = TestKind::new("relay");
    /// A random unknown local recipient.
    pub const Backscatter: TestKind = TestKind::new("backscatter");
    /// VRFY of a well-known and of a random user.
    pub const Vrfy: TestKind = TestKind::new("vrfy");
    /// EXPN of a well-known list.
    pub const Expn: TestKind = TestKind::new("expn");

    /// The kind with this id.
    pub const fn new(id: &'static str) -> TestKind {
        TestKind(Cow::Borrowed(id))
    }

    /// The kind's id, as serialized.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One test against one host: what was sent, what came back, and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// The test's identifier (the relay vector id, or `backscatter`, `vrfy`, `expn`).
    pub id: String,
    /// What kind of test it is.
    pub kind: TestKind,
    /// The MAIL FROM argument, when the test sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_from: Option<String>,
    /// The RCPT TO (or VRFY/EXPN) argument.
    pub argument: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The reply the verdict was read from (first line), or what went wrong.
    pub reply: String,
    /// Why the verdict is what it is, when that is not obvious from the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Which session of the host's transcript carried the test.
    pub session: u32,
}

/// One certificate of the chain the server presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// DNS names and addresses from the subject alternative name extension.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SHA-256 of the DER encoding, lower-case hex.
    pub sha256: String,
}

/// What the TLS handshake (STARTTLS or implicit) showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// Whether the handshake completed.
    pub established: bool,
    /// Negotiated protocol version, e.g. `TLSv1_3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Negotiated cipher suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// The name the certificate was checked against (a host name from the banner, else the IP).
    pub checked_name: String,
    /// Whether the chain validates against the trust store for `checked_name`.
    pub certificate_valid: bool,
    /// Why it does not validate, or why the handshake failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The presented chain, end-entity first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<CertificateInfo>,
}

/// What the SMTP conversation showed about the server itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpInfo {
    /// The greeting, all lines joined with `\n`.
    pub banner: String,
    /// The EHLO (or HELO) reply lines after the first, i.e. the extensions.
    #[serde(default)]
    pub ehlo: Vec<String>,
    /// True when EHLO was refused and HELO was used.
    #[serde(default)]
    pub helo_fallback: bool,
    /// The MTA identified from the banner and EHLO (`postfix`, `exim`, …, `other`).
    pub mta: String,
    /// The host names the server gave for itself (banner, EHLO greeting).
    #[serde(default)]
    pub names: Vec<String>,
    /// Whether STARTTLS was offered.
    pub starttls: bool,
    /// SASL mechanisms offered before TLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_before_tls: Vec<String>,
    /// The TLS handshake, when one was tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
}

/// Everything learned about one address and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResult {
    /// The address probed.
    pub address: IpAddr,
    /// The TCP port probed.
    pub port: u16,
    /// The name the target was given as, when it was given as a host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    /// The address's PTR name, when reverse DNS was checked and has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptr: Option<String>,
    /// The local address the host was tested from (`--source`, else the address the kernel
    /// chose for the first connection): a relay open from inside a campus may be closed from
    /// outside it, so a verdict holds only for its vantage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    /// What the TCP connect showed.
    pub state: PortState,
    /// The SMTP facts, when the port was open and spoke SMTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpInfo>,
    /// Why the audit stopped early (no banner, not SMTP, deadline), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every test run, in order.
    #[serde(default)]
    pub tests: Vec<TestResult>,
    /// What is wrong.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// What could not be determined (a DNS lookup that timed out, a check skipped), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The whole conversation, every session.
    #[serde(default)]
    pub transcript: Transcript,
    /// Milliseconds the audit took.
    pub elapsed_ms: u64,
    /// When, in the sweep, the host was found, first answered and done (absent for an audit
    /// run on its own, outside a sweep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<HostTimeline>,
}

/// When a host's result came about, in milliseconds since its sweep started: where a sweep's
/// time goes, host by host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTimeline {
    /// Discovery settled the port (open, closed or filtered).
    pub discovered_ms: u64,
    /// The audit began (an audit slot was free).
    pub audit_started_ms: u64,
    /// The server's first line (its greeting), if it said anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_reply_ms: Option<u64>,
    /// The result was complete: every verdict decided.
    pub done_ms: u64,
}

impl HostResult {
    /// A result for a port with no conversation: not open, or open in a discovery-only sweep.
    pub fn unreachable(address: IpAddr, port: u16, state: PortState) -> Self {
        HostResult {
            address,
            port,
            target_name: None,
            ptr: None,
            source: None,
            state,
            smtp: None,
            error: None,
            tests: Vec::new(),
            findings: Vec::new(),
            notes: Vec::new(),
            transcript: Transcript::default(),
            elapsed_ms: 0,
            timeline: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_kinds_serialize_as_their_plain_id() {
        assert_eq!(
            serde_json::to_string(&TestKind::Relay).unwrap(),
            "\"relay\""
        );
        let read: TestKind = serde_json::from_str("\"starttls-downgrade\"").unwrap();
        assert_eq!(read.as_str(), "starttls-downgrade");
        let vrfy: TestKind = serde_json::from_str("\"vrfy\"").unwrap();
        assert_eq!(vrfy, TestKind::Vrfy);
    }
}
