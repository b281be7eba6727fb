//! The paged, filtered lists (hosts, findings, sweeps, agent reports) as the API and the pages
//! both read them: one set of query-string names, one parser, one CSV writer.
//!
//! Query strings: every list takes `after` (the cursor of the previous page), `limit` (1–1000)
//! and `format` (`json`, `html` or `csv`), plus its own filters (see [`Params`]). An unknown
//! name, a bad value or a cursor made for another filter is a 400 with a message that says so.
//! CSV walks every matching row, page by page, as the body streams out.

use std::collections::HashMap;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use relayguard_core::FindingKind;

use crate::error::{Error, Result};
use crate::model::{Host, parse_address, parse_date};
use crate::store::{
    AgentReportRow, FindingListFilter, FindingRow, HostFilter, Page, PageRequest, ReportFilter,
    Store, SweepFilter, SweepRow, parse_severity,
};

/// How a list is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The caller's own default (JSON for the API, HTML for pages).
    Default,
    /// Every matching row as CSV.
    Csv,
}

/// A list request's query string, checked against the names the list knows.
#[derive(Debug, Clone)]
pub struct Params {
    q: HashMap<String, String>,
    /// The page to read.
    pub page: PageRequest,
    /// How to answer.
    pub format: Format,
}

/// Rows per page the CSV writer reads at a time.
const CSV_BATCH: i64 = 1000;

impl Params {
    /// Checks `q` for a list whose filters are `filters` (`after`, `limit`, `format` are always
    /// known); `csv` forces CSV (the `.csv` routes).
    pub fn parse(q: HashMap<String, String>, filters: &[&str], csv: bool) -> Result<Params> {
        let common = ["after", "limit", "format"];
        if let Some(k) = q
            .keys()
            .find(|k| !filters.contains(&k.as_str()) && !common.contains(&k.as_str()))
        {
            return Err(Error::Invalid(format!(
                "unknown query parameter {k:?} (known: {})",
                filters
                    .iter()
                    .chain(common.iter())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let format = match q.get("format").map(|f| f.trim()) {
            _ if csv => Format::Csv,
            None | Some("" | "json" | "html") => Format::Default,
            Some("csv") => Format::Csv,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "invalid format {other:?} (expected json, html or csv)"
                )));
            }
        };
        let page = PageRequest::parse(
            q.get("after").map(String::as_str),
            q.get("limit").map(String::as_str),
        )?;
        Ok(Params { q, page, format })
    }

    /// A filter's value, trimmed; `None` when absent or empty.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The query string for the page after this one (the same filters, `after=next`).
    pub fn next_query(&self, next: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .q
            .iter()
            .filter(|(k, v)| k.as_str() != "after" && !v.trim().is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.sort();
        pairs.push(("after", next));
        encode_query(&pairs)
    }

    /// The query string of the same filters as CSV (from the first row, not this page).
    pub fn csv_query(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .q
            .iter()
            .filter(|(k, v)| {
                !["after", "limit", "format"].contains(&k.as_str()) && !v.trim().is_empty()
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.sort();
        pairs.push(("format", "csv"));
        encode_query(&pairs)
    }
}

/// `k=v&…` with every byte outside the unreserved set percent-encoded.
fn encode_query(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The filter names of the findings list.
pub const FINDING_FILTERS: &[&str] = &["status", "severity", "admin", "address", "kind", "source"];
/// The filter names of the hosts list.
pub const HOST_FILTERS: &[&str] = &["role", "status", "admin"];
/// The filter names of the sweeps list (`since`/`before`: YYYY-MM-DD, UTC, on the start).
pub const SWEEP_FILTERS: &[&str] = &["vantage", "since", "before"];
/// The filter names of the agent-reports list.
pub const REPORT_FILTERS: &[&str] = &["address", "listening", "since"];

/// Midnight UTC of a YYYY-MM-DD date, in Unix seconds.
fn day_start(s: &str) -> Result<i64> {
    Ok(parse_date(s)?.midnight().assume_utc().unix_timestamp())
}

impl Params {
    /// The findings filter (`status` defaults to all; `severity` is a minimum).
    pub fn findings(&self) -> Result<FindingListFilter> {
        let mut f = FindingListFilter::default();
        f.base.status = match self.get("status") {
            None | Some("all") => None,
            Some(v) => Some(v.parse()?),
        };
        f.base.min_severity = self.get("severity").map(parse_severity).transpose()?;
        f.base.admin = self.get("admin").map(str::to_lowercase);
        f.base.address = self.get("address").map(parse_address).transpose()?;
        f.kind = self
            .get("kind")
            .map(|k| {
                k.parse::<FindingKind>()
                    .map(|k| k.id().to_string())
                    .map_err(|e| Error::Invalid(e.to_string()))
            })
            .transpose()?;
        f.source = match self.get("source") {
            None => None,
            Some("sweep") => Some(crate::store::FindingSource::Sweep),
            Some("registry") => Some(crate::store::FindingSource::Registry),
            Some("agent") => Some(crate::store::FindingSource::Agent),
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "invalid source {other:?} (expected sweep, registry or agent)"
                )));
            }
        };
        Ok(f)
    }

    /// The hosts filter.
    pub fn hosts(&self) -> Result<HostFilter> {
        Ok(HostFilter {
            role: self.get("role").map(str::parse).transpose()?,
            status: self.get("status").map(str::parse).transpose()?,
            admin: self.get("admin").map(str::to_lowercase),
        })
    }

    /// The sweeps filter.
    pub fn sweeps(&self) -> Result<SweepFilter> {
        Ok(SweepFilter {
            vantage: self.get("vantage").map(str::to_string),
            since: self.get("since").map(day_start).transpose()?,
            before: self.get("before").map(day_start).transpose()?,
        })
    }

    /// The agent-reports filter.
    pub fn reports(&self) -> Result<ReportFilter> {
        Ok(ReportFilter {
            address: self.get("address").map(parse_address).transpose()?,
            listening: match self.get("listening") {
                None => None,
                Some("yes" | "true") => Some(true),
                Some("no" | "false") => Some(false),
                Some(other) => {
                    return Err(Error::Invalid(format!(
                        "invalid listening {other:?} (expected yes or no)"
                    )));
                }
            },
            since: self.get("since").map(day_start).transpose()?,
        })
    }
}

/// A row a list can write as CSV.
pub trait CsvRow {
    /// The header line's cells.
    const HEADER: &'static [&'static str];
    /// This row's cells, unescaped.
    fn cells(&self) -> Vec<String>;
}

/// A cell as written: a value a spreadsheet would run as a formula (starting with `=`, `+`,
/// `-`, `@`, or a tab or carriage return that hides one) gets a leading `'`, so a banner or a
/// host name an attacker chose stays text when the file is opened.
pub fn defuse(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

/// Rows as CSV text (quoting by the csv crate, formulas defused).
fn csv_chunk<R: CsvRow>(header: bool, rows: &[R]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| Error::Invalid(format!("writing CSV: {e}"));
    if header {
        w.write_record(R::HEADER).map_err(fail)?;
    }
    for r in rows {
        w.write_record(r.cells().iter().map(|c| defuse(c)))
            .map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| Error::Invalid(format!("writing CSV: {e}")))
}

/// A CSV download of every row `fetch` pages through, streamed page by page; the first page
/// is read before the answer starts, so a bad filter or cursor is still a 400.
pub async fn csv_response<R, F, Fut>(name: &str, fetch: F) -> Result<Response>
where
    R: CsvRow + Send + 'static,
    F: Fn(PageRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Page<R>>> + Send + 'static,
{
    let first = fetch(PageRequest {
        after: None,
        limit: CSV_BATCH,
    })
    .await?;
    let head = csv_chunk(true, &first.rows)?;
    let state = (fetch, first.next, false);
    let rest = futures_util::stream::unfold(state, |(fetch, next, failed)| async move {
        let after = next?;
        if failed {
            return None;
        }
        match fetch(PageRequest {
            after: Some(after),
            limit: CSV_BATCH,
        })
        .await
        .and_then(|p| Ok((csv_chunk(false, &p.rows)?, p.next)))
        {
            Ok((bytes, next)) => Some((Ok(Bytes::from(bytes)), (fetch, next, false))),
            Err(e) => {
                // The status line is gone: cut the body short so the download visibly fails.
                tracing::error!(error = %e, "CSV download failed part-way");
                Some((
                    Err(std::io::Error::other(e.to_string())),
                    (fetch, None, true),
                ))
            }
        }
    });
    let head =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) });
    let body = Body::from_stream(futures_util::StreamExt::chain(head, rest));
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Seconds as RFC 3339 UTC (the number itself if out of range).
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

impl CsvRow for FindingRow {
    const HEADER: &'static [&'static str] = &[
        "id",
        "severity",
        "kind",
        "address",
        "port",
        "status",
        "summary",
        "tested_from",
        "first_seen",
        "last_seen",
        "resolved_at",
        "contact",
        "override",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.severity.as_str().into(),
            self.kind.clone(),
            self.address.clone(),
            self.port.to_string(),
            self.status.as_str().into(),
            self.summary.clone(),
            self.tested_from.clone().unwrap_or_default(),
            rfc3339(self.first_seen),
            rfc3339(self.last_seen),
            self.resolved_at.map(rfc3339).unwrap_or_default(),
            self.admin_email.clone().unwrap_or_default(),
            self.overridden
                .as_ref()
                .map(|o| format!("{}: {}", o.kind.as_str(), o.reason))
                .unwrap_or_default(),
        ]
    }
}

impl CsvRow for Host {
    const HEADER: &'static [&'static str] = &[
        "address",
        "hostname",
        "role",
        "status",
        "admin_name",
        "admin_email",
        "reviewed_on",
        "note",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.address.clone(),
            self.hostname.clone(),
            self.role.as_str().into(),
            self.status.as_str().into(),
            self.admin_name.clone(),
            self.admin_email.clone(),
            self.reviewed_on.clone(),
            self.note.clone(),
        ]
    }
}

impl CsvRow for SweepRow {
    const HEADER: &'static [&'static str] = &[
        "id",
        "vantage",
        "targets",
        "ports",
        "started_at",
        "finished_at",
        "results",
        "open_ports",
        "smtp_listeners",
        "findings_opened",
        "findings_resolved",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.vantage.clone(),
            self.targets.join(" "),
            self.ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            rfc3339(self.started_at),
            rfc3339(self.finished_at),
            self.results.to_string(),
            self.open_ports.to_string(),
            self.smtp_listeners.to_string(),
            self.findings_opened.to_string(),
            self.findings_resolved.to_string(),
        ]
    }
}

impl CsvRow for AgentReportRow {
    const HEADER: &'static [&'static str] = &[
        "received_at",
        "address",
        "report_id",
        "hostname",
        "agent_version",
        "mta_enabled",
        "mta_listening",
        "actions",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            rfc3339(self.received_at),
            self.address.clone(),
            self.report_id.clone(),
            self.hostname.clone(),
            self.agent_version.clone(),
            self.mta_enabled.to_string(),
            self.mta_listening.to_string(),
            self.actions.to_string(),
        ]
    }
}

/// The CSV download of the findings `p` selects.
pub async fn findings_csv(store: Store, p: &Params) -> Result<Response> {
    let filter = p.findings()?;
    store.refresh_registrations_for_reading().await?;
    csv_response("findings", move |req| {
        let (store, filter) = (store.clone(), filter.clone());
        async move { store.findings_page(&filter, &req).await }
    })
    .await
}

/// The CSV download of the hosts `p` selects.
pub async fn hosts_csv(store: Store, p: &Params) -> Result<Response> {
    let filter = p.hosts()?;
    csv_response("hosts", move |req| {
        let (store, filter) = (store.clone(), filter.clone());
        async move { store.hosts_page(&filter, &req).await }
    })
    .await
}

/// The CSV download of the sweeps `p` selects.
pub async fn sweeps_csv(store: Store, p: &Params) -> Result<Response> {
    let filter = p.sweeps()?;
    csv_response("sweeps", move |req| {
        let (store, filter) = (store.clone(), filter.clone());
        async move { store.sweeps_page(&filter, &req).await }
    })
    .await
}

/// The CSV download of the agent reports `p` selects.
pub async fn reports_csv(store: Store, p: &Params) -> Result<Response> {
    let filter = p.reports()?;
    csv_response("agent-reports", move |req| {
        let (store, filter) = (store.clone(), filter.clone());
        async move { store.reports_page(&filter, &req).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_quotes_escaped() {
        for f in ["=1+1", "+1", "-1", "@SUM(A1)", "\t=x", "\r=x"] {
            assert_eq!(defuse(f), format!("'{f}"));
        }
        assert_eq!(defuse("mail.example"), "mail.example");
        let h = Host {
            address: "192.0.2.1".into(),
            hostname: "h".into(),
            role: "non-mail".parse().unwrap(),
            admin_name: "=HYPERLINK(\"http://x\")".into(),
            admin_email: "a@b.example".into(),
            note: "line\n\"two\", three".into(),
            registered_on: "2026-01-01".into(),
            reviewed_on: "2026-01-01".into(),
            review_months: 6,
            status: "active".parse().unwrap(),
            admin_lang: None,
        };
        let text = String::from_utf8(csv_chunk(false, &[h]).unwrap()).unwrap();
        assert!(text.contains("\"'=HYPERLINK(\"\"http://x\"\")\""), "{text}");
        assert!(text.contains("\"line\n\"\"two\"\", three\""), "{text}");
    }

    #[test]
    fn unknown_names_and_bad_values_are_refused() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let e = Params::parse(q(&[("bogus", "1")]), FINDING_FILTERS, false).unwrap_err();
        assert!(e.to_string().contains("unknown query parameter"), "{e}");
        let e = Params::parse(q(&[("format", "xml")]), FINDING_FILTERS, false).unwrap_err();
        assert!(e.to_string().contains("invalid format"), "{e}");
        let p = Params::parse(q(&[("kind", "no-such-kind")]), FINDING_FILTERS, false).unwrap();
        assert!(
            p.findings()
                .unwrap_err()
                .to_string()
                .contains("unknown finding kind")
        );
        let p = Params::parse(q(&[("since", "2026-13-01")]), SWEEP_FILTERS, false).unwrap();
        assert!(p.sweeps().is_err());
        let p = Params::parse(
            q(&[("admin", "A@B.example"), ("after", "xyz")]),
            FINDING_FILTERS,
            false,
        )
        .unwrap();
        assert_eq!(p.next_query("c1"), "admin=A%40B.example&after=c1");
        assert_eq!(p.csv_query(), "admin=A%40B.example&format=csv");
    }
}
