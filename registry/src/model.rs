//! Plain data of the registry (registrations, networks) and the validation of untrusted input.
//!
//! Everything coming from a CSV file, a CLI flag or an HTTP body goes through the `parse_*`
//! functions here, so the store only ever sees canonical values.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};

use crate::error::{Error, Result};

use relayguard_core::SweepMeta;
pub use relayguard_core::registration::{HostStatus, Role};

/// The language mails to an administrator are written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Japanese.
    Ja,
}

impl Lang {
    /// The code stored and shown: `en` or `ja`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }
}

impl std::str::FromStr for Lang {
    type Err = Error;
    fn from_str(s: &str) -> Result<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" => Ok(Lang::En),
            "ja" => Ok(Lang::Ja),
            other => Err(Error::Invalid(format!(
                "unknown language {other:?} (use en or ja)"
            ))),
        }
    }
}

/// An optional language as given by a user: empty means none.
fn parse_lang(s: Option<&str>) -> Result<Option<Lang>> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(code) => code.parse().map(Some),
    }
}

/// Review interval when none is given (registrations are re-confirmed periodically).
pub const DEFAULT_REVIEW_MONTHS: i64 = 6;

/// A registration: who may run what on one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The address, canonical text form (the key).
    pub address: String,
    /// The host's DNS name.
    pub hostname: String,
    /// What the host may do with mail.
    pub role: Role,
    /// Who administers the host.
    pub admin_name: String,
    /// Where findings about the host are sent.
    pub admin_email: String,
    /// Free text.
    pub note: String,
    /// Day the registration was made (YYYY-MM-DD).
    pub registered_on: String,
    /// Day it was last confirmed (YYYY-MM-DD).
    pub reviewed_on: String,
    /// Months after `reviewed_on` when a new review is due.
    pub review_months: i64,
    /// Whether the registration is in force.
    pub status: HostStatus,
    /// The language the administrator is written to in (the notify run's default when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_lang: Option<Lang>,
}

impl Host {
    /// The day the next review is due.
    pub fn review_due(&self) -> Result<Date> {
        Ok(add_months(
            parse_date(&self.reviewed_on)?,
            self.review_months,
        ))
    }

    /// Whether the review is overdue on `today`.
    pub fn review_overdue(&self, today: Date) -> bool {
        self.review_due().map(|d| d < today).unwrap_or(false)
    }
}

/// Fields of a registration as given by a user; optional ones get defaults on insert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostInput {
    /// Address (IPv4 or IPv6).
    pub address: String,
    /// DNS name.
    pub hostname: String,
    /// Role name.
    pub role: String,
    /// Administrator's name.
    pub admin_name: String,
    /// Administrator's e-mail address.
    pub admin_email: String,
    /// Free text.
    #[serde(default)]
    pub note: Option<String>,
    /// YYYY-MM-DD, default today.
    #[serde(default)]
    pub registered_on: Option<String>,
    /// YYYY-MM-DD, default `registered_on`.
    #[serde(default)]
    pub reviewed_on: Option<String>,
    /// Default [`DEFAULT_REVIEW_MONTHS`].
    #[serde(default)]
    pub review_months: Option<i64>,
    /// Default `active`.
    #[serde(default)]
    pub status: Option<String>,
    /// `en` or `ja`; default none (the notify run's language).
    #[serde(default)]
    pub admin_lang: Option<String>,
}

impl HostInput {
    /// Validates every field and fills in defaults.
    pub fn validate(&self, today: Date) -> Result<Host> {
        let registered_on = match &self.registered_on {
            Some(d) if !d.trim().is_empty() => format_date(parse_date(d)?),
            _ => format_date(today),
        };
        let reviewed_on = match &self.reviewed_on {
            Some(d) if !d.trim().is_empty() => format_date(parse_date(d)?),
            _ => registered_on.clone(),
        };
        Ok(Host {
            address: parse_address(&self.address)?,
            hostname: parse_hostname(&self.hostname)?,
            role: self.role.parse()?,
            admin_name: parse_text("admin name", &self.admin_name, true)?,
            admin_email: parse_email(&self.admin_email)?,
            note: parse_text("note", self.note.as_deref().unwrap_or(""), false)?,
            registered_on,
            reviewed_on,
            review_months: parse_review_months(
                self.review_months.unwrap_or(DEFAULT_REVIEW_MONTHS),
            )?,
            status: match &self.status {
                Some(s) if !s.trim().is_empty() => s.parse()?,
                _ => HostStatus::Active,
            },
            admin_lang: parse_lang(self.admin_lang.as_deref())?,
        })
    }
}

/// A partial update of a registration: only the given fields change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostUpdate {
    /// New DNS name.
    pub hostname: Option<String>,
    /// New role.
    pub role: Option<String>,
    /// New administrator's name.
    pub admin_name: Option<String>,
    /// New administrator's e-mail.
    pub admin_email: Option<String>,
    /// New note.
    pub note: Option<String>,
    /// New review date (YYYY-MM-DD); see also `reviewed`.
    pub reviewed_on: Option<String>,
    /// Mark as reviewed today.
    #[serde(default)]
    pub reviewed: bool,
    /// New review interval.
    pub review_months: Option<i64>,
    /// New status.
    pub status: Option<String>,
    /// New language (`en`, `ja`; empty clears it).
    pub admin_lang: Option<String>,
}

impl HostUpdate {
    /// Applies the update to `host`, validating each given field.
    pub fn apply(&self, mut host: Host, today: Date) -> Result<Host> {
        if let Some(v) = &self.hostname {
            host.hostname = parse_hostname(v)?;
        }
        if let Some(v) = &self.role {
            host.role = v.parse()?;
        }
        if let Some(v) = &self.admin_name {
            host.admin_name = parse_text("admin name", v, true)?;
        }
        if let Some(v) = &self.admin_email {
            host.admin_email = parse_email(v)?;
        }
        if let Some(v) = &self.note {
            host.note = parse_text("note", v, false)?;
        }
        if let Some(v) = &self.reviewed_on {
            host.reviewed_on = format_date(parse_date(v)?);
        }
        if self.reviewed {
            host.reviewed_on = format_date(today);
        }
        if let Some(v) = self.review_months {
            host.review_months = parse_review_months(v)?;
        }
        if let Some(v) = &self.status {
            host.status = v.parse()?;
        }
        if let Some(v) = &self.admin_lang {
            host.admin_lang = parse_lang(Some(v))?;
        }
        Ok(host)
    }
}

/// A network block and who answers for hosts in it that have no registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The block in canonical CIDR form (host bits cleared).
    pub cidr: String,
    /// Owner's name.
    pub owner_name: String,
    /// Owner's e-mail.
    pub owner_email: String,
    /// Free text.
    #[serde(default)]
    pub note: String,
    /// The language the owner is written to in (the notify run's default when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_lang: Option<Lang>,
}

impl Network {
    /// Validates and canonicalises every field.
    pub fn validate(self) -> Result<Network> {
        Ok(Network {
            cidr: parse_cidr(&self.cidr)?.to_string(),
            owner_name: parse_text("owner name", &self.owner_name, true)?,
            owner_email: parse_email(&self.owner_email)?,
            note: parse_text("note", &self.note, false)?,
            owner_lang: self.owner_lang,
        })
    }
}

/// Parses an IPv4 or IPv6 address into its canonical text form (the registry key).
pub fn parse_address(s: &str) -> Result<String> {
    let t = s.trim();
    t.parse::<IpAddr>()
        .map(|a| canonical_ip(a).to_string())
        .map_err(|_| Error::Invalid(format!("invalid IP address {t:?}")))
}

/// IPv4-mapped IPv6 addresses name the same host as the IPv4 address: key them the same way.
pub fn canonical_ip(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    }
}

/// Parses a CIDR block (a bare address is a /32 or /128); host bits are cleared.
pub fn parse_cidr(s: &str) -> Result<IpNet> {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    if let Ok(a) = t.parse::<IpAddr>() {
        return Ok(IpNet::from(a));
    }
    Err(Error::Invalid(format!(
        "invalid CIDR block {t:?} (expected e.g. 192.0.2.0/24 or 2001:db8::/48)"
    )))
}

/// Checks an e-mail address enough to catch typos and injection (not full RFC 5322).
pub fn parse_email(s: &str) -> Result<String> {
    let t = s.trim();
    let bad = || Error::Invalid(format!("invalid e-mail address {t:?}"));
    if t.len() > 254
        || t.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c))
    {
        return Err(bad());
    }
    let (local, domain) = t.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok(t.to_string())
}

/// Checks a DNS host name (letters, digits, `-`, `_`, dots; at most 253 characters).
pub fn parse_hostname(s: &str) -> Result<String> {
    let t = s.trim().trim_end_matches('.');
    let ok = !t.is_empty()
        && t.len() <= 253
        && t.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(Error::Invalid(format!("invalid host name {s:?}")))
    }
}

/// Checks free text: required or not, bounded length, no control characters except tab.
pub fn parse_text(what: &str, s: &str, required: bool) -> Result<String> {
    let t = s.trim();
    if required && t.is_empty() {
        return Err(Error::Invalid(format!("{what} must not be empty")));
    }
    if t.chars().count() > 1000 {
        return Err(Error::Invalid(format!(
            "{what} is longer than 1000 characters"
        )));
    }
    if t.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::Invalid(format!(
            "{what} contains control characters"
        )));
    }
    Ok(t.to_string())
}

/// Checks the description of a sweep a remote client sent.
pub fn validate_sweep_meta(meta: &SweepMeta) -> Result<()> {
    parse_text("vantage", &meta.vantage, true)?;
    if meta.finished_at < meta.started_at {
        return Err(Error::Invalid(
            "sweep finished_at is before started_at".into(),
        ));
    }
    if meta.targets.len() > 100_000 || meta.targets.iter().any(|t| t.len() > 255) {
        return Err(Error::Invalid(
            "too many sweep targets, or a target longer than 255 characters".into(),
        ));
    }
    if meta.ports.contains(&0) {
        return Err(Error::Invalid("port 0 is not a valid sweep port".into()));
    }
    Ok(())
}

fn parse_review_months(m: i64) -> Result<i64> {
    if (1..=120).contains(&m) {
        Ok(m)
    } else {
        Err(Error::Invalid(format!(
            "review interval must be 1 to 120 months, got {m}"
        )))
    }
}

/// Parses a YYYY-MM-DD date.
pub fn parse_date(s: &str) -> Result<Date> {
    let t = s.trim();
    Date::parse(t, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| Error::Invalid(format!("invalid date {t:?} (expected YYYY-MM-DD)")))
}

/// Formats a date as YYYY-MM-DD.
pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Adds calendar months, clamping the day to the end of a shorter month (Aug 31 + 6 = Feb 28/29).
pub fn add_months(d: Date, months: i64) -> Date {
    let total = i64::from(d.year()) * 12 + i64::from(u8::from(d.month())) - 1 + months;
    let year = i32::try_from(total.div_euclid(12))
        .unwrap_or(i32::MAX)
        .clamp(-9999, 9999);
    let month = Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(Month::December);
    let day = d.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(d)
}

/// Today in UTC.
pub fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// Now as seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn months_clamp_to_month_end() {
        assert_eq!(add_months(date!(2026 - 08 - 31), 6), date!(2027 - 02 - 28));
        assert_eq!(add_months(date!(2026 - 01 - 15), 6), date!(2026 - 07 - 15));
        assert_eq!(add_months(date!(2026 - 12 - 01), 1), date!(2027 - 01 - 01));
    }

    #[test]
    fn addresses_are_canonical() {
        assert_eq!(parse_address(" 2001:DB8::0001 ").unwrap(), "2001:db8::1");
        assert_eq!(parse_address("::ffff:192.0.2.1").unwrap(), "192.0.2.1");
        assert!(
            parse_address("192.0.2.256")
                .unwrap_err()
                .to_string()
                .contains("invalid IP address")
        );
    }

    #[test]
    fn emails_and_roles() {
        assert!(parse_email("a@b.example").is_ok());
        for bad in ["", "a", "a@b", "a@@b.c", "a b@c.d", "a@.c", "<a@b.c>"] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
        assert!(
            "mail"
                .parse::<Role>()
                .map_err(Error::from)
                .unwrap_err()
                .to_string()
                .contains("mail-direct")
        );
        assert_eq!(
            parse_cidr("10.1.2.3/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
    }
}

/// The thresholds a registered mail server's queue health is judged by: at or over
/// `queue_backlog_threshold` queued messages `mail-queue-backlog` opens, at or over
/// `bounce_burst_threshold` bounces `bounce-burst` opens. Per host, with registry defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthThresholds {
    /// Queued messages from which `mail-queue-backlog` opens.
    pub queue_backlog_threshold: u64,
    /// Bounces (queued, or generated since the previous report) from which `bounce-burst` opens.
    pub bounce_burst_threshold: u64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            queue_backlog_threshold: crate::reconcile::QUEUE_BACKLOG_MESSAGES,
            bounce_burst_threshold: crate::reconcile::BOUNCE_BURST_MESSAGES,
        }
    }
}
