//! The registry client: the host's role, and report upload through a spool so nothing is lost.
//!
//! Every report is written to the spool directory first and deleted only once the registry has
//! acknowledged it (201 stored, or 200 duplicate: the spool file name is the idempotency key, so
//! a report whose acknowledgement was lost is not stored twice). When the registry cannot be
//! reached, the reports stay and go with the next run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use relayguard_core::RoleResponse;
use reqwest::StatusCode;
use reqwest::blocking::Client;

use crate::error::{AgentError, Result};

/// How often one request is tried when the registry does not answer or answers 5xx.
const ATTEMPTS: u32 = 3;

/// A connection to the registry for one host.
pub struct RegistryClient {
    base: String,
    address: String,
    token: String,
    http: Client,
}

/// What became of the spooled reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SpoolOutcome {
    /// Reports the registry acknowledged (and that were removed from the spool).
    pub sent: usize,
    /// Reports the registry refused as malformed, moved to `rejected/` in the spool.
    pub rejected: usize,
    /// Reports still waiting for the next run.
    pub remaining: usize,
}

impl RegistryClient {
    /// A client for the host registered as `address`, authenticating with its agent token.
    /// `ca` pins the registry's certificate authority instead of the system trust store.
    pub fn new(base: &str, address: &str, token: &str, ca: Option<&Path>) -> Result<Self> {
        let mut builder = Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("relayguard-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).map_err(|e| AgentError::io(ca, e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                AgentError::Registry(format!("{}: no usable PEM certificate: {e}", ca.display()))
            })?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| AgentError::Registry(format!("setting up HTTPS: {e}")))?;
        Ok(RegistryClient {
            base: base.trim_end_matches('/').to_string(),
            address: address.to_string(),
            token: token.to_string(),
            http,
        })
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/api/v1/agent/{}/{tail}", self.base, self.address)
    }

    /// Sends a request, retrying with backoff while the registry is unreachable or failing.
    fn send(
        &self,
        what: &str,
        request: impl Fn() -> reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response> {
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            let why = match request().bearer_auth(&self.token).send() {
                Ok(r) if !r.status().is_server_error() => return Ok(r),
                Ok(r) => r.status().to_string(),
                Err(e) => e.to_string(),
            };
            if attempt == ATTEMPTS {
                return Err(AgentError::Registry(format!(
                    "{what}: no answer from {} after {ATTEMPTS} attempts: {why}",
                    self.base
                )));
            }
            std::thread::sleep(delay);
            delay *= 2;
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// The host's registration as the registry gives it: its role (`non-mail`, `mail-direct`,
    /// …) and whether the registration is in force.
    pub fn role(&self) -> Result<RoleResponse> {
        let response = self.send("fetching the role", || self.http.get(self.url("role")))?;
        let status = response.status();
        let body = response.text().unwrap_or_default();
        if !status.is_success() {
            return Err(AgentError::Registry(format!(
                "fetching the role: {status}: {}",
                body.trim()
            )));
        }
        serde_json::from_str(&body).map_err(|e| {
            AgentError::Registry(format!("unexpected answer from the registry ({e}): {body}"))
        })
    }

    /// Sends every spooled report, oldest first; stops at the first one that cannot be delivered.
    pub fn flush_spool(&self, spool: &Path) -> Result<SpoolOutcome> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(spool) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(AgentError::io(spool, e)),
        };
        // Names are report-<unix time>-<pid>.json: sorting sends the oldest first.
        files.sort();
        let mut outcome = SpoolOutcome::default();
        for (i, path) in files.iter().enumerate() {
            let body = std::fs::read(path).map_err(|e| AgentError::io(path, e))?;
            let key = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("report")
                .to_string();
            let sent = self.send("posting a report", || {
                self.http
                    .post(self.url("reports"))
                    .header("Idempotency-Key", key.as_str())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            });
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    outcome.remaining = files.len() - i;
                    return Err(AgentError::Registry(format!(
                        "{e}; {} report(s) kept in {} for the next run",
                        outcome.remaining,
                        spool.display()
                    )));
                }
            };
            match response.status() {
                StatusCode::CREATED | StatusCode::OK => {
                    std::fs::remove_file(path).map_err(|e| AgentError::io(path, e))?;
                    outcome.sent += 1;
                }
                StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::CONFLICT => {
                    // The registry will never take this one: keep it for a person, not the queue.
                    let rejected = spool.join("rejected");
                    std::fs::create_dir_all(&rejected).map_err(|e| AgentError::io(&rejected, e))?;
                    let target = rejected.join(path.file_name().unwrap_or_default());
                    std::fs::rename(path, &target).map_err(|e| AgentError::io(path, e))?;
                    outcome.rejected += 1;
                }
                status => {
                    outcome.remaining = files.len() - i;
                    let body = response.text().unwrap_or_default();
                    return Err(AgentError::Registry(format!(
                        "posting a report: {status}: {}; {} report(s) kept in {}",
                        body.trim(),
                        outcome.remaining,
                        spool.display()
                    )));
                }
            }
        }
        Ok(outcome)
    }
}
