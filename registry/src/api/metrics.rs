//! `/metrics`: the registry's figures in the OpenMetrics text format (which Prometheus scrapes),
//! encoded by prometheus-client from a fresh [`MetricsSnapshot`] on every scrape. Readable with
//! an admin token or a metrics token (`--metrics-token-file`), so a monitoring system needs no
//! admin rights.

use axum::extract::State;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::auth::MetricsReader;
use super::{ApiError, AppState, typed};
use crate::error::Error;
use crate::model::now_unix;
use crate::store::MetricsSnapshot;

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    kind: String,
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VantageLabels {
    vantage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    address: String,
}

/// `GET /metrics`.
pub async fn metrics(_: MetricsReader, State(s): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = s.store.metrics_snapshot().await?;
    let body = render(&snapshot, now_unix())
        .map_err(|e| ApiError(Error::Invalid(format!("encoding metrics: {e}"))))?;
    Ok(typed(OPENMETRICS, body))
}

/// Encodes a snapshot taken at `now` (Unix seconds).
pub fn render(m: &MetricsSnapshot, now: i64) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("relayguard");

    let open = Family::<FindingLabels, Gauge>::default();
    for (kind, severity, n) in &m.open_findings {
        open.get_or_create(&FindingLabels {
            kind: kind.clone(),
            severity: severity.clone(),
        })
        .set(*n);
    }
    registry.register("open_findings", "Open findings by kind and severity", open);

    let counter = |n: i64| {
        let c = Counter::<u64>::default();
        c.inc_by(u64::try_from(n).unwrap_or(0));
        c
    };
    registry.register(
        "findings_opened",
        "Findings opened or reopened by sweeps",
        counter(m.findings_opened_total),
    );
    registry.register(
        "findings_resolved",
        "Findings resolved by sweeps",
        counter(m.findings_resolved_total),
    );

    let finished = Family::<VantageLabels, Gauge>::default();
    let duration = Family::<VantageLabels, Gauge>::default();
    let results = Family::<VantageLabels, Gauge>::default();
    let open_ports = Family::<VantageLabels, Gauge>::default();
    for v in &m.vantages {
        let l = VantageLabels {
            vantage: v.vantage.clone(),
        };
        finished.get_or_create(&l).set(v.finished_at);
        duration.get_or_create(&l).set(v.duration_seconds);
        results.get_or_create(&l).set(v.results);
        open_ports.get_or_create(&l).set(v.open_ports);
    }
    registry.register(
        "last_sweep_finished_timestamp_seconds",
        "When the latest sweep of each vantage finished",
        finished,
    );
    registry.register(
        "last_sweep_duration_seconds",
        "How long the latest sweep of each vantage ran",
        duration,
    );
    registry.register(
        "last_sweep_results",
        "Host ports the latest sweep of each vantage looked at",
        results,
    );
    registry.register(
        "last_sweep_open_ports",
        "Open ports the latest sweep of each vantage found",
        open_ports,
    );

    let age = Family::<AgentLabels, Gauge>::default();
    for (address, last) in &m.agent_last_report {
        age.get_or_create(&AgentLabels {
            address: address.clone(),
        })
        .set((now - last).max(0));
    }
    registry.register(
        "agent_last_report_age_seconds",
        "Seconds since each host's agent last reported",
        age,
    );

    registry.register(
        "notify_deliveries",
        "Digests notify delivered",
        counter(m.notices_sent_total),
    );
    registry.register(
        "notify_failures",
        "Digests notify failed to deliver",
        counter(m.notify_failures_total),
    );

    let mut body = String::new();
    encode(&mut body, &registry)?;
    Ok(body)
}
