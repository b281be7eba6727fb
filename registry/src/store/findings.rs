//! Findings with a lifecycle (open → resolved → reopened), keyed by (address, port, kind).

use std::fmt;
use std::str::FromStr;

use relayguard_core::Severity;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::keyset::{self, Arg, Page, PageRequest, Where};
use super::overrides::{Override, OverrideState};
use super::{Store, Tx, get_i64, get_opt_i64, get_opt_str, get_str};
use crate::error::{Error, Result};
pub use crate::reconcile::FindingSource;
use crate::reconcile::{FindingKey, NewFinding};

/// Whether a finding still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingStatus {
    /// Seen in the last sweep (or report, or registry check) that looked.
    Open,
    /// A later look no longer saw it.
    Resolved,
}

impl FindingStatus {
    /// The lower-case name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Resolved => "resolved",
        }
    }
}

impl FromStr for FindingStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "open" => Ok(FindingStatus::Open),
            "resolved" => Ok(FindingStatus::Resolved),
            other => Err(Error::Invalid(format!(
                "invalid finding status {other:?} (expected open or resolved)"
            ))),
        }
    }
}

impl fmt::Display for FindingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a severity name (`info` … `critical`).
pub fn parse_severity(s: &str) -> Result<Severity> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase())).map_err(|_| {
        Error::Invalid(format!(
            "invalid severity {s:?} (expected info, low, medium, high or critical)"
        ))
    })
}

/// One finding as stored, with the contact responsible for the address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRow {
    /// Row number.
    pub id: i64,
    /// Address.
    pub address: String,
    /// Port (0 for findings about the host or registration rather than a listener).
    pub port: i64,
    /// Kind id (a [`relayguard_core::FindingKind`] id).
    pub kind: String,
    /// What produced it.
    pub source: FindingSource,
    /// How urgent.
    pub severity: Severity,
    /// One sentence for a human (may quote attacker-controlled text: escape when rendering).
    pub summary: String,
    /// The proof, as JSON.
    pub evidence: serde_json::Value,
    /// Open or resolved.
    pub status: FindingStatus,
    /// First seen (Unix seconds).
    pub first_seen: i64,
    /// Last seen (Unix seconds).
    pub last_seen: i64,
    /// When it was resolved (Unix seconds).
    pub resolved_at: Option<i64>,
    /// The last sweep that saw it.
    pub last_sweep: Option<i64>,
    /// The address that sweep tested the host from (None for registry and agent findings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tested_from: Option<String>,
    /// The vantages whose latest covering sweep saw it (empty for registry and agent findings,
    /// and for findings recorded before vantages were kept).
    #[serde(default)]
    pub vantages: Vec<String>,
    /// Who answers for the address: the registration's admin, else the network owner.
    pub admin_email: Option<String>,
    /// The override made for it, if any (whether it still holds: [`FindingRow::override_state`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overridden: Option<Override>,
}

impl FindingRow {
    /// The state of its override on `day`; `None` without one.
    pub fn override_state(&self, day: time::Date) -> Option<OverrideState> {
        self.overridden.as_ref().map(|o| o.state(self, day))
    }

    /// Whether an override holds on `day`: the finding is then not mailed, and counted apart.
    pub fn overridden_on(&self, day: time::Date) -> bool {
        self.status == FindingStatus::Open
            && self.override_state(day) == Some(OverrideState::InForce)
    }
}

/// Which findings to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingFilter {
    /// Only this status.
    pub status: Option<FindingStatus>,
    /// Only this severity or worse.
    pub min_severity: Option<Severity>,
    /// Only findings whose responsible contact is this e-mail address (case-insensitive).
    pub admin: Option<String>,
    /// Only this address.
    pub address: Option<String>,
}

pub(crate) const FINDING_COLUMNS: &str = "id, address, port, kind, source, severity, summary, evidence, status, \
    first_seen, last_seen, resolved_at, last_sweep, tested_from, vantages";

/// The source stored as `name` (rows older than the source column's values read as sweeps).
pub(crate) fn source_from_str(name: &str) -> FindingSource {
    match name {
        "registry" => FindingSource::Registry,
        "agent" => FindingSource::Agent,
        _ => FindingSource::Sweep,
    }
}

pub(crate) fn finding_from_row(r: &AnyRow) -> Result<FindingRow> {
    Ok(FindingRow {
        id: get_i64(r, "id")?,
        address: get_str(r, "address")?,
        port: get_i64(r, "port")?,
        kind: get_str(r, "kind")?,
        source: source_from_str(&get_str(r, "source")?),
        severity: parse_severity(&get_str(r, "severity")?)?,
        summary: get_str(r, "summary")?,
        evidence: serde_json::from_str(&get_str(r, "evidence")?).unwrap_or_default(),
        status: get_str(r, "status")?.parse()?,
        first_seen: get_i64(r, "first_seen")?,
        last_seen: get_i64(r, "last_seen")?,
        resolved_at: get_opt_i64(r, "resolved_at")?,
        last_sweep: get_opt_i64(r, "last_sweep")?,
        tested_from: get_opt_str(r, "tested_from")?,
        vantages: super::vantages::parse_list(&get_str(r, "vantages")?),
        admin_email: None,
        overridden: None,
    })
}

/// Opens the finding, or refreshes it (reopening a resolved one). Returns true when it was not
/// open before, i.e. it counts as newly opened.
pub(crate) async fn upsert_open(tx: &mut Tx, f: &NewFinding, now: i64) -> Result<bool> {
    let prior = sqlx::query(
        "SELECT id, status FROM findings WHERE address = $1 AND port = $2 AND kind = $3",
    )
    .bind(f.key.address.clone())
    .bind(f.key.port)
    .bind(f.key.kind.id())
    .fetch_optional(&mut **tx)
    .await?;
    let evidence = f.evidence.clone();
    let vantages = serde_json::to_string(&f.vantages).unwrap_or_else(|_| "[]".into());
    match prior {
        None => {
            sqlx::query(
                "INSERT INTO findings (address, port, kind, source, severity, severity_rank, summary, evidence, status, \
                 first_seen, last_seen, resolved_at, last_sweep, tested_from, vantages) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $9, NULL, $10, $11, $12)",
            )
            .bind(f.key.address.clone())
            .bind(f.key.port)
            .bind(f.key.kind.id())
            .bind(f.source.as_str())
            .bind(f.severity.as_str())
            .bind(f.severity.rank())
            .bind(f.summary.clone())
            .bind(evidence)
            .bind(now)
            .bind(f.sweep)
            .bind(f.tested_from.clone())
            .bind(vantages)
            .execute(&mut **tx)
            .await?;
            Ok(true)
        }
        Some(row) => {
            let id = get_i64(&row, "id")?;
            let was_open = get_str(&row, "status")? == "open";
            sqlx::query(
                "UPDATE findings SET source = $1, severity = $2, severity_rank = $3, summary = $4, evidence = $5, \
                 status = 'open', last_seen = $6, resolved_at = NULL, last_sweep = COALESCE($7, last_sweep), \
                 tested_from = COALESCE($8, tested_from), vantages = $9 WHERE id = $10",
            )
            .bind(f.source.as_str())
            .bind(f.severity.as_str())
            .bind(f.severity.rank())
            .bind(f.summary.clone())
            .bind(evidence)
            .bind(now)
            .bind(f.sweep)
            .bind(f.tested_from.clone())
            .bind(vantages)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            Ok(!was_open)
        }
    }
}

/// Resolves the open finding with this key, if there is one. Returns whether one was resolved.
pub(crate) async fn resolve_key(tx: &mut Tx, key: &FindingKey, now: i64) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE findings SET status = 'resolved', resolved_at = $1 \
         WHERE address = $2 AND port = $3 AND kind = $4 AND status = 'open'",
    )
    .bind(now)
    .bind(key.address.clone())
    .bind(key.port)
    .bind(key.kind.id())
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0)
}

impl Store {
    /// One finding by its number, with its override.
    pub async fn finding(&self, id: i64) -> Result<Option<FindingRow>> {
        let sql = format!("SELECT {FINDING_COLUMNS} FROM findings WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(mut f) = row.as_ref().map(finding_from_row).transpose()? else {
            return Ok(None);
        };
        f.overridden = super::overrides::override_of(self, id).await?;
        Ok(Some(f))
    }

    /// Findings matching `filter`, most severe first, each with its responsible contact.
    pub async fn list_findings(&self, filter: &FindingFilter) -> Result<Vec<FindingRow>> {
        // Status and severity narrow the query in SQL; the contact is derived (registration,
        // else longest-prefix network), so the admin filter runs afterwards.
        let mut sql = format!("SELECT {FINDING_COLUMNS} FROM findings WHERE severity_rank >= $1");
        if filter.status.is_some() {
            sql.push_str(" AND status = $2");
        }
        if filter.address.is_some() {
            sql.push_str(if filter.status.is_some() {
                " AND address = $3"
            } else {
                " AND address = $2"
            });
        }
        sql.push_str(" ORDER BY severity_rank DESC, address, port, kind");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.min_severity.map(Severity::rank).unwrap_or(0));
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        if let Some(a) = &filter.address {
            q = q.bind(crate::model::parse_address(a)?);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out: Vec<FindingRow> = rows.iter().map(finding_from_row).collect::<Result<_>>()?;
        let hosts = self.list_hosts().await?;
        let nets = self.list_networks().await?;
        let mut overrides: std::collections::HashMap<i64, Override> =
            super::overrides::all_overrides(self)
                .await?
                .into_iter()
                .collect();
        let blocks = super::networks::Blocks::new(&nets);
        let registered: std::collections::HashMap<&str, &str> = hosts
            .iter()
            .map(|h| (h.address.as_str(), h.admin_email.as_str()))
            .collect();
        for f in &mut out {
            f.overridden = overrides.remove(&f.id);
            f.admin_email = registered
                .get(f.address.as_str())
                .map(|e| (*e).to_string())
                .or_else(|| blocks.owner_of(&f.address));
        }
        if let Some(admin) = &filter.admin {
            let admin = admin.trim();
            out.retain(|f| {
                f.admin_email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(admin))
            });
        }
        Ok(out)
    }
}

/// Which findings one page of the findings list shows: the filter every caller knows, narrowed
/// by kind and source (only the lists offer those).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingListFilter {
    /// Status, severity, contact and address.
    pub base: FindingFilter,
    /// Only this kind id.
    pub kind: Option<String>,
    /// Only what this source produced.
    pub source: Option<FindingSource>,
}

/// The SQL conditions of a findings list filter (all but the contact, which is derived).
fn finding_where(filter: &FindingListFilter) -> Result<Where> {
    let base = &filter.base;
    let mut w = Where::default();
    w.and(
        "severity_rank >= ?",
        [Arg::Int(base.min_severity.map(Severity::rank).unwrap_or(0))],
    );
    if let Some(s) = base.status {
        w.and("status = ?", [Arg::Text(s.as_str().into())]);
    }
    if let Some(a) = &base.address {
        w.and("address = ?", [Arg::Text(crate::model::parse_address(a)?)]);
    }
    if let Some(k) = &filter.kind {
        w.and("kind = ?", [Arg::Text(k.clone())]);
    }
    if let Some(s) = filter.source {
        w.and("source = ?", [Arg::Text(s.as_str().into())]);
    }
    Ok(w)
}

/// How long the registry-derived findings a list shows may be old (seconds). They change with
/// the date (a review falls due) and with registrations, whose writes refresh them at once.
pub const READ_REFRESH_SECS: i64 = 60;

/// Rows read per round when the contact filter (applied after the query) throws some away.
const CONTACT_SCAN_BATCH: i64 = 5000;

/// Most values the contact pre-filter binds before the walk reads every row instead.
const CONTACT_TERMS_MAX: usize = 512;

/// A condition met by every finding whose contact is `admin`: the address is registered to
/// them, or lies in an IPv4 block they own (as text: a block is a set of dotted prefixes, or
/// of whole addresses past a /24). It is a superset (a more specific block of someone else's,
/// or a registration to someone else, still passes), so the exact contact check follows; it
/// lets the database skip the other contacts' rows, which the list would otherwise read and
/// throw away. `None` when it cannot be written this way (an IPv6 block, whose addresses are
/// compressed text, or a /0) or would bind more than [`CONTACT_TERMS_MAX`] values.
fn contact_prefilter(
    admin: &str,
    registered: &std::collections::HashMap<String, String>,
    nets: &[crate::model::Network],
) -> Option<(String, Vec<Arg>)> {
    use ipnet::IpNet;
    let mut exact: Vec<String> = registered
        .iter()
        .filter(|(_, email)| email.eq_ignore_ascii_case(admin))
        .map(|(address, _)| address.clone())
        .collect();
    // Text prefixes by their length: `substr(address, 1, len) IN (…)` per length.
    let mut prefixes: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
    let mut terms = exact.len();
    for net in nets
        .iter()
        .filter(|n| n.owner_email.eq_ignore_ascii_case(admin))
    {
        let IpNet::V4(block) = net.cidr.parse::<IpNet>().ok()? else {
            return None;
        };
        let len = block.prefix_len();
        if len == 0 {
            return None;
        }
        // Widen to whole octets: a /20 is sixteen /24s, a /26 is sixty-four addresses.
        let aligned = len.div_ceil(8) * 8;
        terms += 1usize << (aligned - len);
        if terms > CONTACT_TERMS_MAX {
            return None;
        }
        for part in block.subnets(aligned).ok()? {
            let octets = part.network().octets();
            if aligned == 32 {
                exact.push(part.network().to_string());
            } else {
                let mut text = octets[..usize::from(aligned / 8)]
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(".");
                text.push('.');
                prefixes.entry(text.len()).or_default().push(text);
            }
        }
    }
    if terms > CONTACT_TERMS_MAX {
        return None;
    }
    let marks = |n: usize| vec!["?"; n].join(", ");
    let mut alternatives = Vec::new();
    let mut args = Vec::new();
    if !exact.is_empty() {
        alternatives.push(format!("address IN ({})", marks(exact.len())));
        args.extend(exact.into_iter().map(Arg::Text));
    }
    for (len, texts) in prefixes {
        alternatives.push(format!(
            "substr(address, 1, {len}) IN ({})",
            marks(texts.len())
        ));
        args.extend(texts.into_iter().map(Arg::Text));
    }
    if alternatives.is_empty() {
        // Neither a registration nor a block: no finding has this contact.
        alternatives.push("1 = 0".to_string());
    }
    Some((format!("({})", alternatives.join(" OR ")), args))
}

impl Store {
    /// Refreshes the registry-derived findings before a page or list shows findings, at most
    /// once per [`READ_REFRESH_SECS`] per store handle: the refresh reads every open finding
    /// in a write transaction, too much to repeat on every page view of a large registry.
    pub async fn refresh_registrations_for_reading(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let now = crate::model::now_unix();
        let last = self.read_refresh.load(Ordering::Relaxed);
        let same_day = last.div_euclid(86_400) == now.div_euclid(86_400);
        if same_day && now.saturating_sub(last) < READ_REFRESH_SECS {
            return Ok(());
        }
        self.refresh_registrations().await?;
        self.read_refresh.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// One page of findings matching `filter`, most severe first and newest first within a
    /// severity (keyset on `(severity_rank, id)`), each with its contact and override.
    pub async fn findings_page(
        &self,
        filter: &FindingListFilter,
        req: &PageRequest,
    ) -> Result<Page<FindingRow>> {
        let scope = format!(
            "findings {}",
            serde_json::to_string(filter).unwrap_or_default()
        );
        let mut after = match &req.after {
            Some(c) => {
                let k = keyset::decode(&scope, c, 2)?;
                Some((keyset::int(&k[0])?, keyset::int(&k[1])?))
            }
            None => None,
        };
        let base = &filter.base;
        let nets = self.list_networks().await?;
        let blocks = super::networks::Blocks::new(&nets);
        let mut out = match base.admin.as_deref() {
            None => {
                let mut w = finding_where(filter)?;
                if let Some((rank, id)) = after {
                    w.and(
                        "(severity_rank, id) < (?, ?)",
                        [Arg::Int(rank), Arg::Int(id)],
                    );
                }
                let sql = format!("SELECT {FINDING_COLUMNS} FROM findings");
                w.query(&sql, "severity_rank DESC, id DESC", req.limit + 1)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(finding_from_row)
                    .collect::<Result<Vec<_>>>()?
            }
            Some(admin) => {
                // The contact is derived (registration, else the longest-prefix network), so
                // the query only narrows to the contact's registrations and blocks (see
                // `contact_prefilter`); the exact check runs on batches of (id, address) after
                // it, and only the rows it keeps are read in full. The keyset walk stays exact.
                let admin = admin.trim();
                let contacts: std::collections::HashMap<String, String> =
                    sqlx::query("SELECT address, admin_email FROM hosts")
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(|r| Ok((get_str(r, "address")?, get_str(r, "admin_email")?)))
                        .collect::<Result<_>>()?;
                let prefilter = contact_prefilter(admin, &contacts, &nets);
                let mut ids = Vec::new();
                loop {
                    let mut w = finding_where(filter)?;
                    if let Some((sql, args)) = &prefilter {
                        w.and(sql, args.iter().cloned());
                    }
                    if let Some((rank, id)) = after {
                        w.and(
                            "(severity_rank, id) < (?, ?)",
                            [Arg::Int(rank), Arg::Int(id)],
                        );
                    }
                    let rows = w
                        .query(
                            "SELECT id, address, severity_rank FROM findings",
                            "severity_rank DESC, id DESC",
                            CONTACT_SCAN_BATCH,
                        )
                        .fetch_all(&self.pool)
                        .await?;
                    for r in &rows {
                        let (id, address) = (get_i64(r, "id")?, get_str(r, "address")?);
                        after = Some((get_i64(r, "severity_rank")?, id));
                        let contact = contacts
                            .get(&address)
                            .cloned()
                            .or_else(|| blocks.owner_of(&address));
                        if contact.is_some_and(|c| c.eq_ignore_ascii_case(admin)) {
                            ids.push(id);
                            if ids.len() as i64 > req.limit {
                                break;
                            }
                        }
                    }
                    if ids.len() as i64 > req.limit || (rows.len() as i64) < CONTACT_SCAN_BATCH {
                        break;
                    }
                }
                self.findings_by_ids(&ids).await?
            }
        };
        self.attach_contacts(&mut out, &nets).await?;
        let next = if out.len() as i64 > req.limit {
            out.truncate(req.limit as usize);
            out.last()
                .map(|f| keyset::encode(&scope, &[f.severity.rank().into(), f.id.into()]))
        } else {
            None
        };
        Ok(Page { rows: out, next })
    }

    /// The findings numbered `ids`, in the findings list's order.
    async fn findings_by_ids(&self, ids: &[i64]) -> Result<Vec<FindingRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT {FINDING_COLUMNS} FROM findings WHERE id IN ({marks})");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(finding_from_row(&r)?);
            }
        }
        out.sort_by_key(|f| std::cmp::Reverse((f.severity.rank(), f.id)));
        Ok(out)
    }

    /// Fills in each finding's contact and override, reading only the rows these findings need.
    pub(crate) async fn attach_contacts(
        &self,
        rows: &mut [FindingRow],
        nets: &[crate::model::Network],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let blocks = super::networks::Blocks::new(nets);
        let mut addresses: Vec<String> = rows.iter().map(|f| f.address.clone()).collect();
        addresses.sort();
        addresses.dedup();
        let mut contacts = std::collections::HashMap::new();
        for chunk in addresses.chunks(500) {
            let marks = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT address, admin_email FROM hosts WHERE address IN ({marks})");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(a.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                contacts.insert(get_str(&r, "address")?, get_str(&r, "admin_email")?);
            }
        }
        let ids: Vec<i64> = rows.iter().map(|f| f.id).collect();
        let mut overrides: std::collections::HashMap<i64, Override> =
            super::overrides::overrides_of(self, &ids)
                .await?
                .into_iter()
                .collect();
        for f in rows.iter_mut() {
            f.overridden = overrides.remove(&f.id);
            f.admin_email = contacts
                .get(&f.address)
                .cloned()
                .or_else(|| blocks.owner_of(&f.address));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Network;

    fn net(cidr: &str, owner: &str) -> Network {
        Network {
            cidr: cidr.into(),
            owner_name: String::new(),
            owner_email: owner.into(),
            note: String::new(),
            owner_lang: None,
        }
    }

    fn texts(args: &[Arg]) -> Vec<String> {
        args.iter()
            .map(|a| match a {
                Arg::Text(t) => t.clone(),
                Arg::Int(i) => i.to_string(),
            })
            .collect()
    }

    #[test]
    fn the_contact_prefilter_writes_blocks_as_dotted_prefixes() {
        let registered = [("192.0.2.9".to_string(), "A@x".to_string())].into();
        let nets = [
            net("10.5.0.0/22", "a@x"),
            net("10.9.0.0/16", "a@x"),
            net("10.7.8.252/30", "a@X"),
            net("10.6.0.0/16", "b@x"),
        ];
        let (sql, args) = contact_prefilter("a@x", &registered, &nets).unwrap();
        assert_eq!(
            sql,
            "(address IN (?, ?, ?, ?, ?) OR substr(address, 1, 5) IN (?) \
             OR substr(address, 1, 7) IN (?, ?, ?, ?))"
        );
        assert_eq!(
            texts(&args),
            [
                "192.0.2.9",
                "10.7.8.252",
                "10.7.8.253",
                "10.7.8.254",
                "10.7.8.255",
                "10.9.",
                "10.5.0.",
                "10.5.1.",
                "10.5.2.",
                "10.5.3."
            ]
        );
        // Nothing to answer for: no row can match.
        let (none, args) = contact_prefilter("c@x", &registered, &nets).unwrap();
        assert_eq!((none.as_str(), args.len()), ("(1 = 0)", 0));
        // An IPv6 block, a /0 or too many values: every row is read and checked instead.
        assert!(contact_prefilter("a@x", &registered, &[net("2001:db8::/48", "a@x")]).is_none());
        assert!(contact_prefilter("a@x", &registered, &[net("0.0.0.0/0", "a@x")]).is_none());
        assert!(contact_prefilter("a@x", &registered, &[net("10.0.0.0/9", "a@x")]).is_some());
        assert!(
            contact_prefilter(
                "a@x",
                &registered,
                &[
                    net("10.0.0.0/9", "a@x"),
                    net("11.0.0.0/9", "a@x"),
                    net("12.0.0.0/9", "a@x"),
                    net("13.0.0.0/9", "a@x"),
                    net("14.0.0.0/9", "a@x")
                ]
            )
            .is_none()
        );
    }
}
