//! The sweep pipeline: targets → paced discovery → audit of open ports → results.
//!
//! Discovery and audits overlap: a host found open is audited at once while discovery goes on,
//! so a sweep takes about as long as its slower half, not the sum of both. Both stages are
//! bounded (connections in flight, hosts under audit) and every new connection, discovery or
//! audit, takes a slot from the same global pace.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use relayguard_core::Direction;
use relayguard_core::scan::{HostResult, HostTimeline, PortState};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::audit::{AuditConfig, AuditSlot, audit_in_slot};
use crate::discover::{self, Answer};
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
    /// Whether open ports are only reported, not audited.
    pub discover_only: bool,
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
    // Found hosts wait here for an audit slot. Unbounded, because an entry is a few bytes and
    // discovery must never stall behind slow audits.
    let (found_tx, found_rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let discovery = discover_all(targets, config, progress.clone(), found_tx);
    let audits = audit_all(found_rx, config, progress, results, started);
    tokio::join!(discovery, audits);
}

/// A discovered port: open and waiting for its audit, or closed or filtered to be reported.
struct Found {
    addr: SocketAddr,
    name: Option<Arc<str>>,
    state: PortState,
    /// When discovery settled it.
    at: Instant,
}

/// One connection attempt still to make: 40 bytes (a `SocketAddr` alone is 32), because silent
/// ports wait in the retry backlog by the tens of thousands.
struct Attempt {
    ip: IpAddr,
    port: u16,
    /// Earlier attempts that heard nothing.
    silent: u32,
    name: Option<Arc<str>>,
}

/// What every discovery attempt shares.
struct Discovery {
    dial: discover::Dial,
    retries: u32,
    report_unreachable: bool,
    progress: Arc<Progress>,
    found: mpsc::UnboundedSender<Found>,
    retry: mpsc::UnboundedSender<Attempt>,
    /// Free places for attempts in flight (`--concurrency`).
    in_flight: Semaphore,
}

/// One place in flight and the task's handle on what all attempts share, in one pointer: the
/// place is given back when the task ends (its attempt settled) or is dropped.
struct Slot(Arc<Discovery>);

impl Slot {
    /// Waits for a free place in flight.
    async fn take(shared: &Arc<Discovery>) -> Slot {
        shared
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed")
            .forget();
        Slot(shared.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.add_permits(1);
    }
}

/// Discovery: one small task per connection attempt, all paced from this one loop.
///
/// Silent ports come back here to be tried again. Because only this loop waits for
/// discovery's turn at the global pace, an audit's connection waits behind at most one
/// discovery attempt, not behind thousands of queued retries.
async fn discover_all(
    targets: &TargetSet,
    config: &SweepConfig,
    progress: Arc<Progress>,
    found: mpsc::UnboundedSender<Found>,
) {
    let (retry, mut retries) = mpsc::unbounded_channel();
    let shared = Arc::new(Discovery {
        dial: discover::Dial {
            source: config.audit.session.source,
            timeout: config.connect_timeout,
        },
        retries: config.filtered_retries,
        report_unreachable: config.report_unreachable,
        progress,
        found,
        retry,
        in_flight: Semaphore::new(config.concurrency.max(1)),
    });
    // Owned items only: a closure over borrowed ports would not be `Send` across the awaits.
    let ports: Arc<[u16]> = config.ports.clone().into();
    let mut fresh = targets.iter().flat_map(move |target| {
        let ports = ports.clone();
        (0..ports.len()).map(move |i| Attempt {
            ip: target.ip,
            port: ports[i],
            silent: 0,
            name: target.name.clone(),
        })
    });
    let backlog = 4 * config.concurrency.max(1);
    let mut tasks = JoinSet::new();
    loop {
        // Fresh addresses first, so every live host is found (and its audit started) as early as
        // the pace allows; retries first once their backlog is a few times the in-flight budget,
        // which keeps the backlog (some 60 bytes an entry), and so memory, independent of the
        // size of the sweep. (Once the budget alone, it saved 3 MiB on the campus /16 but found
        // live hosts later: the sweep took 1.3 s longer.)
        let due_retry = if retries.len() >= backlog {
            retries.try_recv().ok()
        } else {
            None
        };
        let ready = due_retry
            .or_else(|| fresh.next())
            .or_else(|| retries.try_recv().ok());
        let next = match ready {
            Some(attempt) => attempt,
            // Nothing is left to try: wait for the attempts in flight, which may come back.
            None => tokio::select! {
                biased;
                Some(attempt) = retries.recv() => attempt,
                joined = tasks.join_next() => match joined {
                    Some(_) => continue,
                    // Every attempt has finished, so nothing more can come back.
                    None => match retries.try_recv() {
                        Ok(attempt) => attempt,
                        Err(_) => break,
                    },
                },
            },
        };
        let slot = Slot::take(&shared).await;
        // Reap the finished tasks, so that `tasks` does not grow with the size of the sweep.
        while tasks.try_join_next().is_some() {}
        config.pacer.wait().await;
        tasks.spawn(run_attempt(next, slot));
    }
}

/// Waits for one of `slots`, then reaps the tasks that have finished, so that `tasks` does not
/// grow with the size of the sweep.
async fn free_slot(slots: &Arc<Semaphore>, tasks: &mut JoinSet<()>) -> OwnedSemaphorePermit {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    while tasks.try_join_next().is_some() {}
    slot
}

/// One discovery task: a single connection attempt, settled without waiting for anything else.
/// Thousands are in flight at once, so what it holds across its await is kept small (a test
/// checks).
///
/// An `async` block rather than an `async fn`: an async fn's future keeps its arguments twice
/// (as passed and as locals), which here was 80 bytes of each task.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn's future keeps its arguments twice"
)]
fn run_attempt(attempt: Attempt, slot: Slot) -> impl Future<Output = ()> {
    async move {
        let answer = discover::attempt(&attempt.ip, attempt.port, &slot.0.dial).await;
        slot.0.settle(attempt, answer);
        // `slot` is dropped here, after the settling: every place free means every attempt
        // has been settled (and its retry, if any, queued).
    }
}

impl Discovery {
    /// Sends a finished attempt on: back for a retry, or to the second stage.
    ///
    /// Never waits: a discovery task ends with its connection attempt, which keeps the
    /// thousands of them in flight small.
    fn settle(&self, mut attempt: Attempt, answer: Answer) {
        if answer == Answer::Silent && attempt.silent < self.retries {
            attempt.silent += 1;
            // The loop holds a receiver until every attempt has finished.
            let _ = self.retry.send(attempt);
            return;
        }
        let state = answer.state();
        self.progress.count(state);
        if state == PortState::Open || self.report_unreachable {
            // The second stage only goes away when the sweep is being stopped.
            let _ = self.found.send(Found {
                addr: SocketAddr::new(attempt.ip, attempt.port),
                name: attempt.name,
                state,
                at: Instant::now(),
            });
        }
    }
}

/// Audits open ports, at most `audit_concurrency` hosts at once, in the order they were found,
/// and reports closed and filtered ones when asked to.
async fn audit_all(
    mut found: mpsc::UnboundedReceiver<Found>,
    config: &SweepConfig,
    progress: Arc<Progress>,
    results: mpsc::Sender<HostResult>,
    started: Instant,
) {
    let since = move |t: Instant| t.saturating_duration_since(started).as_millis() as u64;
    let slots = Arc::new(Semaphore::new(config.audit_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    while let Some(host) = found.recv().await {
        if host.state != PortState::Open || config.discover_only {
            // No conversation: the port state is the whole result.
            let mut r = HostResult::unreachable(host.addr.ip(), host.addr.port(), host.state);
            r.target_name = host.name.as_deref().map(str::to_string);
            r.source = config.audit.session.source;
            let discovered_ms = since(host.at);
            r.timeline = Some(HostTimeline {
                discovered_ms,
                audit_started_ms: discovered_ms,
                first_reply_ms: None,
                done_ms: discovered_ms,
            });
            // The receiver only goes away when the caller stopped listening.
            let _ = results.send(r).await;
            continue;
        }
        let slot = free_slot(&slots, &mut tasks).await;
        let audit_config = config.audit.clone();
        let pacer = config.pacer.clone();
        let progress = progress.clone();
        let results = results.clone();
        let slot = AuditSlot::new(slots.clone(), slot);
        tasks.spawn(async move {
            let audit_started_ms = since(Instant::now());
            // The audit gives its slot back while it only waits out a greylisting delay, so a
            // greylisting host does not hold up the others.
            let mut result = audit_in_slot(
                host.addr.ip(),
                host.addr.port(),
                host.name.as_deref(),
                audit_config,
                pacer,
                slot,
            )
            .await;
            let first_reply_ms = result
                .transcript
                .lines
                .iter()
                .find(|l| l.dir == Direction::Server)
                .map(|l| audit_started_ms + l.ms);
            result.timeline = Some(HostTimeline {
                discovered_ms: since(host.at),
                audit_started_ms,
                first_reply_ms,
                done_ms: since(Instant::now()),
            });
            progress.audited.fetch_add(1, Ordering::Relaxed);
            progress
                .findings
                .fetch_add(result.findings.len() as u64, Ordering::Relaxed);
            let _ = results.send(result).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What discovery's attempts share, with `places` in flight; what they send goes nowhere.
    fn discovery(places: usize) -> Arc<Discovery> {
        let (found, _) = mpsc::unbounded_channel();
        let (retry, _) = mpsc::unbounded_channel();
        Arc::new(Discovery {
            dial: discover::Dial {
                source: None,
                timeout: Duration::from_secs(1),
            },
            retries: 0,
            report_unreachable: true,
            progress: Arc::default(),
            found,
            retry,
            in_flight: Semaphore::new(places),
        })
    }

    #[test]
    fn a_discovery_task_stays_small() {
        let shared = discovery(1);
        let slot = Slot(shared.clone());
        let attempt = Attempt {
            ip: "192.0.2.1".parse().unwrap(),
            port: 25,
            silent: 0,
            name: None,
        };
        assert_eq!(std::mem::size_of_val(&attempt), 40);
        let task = run_attempt(attempt, slot);
        // A whole HostResult held across an await once made this 1.7 KB, and with 16,000
        // attempts in flight that was most of a sweep's memory. Tokio aligns a task with its
        // header and trailer (some 104 bytes) to 128 bytes: a future of up to 280 bytes takes
        // 384, one of 504 bytes (copies of the connect's arguments, the arguments of an
        // `async fn` kept twice, tokio's own connect future) took 640.
        let size = std::mem::size_of_val(&task);
        assert!(size <= 280, "a discovery task's future is {size} bytes");
    }

    #[tokio::test]
    async fn a_slot_is_given_back_when_its_task_ends_or_is_dropped() {
        let shared = discovery(2);
        let first = Slot::take(&shared).await;
        let second = Slot::take(&shared).await;
        assert_eq!(shared.in_flight.available_permits(), 0);
        drop(first);
        assert_eq!(shared.in_flight.available_permits(), 1);
        // Nothing listens on a port just closed: the attempt ends at once, with a reset.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let attempt = Attempt {
            ip: "127.0.0.1".parse().unwrap(),
            port,
            silent: 0,
            name: None,
        };
        run_attempt(attempt, second).await;
        assert_eq!(shared.in_flight.available_permits(), 2);
        assert_eq!(shared.progress.closed.load(Ordering::Relaxed), 1);
    }
}
