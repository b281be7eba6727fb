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
use relayguard_core::RelayStrength;

use crate::api::auth::PageAdmin;
use crate::api::{ApiError, AppState};
use crate::model::parse_address;
use crate::store::{FindingFilter, FindingRow, OverrideState};

/// The page routes (mounted at `/` by [`crate::api::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/hosts") }))
        .route("/hosts", get(hosts))
        .route("/hosts/{address}", get(host))
        .route("/findings", get(findings))
        .route("/sweeps", get(sweeps))
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
nav a{margin-right:1em}.critical,.high{color:#b00}.medium{color:#a60}pre{white-space:pre-wrap;max-width:60em}\
tr.overridden{color:#777}";

fn layout(title: &str, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) " — relayguard registry" } style { (STYLE) } }
            body {
                nav { a href="/hosts" { "Hosts" } a href="/findings?status=open" { "Open findings" } a href="/sweeps" { "Sweeps" } }
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

async fn hosts(_: PageAdmin, State(s): State<AppState>) -> Result<Response, ApiError> {
    let hosts = s.store.list_hosts().await?;
    let today = crate::model::today();
    Ok(layout(
        "Hosts",
        html! {
            p { (hosts.len()) " registrations. Exports: "
                a href="/api/v1/export/hosts.csv" { "CSV" } ", " a href="/api/v1/export/allowlist.nft" { "nftables allow-list" } }
            table {
                tr { th { "Address" } th { "Host name" } th { "Role" } th { "Status" } th { "Admin" } th { "Reviewed" } th { "Note" } }
                @for h in &hosts {
                    tr {
                        td { a href={ "/hosts/" (h.address) } { (h.address) } }
                        td { (h.hostname) } td { (h.role.as_str()) } td { (h.status.as_str()) }
                        td { (h.admin_name) " <" (h.admin_email) ">" }
                        td { (h.reviewed_on) @if h.review_overdue(today) { " (overdue)" } }
                        td { (h.note) }
                    }
                }
            }
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
    let findings = s.store.list_findings(&filter).await?;
    let reports = if reg.is_some() {
        s.store.agent_reports(&address, 20).await?
    } else {
        Vec::new()
    };
    let history = s.store.observations_for(&address, 50).await?;
    let notices = crate::notify::sent::notices_about(&s.store, &address, 50).await?;
    let net = match address.parse() {
        Ok(ip) => s.store.network_for(ip).await?,
        Err(_) => None,
    };
    if reg.is_none() && findings.is_empty() && history.is_empty() {
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
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = crate::api::filter_from_query(&q)?;
    s.store.refresh_registrations().await?;
    let rows = s.store.list_findings(&filter).await?;
    let v = |k: &str| q.get(k).cloned().unwrap_or_default();
    Ok(layout(
        "Findings",
        html! {
            form method="get" {
                label { "Status " select name="status" {
                    @for o in ["open", "resolved", "all"] { option value=(o) selected[v("status") == o] { (o) } } } }
                " "
                label { "Min. severity " select name="severity" {
                    @for o in ["", "info", "low", "medium", "high", "critical"] { option value=(o) selected[v("severity") == o] { (o) } } } }
                " "
                label { "Admin e-mail " input name="admin" value=(v("admin")); }
                " " button { "Filter" }
            }
            @let today = crate::model::today();
            @let held = rows.iter().filter(|f| f.overridden_on(today)).count();
            p { (rows.len()) " findings" @if held > 0 { ", " (held) " of them overridden (accepted risks and false positives, struck through)" } "." }
            (findings_table(&rows))
        },
    ))
}

async fn sweeps(_: PageAdmin, State(s): State<AppState>) -> Result<Response, ApiError> {
    let rows = s.store.list_sweeps().await?;
    Ok(layout(
        "Sweeps",
        html! {
            table {
                tr { th { "#" } th { "Vantage" } th { "Targets" } th { "Ports" } th { "Started" } th { "Finished" }
                     th { "Results" } th { "Open" } th { "SMTP" } th { "Opened" } th { "Resolved" } th { "Notes" } }
                @for w in &rows {
                    tr {
                        td { (w.id) } td { (w.vantage) } td { (w.targets.join(" ")) }
                        td { (w.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")) }
                        td { (ts(w.started_at)) } td { (ts(w.finished_at)) } td { (w.results) } td { (w.open_ports) }
                        td { (w.smtp_listeners) } td { (w.findings_opened) } td { (w.findings_resolved) }
                        td { @for n in &w.notes { (n) br; } }
                    }
                }
            }
        },
    ))
}
