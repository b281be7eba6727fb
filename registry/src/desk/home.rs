//! What an administrator sees: their registrations and the hosts of their network blocks, with
//! the open findings of each (`/desk`, `/api/v1/desk/hosts…`). The security team sees all.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use ipnet::IpNet;
use maud::html;
use serde::Serialize;

use super::page_for;
use crate::api::auth::{Asker, signed_in};
use crate::api::{ApiError, AppState};
use crate::error::{Error, Result};
use crate::model::{Host, Network, parse_address};
use crate::store::{FindingFilter, FindingRow, FindingStatus, Store};

/// What one asker may see: every address (the team), or their registrations and blocks.
pub struct Scope {
    everything: bool,
    email: String,
    blocks: Vec<IpNet>,
}

impl Scope {
    /// The scope of `asker`.
    pub async fn of(store: &Store, asker: &Asker) -> Result<Scope> {
        Ok(match asker {
            Asker::Team => Scope {
                everything: true,
                email: String::new(),
                blocks: Vec::new(),
            },
            Asker::Admin(s) => Scope {
                everything: false,
                email: s.email.clone(),
                blocks: owned_blocks(&store.list_networks().await?, &s.email),
            },
        })
    }

    /// Whether the address is in one of the asker's blocks (or the asker is the team).
    fn covers(&self, address: &str) -> bool {
        self.everything
            || address
                .parse::<IpAddr>()
                .is_ok_and(|a| self.blocks.iter().any(|b| b.contains(&a)))
    }

    /// Whether the asker may see and change this registration.
    pub fn sees_host(&self, h: &Host) -> bool {
        self.everything
            || h.admin_email.eq_ignore_ascii_case(&self.email)
            || self.covers(&h.address)
    }

    /// Whether the asker may see this address, registered (`host`) or not.
    pub fn sees_address(&self, address: &str, host: Option<&Host>) -> bool {
        host.is_some_and(|h| self.sees_host(h)) || self.covers(address)
    }
}

fn owned_blocks(nets: &[Network], email: &str) -> Vec<IpNet> {
    nets.iter()
        .filter(|n| n.owner_email.eq_ignore_ascii_case(email))
        .filter_map(|n| n.cidr.parse().ok())
        .collect()
}

/// A registration with its open findings.
#[derive(Debug, Serialize)]
pub struct HostView {
    /// The registration.
    #[serde(flatten)]
    pub host: Host,
    /// Its open findings.
    pub open_findings: Vec<FindingRow>,
}

/// What the asker sees: their registrations (with open findings), and open findings on
/// addresses of their blocks that nobody registered.
pub async fn view(store: &Store, scope: &Scope) -> Result<(Vec<HostView>, Vec<FindingRow>)> {
    let hosts: Vec<Host> = store
        .list_hosts()
        .await?
        .into_iter()
        .filter(|h| scope.sees_host(h))
        .collect();
    let open = store
        .list_findings(&FindingFilter {
            status: Some(FindingStatus::Open),
            ..FindingFilter::default()
        })
        .await?;
    let mut unregistered = Vec::new();
    let mut views: Vec<HostView> = hosts
        .into_iter()
        .map(|host| HostView {
            host,
            open_findings: Vec::new(),
        })
        .collect();
    for f in open {
        if let Some(v) = views.iter_mut().find(|v| v.host.address == f.address) {
            v.open_findings.push(f);
        } else if scope.covers(&f.address) {
            unregistered.push(f);
        }
    }
    Ok((views, unregistered))
}

/// Extractor for the desk's pages: like [`Asker`], but someone not signed in is sent to
/// `/login` rather than answered 401.
pub struct PageAsker(pub Asker);

impl FromRequestParts<AppState> for PageAsker {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        let anonymous = !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
            && signed_in(&parts.headers, state).await?.is_none();
        if anonymous {
            return Err(Redirect::to("/login").into_response());
        }
        Asker::from_request_parts(parts, state).await.map(PageAsker)
    }
}

/// `GET /desk`: the asker's hosts and their open findings.
pub(crate) async fn page(
    PageAsker(asker): PageAsker,
    State(s): State<AppState>,
) -> std::result::Result<Response, ApiError> {
    let scope = Scope::of(&s.store, &asker).await?;
    let (views, unregistered) = view(&s.store, &scope).await?;
    let session = match &asker {
        Asker::Admin(session) => Some(session),
        Asker::Team => None,
    };
    let applications = s
        .store
        .list_applications(session.map(|s| s.email.as_str()))
        .await?;
    let body = html! {
        p { a href="/desk/apply" { "Apply for a registration" } }
        h2 { "Registrations" }
        @if views.is_empty() {
            p { "No registrations." }
        } @else {
            table {
                tr { th { "Address" } th { "Host name" } th { "Role" } th { "Status" } th { "Administrator" } th { "Review due" } th { "Open findings" } }
                @for v in &views {
                    tr {
                        td { (v.host.address) }
                        td { (v.host.hostname) }
                        td { (v.host.role.as_str()) }
                        td { (v.host.status.as_str()) }
                        td { (v.host.admin_email) }
                        td { (v.host.review_due().map(crate::model::format_date).unwrap_or_default()) }
                        td {
                            @if v.open_findings.is_empty() { "none" }
                            @for f in &v.open_findings {
                                span class=(f.severity.as_str()) { (f.severity.as_str()) } " " (f.kind) " (port " (f.port) "): " (f.summary) br;
                                (super::overrides::controls(f, session))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Applications" }
        @if applications.is_empty() {
            p { "No applications." }
        } @else {
            table {
                tr { th { "#" } th { "Address" } th { "Host name" } th { "Role" } th { "Status" } }
                @for a in &applications {
                    tr {
                        td { a href={ "/desk/applications/" (a.id) } { (a.id) } }
                        td { (a.input.address) }
                        td { (a.input.hostname) }
                        td { (a.input.role.as_str()) }
                        td { (a.status.as_str()) }
                    }
                }
            }
        }
        @if !unregistered.is_empty() {
            h2 { "Unregistered addresses in your network blocks" }
            table {
                tr { th { "Address" } th { "Port" } th { "Severity" } th { "Finding" } }
                @for f in &unregistered {
                    tr { td { (f.address) } td { (f.port) } td class=(f.severity.as_str()) { (f.severity.as_str()) }
                         td { (f.kind) ": " (f.summary) br; (super::overrides::controls(f, session)) } }
                }
            }
        }
    };
    Ok(page_for(StatusCode::OK, "My hosts", session, body))
}

/// `GET /api/v1/desk/hosts`: the asker's registrations with their open findings, and the open
/// findings on unregistered addresses of their blocks.
pub(crate) async fn api_hosts(
    asker: Asker,
    State(s): State<AppState>,
) -> std::result::Result<Response, ApiError> {
    let scope = Scope::of(&s.store, &asker).await?;
    let (hosts, unregistered) = view(&s.store, &scope).await?;
    Ok(
        Json(serde_json::json!({ "hosts": hosts, "unregistered_findings": unregistered }))
            .into_response(),
    )
}

/// `GET /api/v1/desk/hosts/{address}`: one registration the asker may see, with its open
/// findings; 403 for an address that is neither theirs nor in their blocks.
pub(crate) async fn api_host(
    asker: Asker,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let address = parse_address(&address)?;
    let scope = Scope::of(&s.store, &asker).await?;
    let host = s.store.get_host(&address).await?;
    if !scope.sees_address(&address, host.as_ref()) {
        return Err(Error::Forbidden(format!(
            "{address} is not one of your registrations or in one of your network blocks"
        ))
        .into());
    }
    let host = host.ok_or_else(|| Error::NotFound(format!("registration of {address}")))?;
    let open_findings = s
        .store
        .list_findings(&FindingFilter {
            status: Some(FindingStatus::Open),
            address: Some(address),
            ..FindingFilter::default()
        })
        .await?;
    Ok(Json(HostView {
        host,
        open_findings,
    })
    .into_response())
}

/// `GET /api/v1/desk/hosts/{address}/history`: every change to the registration of `address`
/// (who, when, before and after), newest first, for whoever may see it. The team's host page
/// shows the same.
pub(crate) async fn api_history(
    asker: Asker,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let address = parse_address(&address)?;
    let scope = Scope::of(&s.store, &asker).await?;
    let host = s.store.get_host(&address).await?;
    if !scope.sees_address(&address, host.as_ref()) {
        return Err(Error::Forbidden(format!(
            "{address} is not one of your registrations or in one of your network blocks"
        ))
        .into());
    }
    let entries: Vec<serde_json::Value> = s
        .store
        .registration_history(&address)
        .await?
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "at": e.at, "actor": e.actor, "action": e.action,
                "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or_default(),
            })
        })
        .collect();
    Ok(Json(entries).into_response())
}
