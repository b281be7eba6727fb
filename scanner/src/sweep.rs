//! The sweep pipeline: targets → paced discovery → audit of open ports → results.
//!
//! Discovery and audits overlap: a host found open is audited at once while discovery goes on,
//! so a sweep takes about as long as its slower half, not the sum of both. Both stages are
//! bounded (connections in flight, hosts under audit) and every new connection, discovery or
//! audit, takes a slot from the same global pace.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use relayguard_core::scan::{HostResult, PortState};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::audit::{AuditConfig, audit};
use crate::discover;
use crate::pacing::Pacer;
use crate::targets::TargetSet;

/// How a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Ports to probe on every address.
    pub ports: Vec<u16>,
    /// Most discovery connections in flight.
    pub concurrency: usize,
    /// Most hosts under audit at once.
    pub audit_concurrency: usize,
    /// How long a discovery connect may take.
    pub connect_timeout: Duration,
    /// How often a silent (filtered) port is tried again.
    pub filtered_retries: u32,
    /// Whether closed and filtered ports are reported too.
    pub report_unreachable: bool,
    /// The audit settings.
    pub audit: Arc<AuditConfig>,
    /// The global pace of new connections.
    pub pacer: Arc<Pacer>,
}

/// Live counters of a sweep, for the progress bar and the summary.
#[derive(Debug, Default)]
pub struct Progress {
    /// Address/port pairs whose discovery finished.
    pub probed: AtomicU64,
    /// Of those, open.
    pub open: AtomicU64,
    /// Of those, closed.
    pub closed: AtomicU64,
    /// Of those, filtered.
    pub filtered: AtomicU64,
    /// Open ports whose audit finished.
    pub audited: AtomicU64,
    /// Findings so far.
    pub findings: AtomicU64,
}

impl Progress {
    fn count(&self, state: PortState) {
        self.probed.fetch_add(1, Ordering::Relaxed);
        let counter = match state {
            PortState::Open => &self.open,
            PortState::Closed => &self.closed,
            PortState::Filtered => &self.filtered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sweeps `targets`, sending each result to `results` as soon as it is complete.
///
/// Dropping (or aborting) the returned future stops the sweep: tasks in flight are cancelled and
/// whatever was already sent stays sent.
pub async fn run(
    targets: &TargetSet,
    config: &SweepConfig,
    progress: Arc<Progress>,
    results: mpsc::Sender<HostResult>,
) {
    let discovery_slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let audit_slots = Arc::new(Semaphore::new(config.audit_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for target in targets.iter() {
        for &port in &config.ports {
            let slot = discovery_slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            // Reap finished tasks so the set does not grow with the size of the sweep.
            while tasks.try_join_next().is_some() {}
            config.pacer.wait().await;
            let addr = SocketAddr::new(target.ip, port);
            let name = target.name.clone();
            let audit_slots = audit_slots.clone();
            let progress = progress.clone();
            let results = results.clone();
            let config = config.clone();
            tasks.spawn(async move {
                let source = config.audit.session.source;
                let state = discover::probe(
                    addr,
                    source,
                    config.connect_timeout,
                    config.filtered_retries,
                    &config.pacer,
                )
                .await;
                drop(slot);
                progress.count(state);
                let result = if state == PortState::Open {
                    let _audit_slot = audit_slots.acquire_owned().await;
                    // Boxed: the audit's state is large, and inlined it would make every
                    // discovery task (most of which find nothing) as big as an audit.
                    let result = Box::pin(audit(
                        addr.ip(),
                        port,
                        name.as_deref(),
                        config.audit.clone(),
                        config.pacer.clone(),
                    ))
                    .await;
                    progress.audited.fetch_add(1, Ordering::Relaxed);
                    progress
                        .findings
                        .fetch_add(result.findings.len() as u64, Ordering::Relaxed);
                    Some(result)
                } else if config.report_unreachable {
                    let mut r = HostResult::unreachable(addr.ip(), port, state);
                    r.target_name = name.as_deref().map(str::to_string);
                    Some(r)
                } else {
                    None
                };
                if let Some(result) = result {
                    // The receiver only goes away when the caller stopped listening.
                    let _ = results.send(result).await;
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}
