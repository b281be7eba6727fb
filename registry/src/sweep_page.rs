//! The page of one queued sweep (`relayguard sweep --queue`): its progress per vantage, as
//! `relayguard sweeps show` prints it — shards done, running, pending and quarantined,
//! addresses, open ports, findings so far, and the registry sweep each vantage became.
//!
//! Admins only, like every page. Rendered with maud, which escapes every interpolated string
//! (vantage names and the recorded command line come from whoever planned the sweep).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, html};

use crate::api::auth::PageAdmin;
use crate::api::{ApiError, AppState};
use crate::error::Error;
use crate::store::QueuedSweep;

/// Seconds between reloads of the page while a vantage is still running or merging.
const REFRESH_SECS: u32 = 10;

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}td.n{text-align:right}\
nav a{margin-right:1em}.quarantined{color:#b00}code{white-space:pre-wrap}";

/// The route (merged at `/` by [`crate::api::router`]).
pub fn routes() -> Router<AppState> {
    Router::new().route("/sweeps/{id}", get(sweep_page))
}

async fn sweep_page(
    _: PageAdmin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| Error::Invalid(format!("invalid sweep number {id:?}")))?;
    let Some(sweep) = s.store.queued_sweep(id).await? else {
        return Err(ApiError(Error::NotFound(format!(
            "queued sweep {id} (queued sweeps live in a PostgreSQL registry)"
        ))));
    };
    Ok(Html(render(&sweep)).into_response())
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

fn percent(done: i64, of: i64) -> String {
    if of <= 0 {
        return "-".into();
    }
    format!("{:.1}%", done as f64 * 100.0 / of as f64)
}

/// The page's HTML.
pub fn render(sweep: &QueuedSweep) -> String {
    let running = sweep.vantages.iter().any(|v| v.state != "merged");
    let title = format!("Queued sweep {}", sweep.id);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if running { meta http-equiv="refresh" content=(REFRESH_SECS); }
                title { (title) " — relayguard registry" }
                style { (STYLE) }
            }
            body {
                nav { a href="/hosts" { "Hosts" } a href="/findings?status=open" { "Open findings" } a href="/sweeps" { "Sweeps" } }
                h1 { (title) }
                p {
                    "Planned " (ts(sweep.created_at)) ": " (sweep.addresses) " addresses per vantage. "
                    @if running { "Still running; this page reloads every " (REFRESH_SECS) " s." }
                    @else { "Every vantage is merged into the registry." }
                }
                p { "Command line: " code { (sweep.sweep_args.join(" ")) } }
                table {
                    tr {
                        th { "Vantage" } th { "State" } th { "Shards done" } th { "Running" } th { "Pending" }
                        th { "Quarantined" } th { "Addresses done" } th { "" } th { "Open ports" } th { "Findings" }
                        th { "Registry sweep" }
                    }
                    @for v in &sweep.vantages {
                        tr {
                            td { (v.vantage) } td { (v.state) }
                            td.n { (v.shards_done) } td.n { (v.shards_running) } td.n { (v.shards_pending) }
                            td.n.quarantined[v.shards_quarantined > 0] { (v.shards_quarantined) }
                            td.n { (v.addresses_done) " / " (v.addresses) } td.n { (percent(v.addresses_done, v.addresses)) }
                            td.n { (v.open_ports) } td.n { (v.findings) }
                            td { @match v.registry_sweep_id { Some(r) => { "#" (r) }, None => { "—" } } }
                        }
                    }
                }
                @if !sweep.quarantined.is_empty() {
                    h2.quarantined { "Quarantined shards (never swept, left out of the coverage)" }
                    ul {
                        @for q in &sweep.quarantined {
                            li { (q.vantage) " shard " (q.shard) ": " (q.first) " – " (q.last) }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}
