//! Server-rendered pages for people: hosts, one host (findings, agent reports, sweep history),
//! findings filtered by status/severity/admin, sweeps.
//!
//! Rendered with maud, which escapes every interpolated string: banners, PTR names, certificate
//! subjects and agent-reported host names are attacker-controlled and must never become markup.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use relayguard_core::{FindingKind, RelayStrength};

use crate::api::auth::PageAdmin;
use crate::api::{ApiError, AppState};
use crate::lists::{self, Format, Params};
use crate::model::Role;
use crate::model::parse_address;
use crate::store::{FindingFilter, FindingRow, OverrideState};

/// The page routes (mounted at `/` by [`crate::api::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(dashboard))
        .route(
            "/hosts",
            get(|a: PageAdmin, s: State<AppState>, q: Q| hosts(a, s, q, false)),
        )
        .route(
            "/hosts.csv",
            get(|a: PageAdmin, s: State<AppState>, q: Q| hosts(a, s, q, true)),
        )
        .route("/hosts/{address}", get(host))
        .route(
            "/findings",
            get(|a: PageAdmin, s: State<AppState>, q: Q| findings(a, s, q, false)),
        )
        .route(
            "/findings.csv",
            get(|a: PageAdmin, s: State<AppState>, q: Q| findings(a, s, q, true)),
        )
        .route(
            "/sweeps",
            get(|a: PageAdmin, s: State<AppState>, q: Q| sweeps(a, s, q, false)),
        )
        .route(
            "/sweeps.csv",
            get(|a: PageAdmin, s: State<AppState>, q: Q| sweeps(a, s, q, true)),
        )
        .route(
            "/reports",
            get(|a: PageAdmin, s: State<AppState>, q: Q| reports(a, s, q, false)),
        )
        .route(
            "/reports.csv",
            get(|a: PageAdmin, s: State<AppState>, q: Q| reports(a, s, q, true)),
        )
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
nav a{margin-right:1em}form.filter label{margin-right:.8em}p.pager a{margin-right:1.5em}.critical,.high{color:#b00}.medium{color:#a60}pre{white-space:pre-wrap;max-width:60em}\
tr.overridden{color:#777}figure{margin:0}figure svg{max-width:100%;height:auto}\
td.num{text-align:right}";

fn layout(title: &str, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) " — relayguard registry" } style { (STYLE) } }
            body {
                nav { a href="/dashboard" { "Dashboard" } a href="/hosts" { "Hosts" } a href="/findings?status=open" { "Open findings" } a href="/sweeps" { "Sweeps" } a href="/reports" { "Agent reports" } }
                h1 { (title) }
                (body)
            }
        }
    };
    axum::response::Html(page.into_string()).into_response()
}

fn ts(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// What a relay verdict rests on, from a sweep finding's evidence.
fn relay_strength(f: &FindingRow) -> Option<RelayStrength> {
    serde_json::from_value(f.evidence.get("relay_strength")?.clone()).ok()
}

fn findings_table(rows: &[FindingRow]) -> Markup {
    let today = crate::model::today();
    html! {
        @if rows.is_empty() { p { "No findings." } } @else {
            table {
                tr { th { "#" } th { "Severity" } th { "Kind" } th { "Address" } th { "Port" } th { "Status" } th { "Summary" }
                     th { "Tested from" } th { "First seen" } th { "Last seen" } th { "Contact" } }
                @for f in rows {
                    @let held = f.overridden_on(today);
                    tr class=[held.then_some("overridden")] {
                        td { (f.id) }
                        td class=(f.severity.as_str()) { (f.severity.as_str()) }
                        td {
                            (f.kind)
                            @if let Some(strength) = relay_strength(f) {
                                br; small { "verdict: " (strength.describe()) }
                            }
                        }
                        td { a href={ "/hosts/" (f.address) } { (f.address) } }
                        td { (f.port) }
                        td { (f.status.as_str()) (override_note(f, today)) }
                        td { @if held { s { (f.summary) } } @else { (f.summary) } }
                        td { (f.tested_from.as_deref().unwrap_or("—")) }
                        td { (ts(f.first_seen)) }
                        td { (ts(f.last_seen)) }
                        td { (f.admin_email.as_deref().unwrap_or("—")) }
                    }
                }
            }
        }
    }
}

/// What a finding's override says, after its status: held (kind, until, who, why) or lapsed.
fn override_note(f: &FindingRow, today: time::Date) -> Markup {
    let (Some(o), Some(state)) = (&f.overridden, f.override_state(today)) else {
        return html! {};
    };
    html! {
        @match state {
            OverrideState::InForce => {
                br; em { (o.kind.as_str()) @if let Some(u) = &o.until { " until " (u) } }
                br; small { (o.made_by) ": " (o.reason) }
            }
            OverrideState::Expired => { br; small { "override expired: open again" } }
            OverrideState::EvidenceChanged => { br; small { "evidence changed since the override: open again" } }
        }
    }
}

/// Query strings as the page handlers take them.
type Q = Query<HashMap<String, String>>;

/// The link to the next page (same filters) and to the CSV of every matching row.
fn pager(path: &str, p: &Params, next: Option<&str>) -> Markup {
    html! {
        p class="pager" {
            @if let Some(n) = next { a rel="next" href={ (path) "?" (p.next_query(n)) } { "Next page →" } }
            @if p.page.after.is_some() { a href=(path) { "First page" } }
            a href={ (path) "?" (p.csv_query()) } { "Download all matching rows as CSV" }
        }
    }
}

/// A select of `options` named `name`, the current value selected.
fn select(name: &str, label: &str, options: &[&str], p: &Params) -> Markup {
    let cur = p.get(name).unwrap_or("");
    html! {
        label { (label) " " select name=(name) {
            @for o in options { option value=(o) selected[cur == *o] { @if o.is_empty() { "any" } @else { (o) } } } } }
    }
}

/// A text input named `name` holding the current value.
fn text_input(name: &str, label: &str, p: &Params) -> Markup {
    html! { label { (label) " " input name=(name) value=(p.get(name).unwrap_or("")); } }
}

async fn hosts(
    _: PageAdmin,
    State(s): State<AppState>,
    Query(q): Q,
    csv: bool,
) -> Result<Response, ApiError> {
    let p = Params::parse(q, lists::HOST_FILTERS, csv)?;
    if p.format == Format::Csv {
        return Ok(lists::hosts_csv(s.store.clone(), &p).await?);
    }
    let page = s.store.hosts_page(&p.hosts()?, &p.page).await?;
    let today = crate::model::today();
    let roles: Vec<&str> = std::iter::once("")
        .chain(Role::ALL.iter().map(|r| r.as_str()))
        .collect();
    Ok(layout(
        "Hosts",
        html! {
            p { "Exports: "
                a href="/api/v1/export/hosts.csv" { "CSV" } ", " a href="/api/v1/export/allowlist.nft" { "nftables allow-list" } }
            form class="filter" method="get" {
                (select("role", "Role", &roles, &p))
                (select("status", "Status", &["", "active", "suspended", "retired"], &p))
                (text_input("admin", "Admin e-mail", &p))
                button { "Filter" }
            }
            @if page.rows.is_empty() { p { "No registrations match." } } @else {
            table {
                tr { th { "Address" } th { "Host name" } th { "Role" } th { "Status" } th { "Admin" } th { "Reviewed" } th { "Note" } }
                @for h in &page.rows {
                    tr {
                        td { a href={ "/hosts/" (h.address) } { (h.address) } }
                        td { (h.hostname) } td { (h.role.as_str()) } td { (h.status.as_str()) }
                        td { (h.admin_name) " <" (h.admin_email) ">" }
                        td { (h.reviewed_on) @if h.review_overdue(today) { " (overdue)" } }
                        td { (h.note) }
                    }
                }
            }
            }
            (pager("/hosts", &p, page.next.as_deref()))
        },
    ))
}

async fn host(
    _: PageAdmin,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> Result<Response, ApiError> {
    let address = parse_address(&address)?;
    let reg = s.store.get_host(&address).await?;
    let filter = FindingFilter {
        address: Some(address.clone()),
        ..Default::default()
    };
    // A host has a handful of findings: one page of the most a page holds shows them all.
    let findings = s
        .store
        .findings_page(
            &crate::store::FindingListFilter {
                base: filter,
                ..Default::default()
            },
            &crate::store::PageRequest {
                after: None,
                limit: crate::store::keyset::MAX_LIMIT,
            },
        )
        .await?
        .rows;
    let reports = if reg.is_some() {
        s.store.agent_reports(&address, 20).await?
    } else {
        Vec::new()
    };
    let history = s.store.observations_for(&address, 50).await?;
    let notices = crate::notify::sent::notices_about(&s.store, &address, 50).await?;
    let changes = s.store.registration_history(&address).await?;
    let net = match address.parse() {
        Ok(ip) => s.store.network_for(ip).await?,
        Err(_) => None,
    };
    if reg.is_none() && findings.is_empty() && history.is_empty() && changes.is_empty() {
        return Err(crate::Error::NotFound(format!("host {address}")).into());
    }
    Ok(layout(
        &address,
        html! {
            @match &reg {
                Some(h) => table {
                    tr { th { "Host name" } td { (h.hostname) } }
                    tr { th { "Role" } td { (h.role.as_str()) } }
                    tr { th { "Status" } td { (h.status.as_str()) } }
                    tr { th { "Admin" } td { (h.admin_name) " <" (h.admin_email) ">" } }
                    tr { th { "Registered" } td { (h.registered_on) } }
                    tr { th { "Reviewed" } td { (h.reviewed_on) " (every " (h.review_months) " months)" } }
                    tr { th { "Note" } td { (h.note) } }
                },
                None => p { strong { "Not registered." } },
            }
            @if let Some(n) = &net { p { "Network " (n.cidr) ": " (n.owner_name) " <" (n.owner_email) ">" } }
            h2 { "Findings" }
            (findings_table(&findings))
            h2 { "Agent reports" }
            (crate::health_chart::section(&reports))
            @if reports.is_empty() { p { "None." } } @else {
                table {
                    tr { th { "Received" } th { "Report" } th { "Host name" } th { "Agent" } th { "MTA enabled" } th { "MTA live" } th { "Actions" } }
                    @for r in &reports {
                        tr { td { (ts(r.received_at)) } td { (r.report_id) } td { (r.hostname) } td { (r.agent_version) }
                             td { (r.mta_enabled) } td { (r.mta_listening) } td { (r.actions) } }
                    }
                }
            }
            h2 { "Registration history" }
            @if changes.is_empty() { p { "No change recorded." } } @else {
                p { "Every change, newest first (also as JSON: " a href={ "/api/v1/desk/hosts/" (address) "/history" } { "history" } ")." }
                table {
                    tr { th { "When" } th { "Who" } th { "What" } th { "Before and after" } }
                    @for c in &changes {
                        tr { td { (ts(c.at)) } td { (c.actor) } td { (c.action) } td { pre { (c.detail) } } }
                    }
                }
            }
            h2 { "Notices" }
            @if notices.is_empty() { p { "No mail has been sent about this host." } } @else {
                table {
                    tr { th { "Sent" } th { "To" } th { "Finding" } th { "As reported" } th { "Message-ID" } }
                    @for n in &notices {
                        tr { td { (ts(n.sent_at)) } td { (n.admin_email) } td { (n.kind) " (port " (n.port) ")" }
                             td { (n.status) ", " (n.severity) } td { code { (n.message_id) } } }
                    }
                }
            }
            h2 { "Sweep history" }
            @if history.is_empty() { p { "Never seen by a sweep." } } @else {
                table {
                    tr { th { "Sweep" } th { "Port" } th { "State" } th { "MTA" } th { "PTR" } th { "Banner" } }
                    @for o in &history {
                        tr {
                            td { (o.sweep_id) } td { (o.port) } td { (o.state) }
                            td { (o.mta.as_deref().unwrap_or("")) } td { (o.ptr.as_deref().unwrap_or("")) }
                            td { pre { (o.banner.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
        },
    ))
}

async fn findings(
    _: PageAdmin,
    State(s): State<AppState>,
    Query(q): Q,
    csv: bool,
) -> Result<Response, ApiError> {
    let p = Params::parse(q, lists::FINDING_FILTERS, csv)?;
    let filter = p.findings()?;
    if p.format == Format::Csv {
        return Ok(lists::findings_csv(s.store.clone(), &p).await?);
    }
    s.store.refresh_registrations_for_reading().await?;
    let page = s.store.findings_page(&filter, &p.page).await?;
    let kinds: Vec<&str> = std::iter::once("")
        .chain(FindingKind::ALL.iter().map(|k| k.id()))
        .collect();
    Ok(layout(
        "Findings",
        html! {
            form class="filter" method="get" {
                (select("status", "Status", &["", "open", "resolved"], &p))
                (select("severity", "Min. severity", &["", "info", "low", "medium", "high", "critical"], &p))
                (select("kind", "Kind", &kinds, &p))
                (select("source", "Source", &["", "sweep", "registry", "agent"], &p))
                (text_input("address", "Address", &p))
                (text_input("admin", "Admin e-mail", &p))
                button { "Filter" }
            }
            @let today = crate::model::today();
            @let held = page.rows.iter().filter(|f| f.overridden_on(today)).count();
            p { (page.rows.len()) " findings on this page" @if held > 0 { ", " (held) " of them overridden (accepted risks and false positives, struck through)" } "." }
            (findings_table(&page.rows))
            (pager("/findings", &p, page.next.as_deref()))
        },
    ))
}

async fn sweeps(
    _: PageAdmin,
    State(s): State<AppState>,
    Query(q): Q,
    csv: bool,
) -> Result<Response, ApiError> {
    let p = Params::parse(q, lists::SWEEP_FILTERS, csv)?;
    if p.format == Format::Csv {
        return Ok(lists::sweeps_csv(s.store.clone(), &p).await?);
    }
    let page = s.store.sweeps_page(&p.sweeps()?, &p.page).await?;
    let rows = &page.rows[..];
    Ok(layout(
        "Sweeps",
        html! {
            form class="filter" method="get" {
                (text_input("vantage", "Vantage", &p))
                (text_input("since", "Started on or after (YYYY-MM-DD)", &p))
                (text_input("before", "Started before", &p))
                button { "Filter" }
            }
            table {
                tr { th { "#" } th { "Vantage" } th { "Targets" } th { "Ports" } th { "Started" } th { "Finished" }
                     th { "Results" } th { "Open" } th { "SMTP" } th { "Opened" } th { "Resolved" } th { "Notes" } }
                @for w in rows {
                    tr {
                        td { (w.id) } td { (w.vantage) } td { (w.targets.join(" ")) }
                        td { (w.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")) }
                        td { (ts(w.started_at)) } td { (ts(w.finished_at)) } td { (w.results) } td { (w.open_ports) }
                        td { (w.smtp_listeners) } td { (w.findings_opened) } td { (w.findings_resolved) }
                        td { @for n in &w.notes { (n) br; } }
                    }
                }
            }
            (pager("/sweeps", &p, page.next.as_deref()))
        },
    ))
}

async fn reports(
    _: PageAdmin,
    State(s): State<AppState>,
    Query(q): Q,
    csv: bool,
) -> Result<Response, ApiError> {
    let p = Params::parse(q, lists::REPORT_FILTERS, csv)?;
    if p.format == Format::Csv {
        return Ok(lists::reports_csv(s.store.clone(), &p).await?);
    }
    let page = s.store.reports_page(&p.reports()?, &p.page).await?;
    Ok(layout(
        "Agent reports",
        html! {
            form class="filter" method="get" {
                (text_input("address", "Address", &p))
                (select("listening", "MTA listening", &["", "yes", "no"], &p))
                (text_input("since", "Received on or after (YYYY-MM-DD)", &p))
                button { "Filter" }
            }
            @if page.rows.is_empty() { p { "No agent reports match." } } @else {
                table {
                    tr { th { "Received" } th { "Address" } th { "Report" } th { "Host name" } th { "Agent" } th { "MTA enabled" } th { "MTA live" } th { "Actions" } }
                    @for r in &page.rows {
                        tr { td { (ts(r.received_at)) } td { a href={ "/hosts/" (r.address) } { (r.address) } } td { (r.report_id) }
                             td { (r.hostname) } td { (r.agent_version) } td { (r.mta_enabled) } td { (r.mta_listening) } td { (r.actions) } }
                    }
                }
            }
            (pager("/reports", &p, page.next.as_deref()))
        },
    ))
}

/// A duration as days and hours (or minutes when under an hour).
fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match (s / 86_400, (s % 86_400) / 3600) {
        (0, 0) => format!("{} min", s / 60),
        (0, h) => format!("{h} h"),
        (d, h) => format!("{d} d {h} h"),
    }
}

fn fix_table(what: &str, rows: &[crate::store::dashboard::FixTime]) -> Markup {
    html! {
        @if rows.is_empty() { p { "No finding was resolved in the last year." } } @else {
            table {
                tr { th { (what) } th { "Resolved" } th { "Median time to fix" } th { "90th percentile" } }
                @for r in rows {
                    tr { td { (r.group) } td.num { (r.resolved) } td.num { (span(r.median)) } td.num { (span(r.p90)) } }
                }
            }
        }
    }
}

/// The landing page: how the campus is doing.
async fn dashboard(
    _: PageAdmin,
    State(s): State<AppState>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    if let Some(k) = q.keys().find(|k| k.as_str() != "days") {
        return Err(
            crate::Error::Invalid(format!("unknown query parameter {k:?} (known: days)")).into(),
        );
    }
    let days = match q.get("days").map(|d| d.trim()).filter(|d| !d.is_empty()) {
        None => 90,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|n| (2..=730).contains(n))
            .ok_or_else(|| {
                crate::Error::Invalid(format!("invalid days {d:?} (expected 2 to 730)"))
            })?,
    };
    s.store.refresh_registrations_for_reading().await?;
    let now = crate::model::now_unix();
    let d = s.store.dashboard(now, days).await?;
    let svg = crate::charts::open_findings(&d.history);
    let names = ["info", "low", "medium", "high", "critical"];
    Ok(layout(
        "Dashboard",
        html! {
            h2 { "Open findings over time" }
            @if let Some(today) = d.history.last() {
                p { "Open now: "
                    @for r in (0..5).rev() { strong { (today.open[r]) } " " (names[r]) @if r > 0 { ", " } } "." }
            }
            figure {
                (maud::PreEscaped(svg))
                figcaption { "Open findings at the end of each of the last " (days) " days, by severity. "
                    "Each severity has its own marker (critical ●, high ▲, medium ×, low ■, info ○). "
                    a href={ "/dashboard?days=" (days * 2) } { "Show " (days * 2) " days" } }
            }
            details {
                summary { "The same figures as a table" }
                table {
                    tr { th { "Day" } @for r in (0..5).rev() { th { (names[r]) } } }
                    @for day in d.history.iter().rev() {
                        tr { td { (ts(day.day).get(..10).unwrap_or("")) } @for r in (0..5).rev() { td.num { (day.open[r]) } } }
                    }
                }
            }
            h2 { "Time to fix" }
            p { "From first seen to resolved, over findings resolved in the last year." }
            h3 { "Per network block" }
            (fix_table("Network block", &d.fix_by_network))
            h3 { "Per kind" }
            (fix_table("Kind", &d.fix_by_kind))
            h2 { "Oldest open critical findings" }
            (findings_table(&d.oldest_critical))
            @if !d.oldest_critical.is_empty() {
                p { a href="/findings?status=open&severity=critical" { "All open critical findings" } }
            }
            h2 { "Last sweep of each vantage point" }
            @if d.vantages.is_empty() { p { "No sweep has been recorded." } } @else {
                table {
                    tr { th { "Vantage" } th { "Sweep" } th { "Finished" } th { "Took" } th { "Targets" } th { "Ports" }
                         th { "Probes planned" } th { "Results" } th { "Coverage" } th { "Open ports" } }
                    @for v in &d.vantages {
                        @let w = &v.sweep;
                        tr {
                            td { (w.vantage) } td.num { (w.id) } td { (ts(w.finished_at)) " (" (span(now - w.finished_at)) " ago)" }
                            td.num { (span(w.finished_at - w.started_at)) }
                            td { (w.targets.join(" ")) }
                            td { (w.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")) }
                            td.num { @match v.planned { Some(p) => (p), None => "—" } }
                            td.num { (w.results) }
                            td.num { @match v.planned { Some(p) if p > 0 && w.results <= p => { (format!("{:.1} %", 100.0 * w.results as f64 / p as f64)) }, _ => "—" } }
                            td.num { (w.open_ports) }
                        }
                    }
                }
            }
            h2 { "Agents that have gone quiet" }
            p { "Enrolled hosts whose agent has not reported for longer than its usual interval (the median gap between its last reports, else six hours) plus an hour." }
            @if d.silent_agents.is_empty() { p { "Every enrolled agent has reported on time." } } @else {
                table {
                    tr { th { "Address" } th { "Host name" } th { "Last report" } th { "Usual interval" } th { "Silent for" } }
                    @for a in &d.silent_agents {
                        tr {
                            td { a href={ "/hosts/" (a.address) } { (a.address) } } td { (a.hostname) }
                            @if a.last == 0 { td { "never" } td.num { (span(a.interval)) } td { "—" } }
                            @else { td { (ts(a.last)) } td.num { (span(a.interval)) } td.num { (span(now - a.last)) } }
                        }
                    }
                }
            }
        },
    ))
}
