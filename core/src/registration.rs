//! Registrations as other crates see them: the role a host may play, whether its registration is
//! in force, and the answer the registry gives a host agent asking for its own role.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a registered host is allowed to do with mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A mail server the campus firewall lets through on port 25.
    MailDirect,
    /// A mail server that receives through the campus gateway (MX rewrite).
    MailViaGateway,
    /// A mail server used only inside the campus network.
    InternalOnly,
    /// Not a mail server: it must not answer SMTP at all.
    NonMail,
}

impl Role {
    /// Every role, in documentation order.
    pub const ALL: [Role; 4] = [
        Role::MailDirect,
        Role::MailViaGateway,
        Role::InternalOnly,
        Role::NonMail,
    ];

    /// The kebab-case name stored, printed and sent over the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::MailDirect => "mail-direct",
            Role::MailViaGateway => "mail-via-gateway",
            Role::InternalOnly => "internal-only",
            Role::NonMail => "non-mail",
        }
    }

    /// Whether the role allows the host to run an SMTP listener.
    pub fn is_mail(self) -> bool {
        !matches!(self, Role::NonMail)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid role {0:?} (expected one of: mail-direct, mail-via-gateway, internal-only, non-mail)"
)]
pub struct InvalidRole(pub String);

impl FromStr for Role {
    type Err = InvalidRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| InvalidRole(s.to_string()))
    }
}

/// Whether a registration is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostStatus {
    /// In force: the role counts for reconciliation and exports.
    Active,
    /// Temporarily withdrawn (e.g. after abuse): treated as unregistered until reactivated.
    Suspended,
    /// The host is gone; the record is kept for history.
    Retired,
}

impl HostStatus {
    /// Every status.
    pub const ALL: [HostStatus; 3] = [
        HostStatus::Active,
        HostStatus::Suspended,
        HostStatus::Retired,
    ];

    /// The kebab-case name stored, printed and sent over the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Active => "active",
            HostStatus::Suspended => "suspended",
            HostStatus::Retired => "retired",
        }
    }
}

impl fmt::Display for HostStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a status name that is not one of [`HostStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid status {0:?} (expected one of: active, suspended, retired)")]
pub struct InvalidHostStatus(pub String);

impl FromStr for HostStatus {
    type Err = InvalidHostStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostStatus::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| InvalidHostStatus(s.to_string()))
    }
}

/// The body of `GET /api/v1/agent/ADDRESS/role`: what the registry tells a host agent about its
/// own registration (the agent hardens only a host whose role is [`Role::NonMail`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleResponse {
    /// The host's address, canonical text form.
    pub address: String,
    /// The registered DNS name.
    pub hostname: String,
    /// What the host may do with mail.
    pub role: Role,
    /// Whether the registration is in force.
    pub status: HostStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for role in Role::ALL {
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        for status in HostStatus::ALL {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
            assert_eq!(status.as_str().parse::<HostStatus>().unwrap(), status);
        }
        assert!(
            "mail"
                .parse::<Role>()
                .unwrap_err()
                .to_string()
                .contains("mail-direct")
        );
    }

    #[test]
    fn the_role_response_reads_what_the_registry_writes() {
        let body = r#"{"address":"192.0.2.1","hostname":"pc.campus.test","role":"non-mail","status":"active"}"#;
        let r: RoleResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.role, Role::NonMail);
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
    }
}
