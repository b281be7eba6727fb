//! Admin endpoints: registrations, networks, sweeps, findings, exports, agent enrollment.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use relayguard_core::SweepUpload;
use serde_json::json;

use super::auth::Admin;
use super::{ApiError, AppState, parse_json, typed};
use crate::error::Error;
use crate::lists::{self, Format, Params};
use crate::model::{HostInput, HostUpdate, Network, parse_address, today};
use crate::store::{OverrideInput, Page};
use crate::{csv_io, export};

type ApiResult<T = Response> = Result<T, ApiError>;

/// `GET /api/v1/hosts`: one page of registrations (filters: [`lists::HOST_FILTERS`]).
pub(super) async fn list_hosts(
    _: Admin,
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    hosts_list(s, q, false).await
}

async fn hosts_list(s: AppState, q: HashMap<String, String>, csv: bool) -> ApiResult {
    let p = Params::parse(q, lists::HOST_FILTERS, csv)?;
    if p.format == Format::Csv {
        return Ok(lists::hosts_csv(s.store.clone(), &p).await?);
    }
    let page = s.store.hosts_page(&p.hosts()?, &p.page).await?;
    Ok(paged("/api/v1/hosts", &p, page))
}

/// A page as a JSON array; the next page's cursor in `X-Next-Cursor` and a `Link` header.
fn paged<T: serde::Serialize>(path: &str, p: &Params, page: Page<T>) -> Response {
    let mut r = Json(page.rows).into_response();
    if let Some(next) = page.next {
        let link = format!("<{path}?{}>; rel=\"next\"", p.next_query(&next));
        for (name, value) in [("x-next-cursor", next), ("link", link)] {
            if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                r.headers_mut().insert(name, v);
            }
        }
    }
    r
}

/// The `.csv` twins of the list endpoints and the agent-reports list.
pub(super) fn list_routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/hosts.csv",
            get(|_: Admin, State(s): State<AppState>, Query(q)| hosts_list(s, q, true)),
        )
        .route(
            "/findings.csv",
            get(|_: Admin, State(s): State<AppState>, Query(q)| findings_list(s, q, true)),
        )
        .route(
            "/sweeps.csv",
            get(|_: Admin, State(s): State<AppState>, Query(q)| sweeps_list(s, q, true)),
        )
        .route(
            "/reports",
            get(|_: Admin, State(s): State<AppState>, Query(q)| reports_list(s, q, false)),
        )
        .route(
            "/reports.csv",
            get(|_: Admin, State(s): State<AppState>, Query(q)| reports_list(s, q, true)),
        )
}

async fn reports_list(s: AppState, q: HashMap<String, String>, csv: bool) -> ApiResult {
    let p = Params::parse(q, lists::REPORT_FILTERS, csv)?;
    if p.format == Format::Csv {
        return Ok(lists::reports_csv(s.store.clone(), &p).await?);
    }
    let page = s.store.reports_page(&p.reports()?, &p.page).await?;
    Ok(paged("/api/v1/reports", &p, page))
}

pub(super) async fn add_host(_: Admin, State(s): State<AppState>, body: Bytes) -> ApiResult {
    let input: HostInput = parse_json(&body)?;
    let host = input.validate(today())?;
    s.store.add_host(&host).await?;
    Ok((StatusCode::CREATED, Json(host)).into_response())
}

pub(super) async fn get_host(
    _: Admin,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult {
    let host = s
        .store
        .get_host(&address)
        .await?
        .ok_or_else(|| Error::NotFound(format!("host {address}")))?;
    let due = host.review_due().map(crate::model::format_date).ok();
    let mut v = serde_json::to_value(&host).unwrap_or_default();
    v["review_due"] = json!(due);
    Ok(Json(v).into_response())
}

pub(super) async fn update_host(
    _: Admin,
    State(s): State<AppState>,
    Path(address): Path<String>,
    body: Bytes,
) -> ApiResult {
    let update: HostUpdate = parse_json(&body)?;
    Ok(Json(s.store.update_host(&address, &update).await?).into_response())
}

pub(super) async fn remove_host(
    _: Admin,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult {
    if s.store.remove_host(&address).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::NotFound(format!("host {address}")).into())
    }
}

pub(super) async fn import_hosts(_: Admin, State(s): State<AppState>, body: Bytes) -> ApiResult {
    let n = csv_io::import_hosts(&s.store, &body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "imported": n }))).into_response())
}

pub(super) async fn create_agent_token(
    _: Admin,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult {
    let token = s.store.create_agent_token(&address).await?;
    let address = parse_address(&address)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "address": address, "token": token })),
    )
        .into_response())
}

pub(super) async fn host_reports(
    _: Admin,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult {
    Ok(Json(s.store.agent_reports(&address, 100).await?).into_response())
}

pub(super) async fn list_networks(_: Admin, State(s): State<AppState>) -> ApiResult {
    Ok(Json(s.store.list_networks().await?).into_response())
}

pub(super) async fn add_network(_: Admin, State(s): State<AppState>, body: Bytes) -> ApiResult {
    let net: Network = parse_json::<Network>(&body)?.validate()?;
    s.store.add_network(&net).await?;
    Ok((StatusCode::CREATED, Json(net)).into_response())
}

pub(super) async fn remove_network(
    _: Admin,
    State(s): State<AppState>,
    Path(cidr): Path<String>,
) -> ApiResult {
    if s.store.remove_network(&cidr).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::NotFound(format!("network {cidr}")).into())
    }
}

pub(super) async fn post_sweep(_: Admin, State(s): State<AppState>, body: Bytes) -> ApiResult {
    let upload: SweepUpload<'static> = parse_json(&body)?;
    let row = s.store.record_sweep(&upload.meta, &upload.results).await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// `GET /api/v1/sweeps`: one page of sweeps, newest first (filters: [`lists::SWEEP_FILTERS`]).
pub(super) async fn list_sweeps(
    _: Admin,
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    sweeps_list(s, q, false).await
}

async fn sweeps_list(s: AppState, q: HashMap<String, String>, csv: bool) -> ApiResult {
    let p = Params::parse(q, lists::SWEEP_FILTERS, csv)?;
    if p.format == Format::Csv {
        return Ok(lists::sweeps_csv(s.store.clone(), &p).await?);
    }
    let page = s.store.sweeps_page(&p.sweeps()?, &p.page).await?;
    Ok(paged("/api/v1/sweeps", &p, page))
}

pub(super) async fn get_sweep(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    let n: i64 = id
        .parse()
        .map_err(|_| Error::Invalid(format!("invalid sweep id {id:?}")))?;
    let row = s
        .store
        .get_sweep(n)
        .await?
        .ok_or_else(|| Error::NotFound(format!("sweep {n}")))?;
    Ok(Json(row).into_response())
}

/// `GET /api/v1/findings`: one page of findings, most severe first (filters:
/// [`lists::FINDING_FILTERS`]).
pub(super) async fn list_findings(
    _: Admin,
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    findings_list(s, q, false).await
}

async fn findings_list(s: AppState, q: HashMap<String, String>, csv: bool) -> ApiResult {
    let p = Params::parse(q, lists::FINDING_FILTERS, csv)?;
    let filter = p.findings()?;
    if p.format == Format::Csv {
        return Ok(lists::findings_csv(s.store.clone(), &p).await?);
    }
    s.store.refresh_registrations_for_reading().await?;
    let page = s.store.findings_page(&filter, &p.page).await?;
    Ok(paged("/api/v1/findings", &p, page))
}

pub(super) async fn export(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    let hosts = s.store.list_hosts().await?;
    Ok(match name.as_str() {
        "hosts.csv" => typed("text/csv; charset=utf-8", csv_io::hosts_to_csv(&hosts)?),
        "hosts.json" => typed("application/json", export::hosts_json(&hosts)),
        "allowlist.txt" => typed("text/plain; charset=utf-8", export::allowlist_plain(&hosts)),
        "allowlist.nft" => typed(
            "text/plain; charset=utf-8",
            export::allowlist_nftables(&hosts),
        ),
        other => {
            return Err(Error::NotFound(format!(
                "export {other:?} (available: hosts.csv, hosts.json, allowlist.txt, allowlist.nft)"
            ))
            .into());
        }
    })
}

fn finding_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError(Error::Invalid(format!("invalid finding id {id:?}"))))
}

/// `POST /api/v1/findings/{id}/override` with an [`OverrideInput`].
pub(super) async fn set_override(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let input: OverrideInput = parse_json(&body)?;
    let o = s.store.set_override(finding_id(&id)?, &input).await?;
    Ok(Json(o).into_response())
}

/// `DELETE /api/v1/findings/{id}/override` with `{"by": "…"}`.
pub(super) async fn clear_override(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Clear {
        by: String,
    }
    let c: Clear = parse_json(&body)?;
    let id = finding_id(&id)?;
    if !s.store.clear_override(id, &c.by).await? {
        return Err(Error::NotFound(format!("override of finding {id}")).into());
    }
    Ok(Json(json!({ "cleared": id })).into_response())
}

/// `GET /api/v1/audit-log`: the newest 1000 entries.
pub(super) async fn audit_log(_: Admin, State(s): State<AppState>) -> ApiResult {
    Ok(Json(s.store.audit_log(1000).await?).into_response())
}
