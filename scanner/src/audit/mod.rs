//! Auditing one open SMTP port: the sessions, the tests run in them, and the result.
//!
//! The audit knows no probe by name: it runs the list in [`crate::probes::PROBES`]. Each probe
//! plans its tests from what the first session learned, the audit schedules and runs them, and
//! each probe then reviews the results and draws its findings.
//!
//! The first session learns the server (greeting, EHLO, TLS, own names) and runs the tests
//! placed first (VRFY, EXPN, backscatter) and a few spread ones (relay vectors). As soon as it
//! knows the server's names, the other spread tests go to fresh sessions that run side by side
//! with it (at most `sessions_per_host` open at once): Postfix delays every reply by a second
//! after ten errors in one session and hangs up after twenty, and Exim hangs up sooner, so one
//! long session (as nmap does) is both slow and wrong. A server hardened to slow down sooner (a
//! lower `smtpd_soft_error_limit`) is noticed by its replies: once it holds them back, the
//! session is left and the next test goes to a fresh one. A session that is dropped or answered
//! with 421 is reopened and the interrupted test is tried once more.
//!
//! The spread tests wait in a pool that sessions take from one at a time (see [`run`]), so a
//! session held up by slow answers leaves the rest to the others. A server that is slow without
//! punishing errors (a positive reply took half a second or more: a slow recipient lookup, not
//! an error sleep) gets more sessions, one per slow answer while tests wait, up to
//! `sessions_per_host`; a server holding replies back after errors never does.
//!
//! A host whose first greeting came in stages may sit behind a gate (Postfix's postscreen) that
//! defers a new client's first session and lets it through only when it connects again (see
//! [`run`]): the fresh sessions then wait until the first session has learned whether the gate
//! opens, so they knock once, not each one twice.

mod greylist;
mod run;
mod schedule;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use relayguard_core::rules::RuleSet;
use relayguard_core::scan::{HostResult, PortState, SmtpInfo, Verdict};
use relayguard_core::{Direction, Transcript, TranscriptLine};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use crate::dns::Dns;
use crate::pacing::Pacer;
use crate::probes::{
    Audited, HostFacts, OpeningSeen, OwnNames, PROBES, TestRecord, relay_undetermined,
};
use crate::smtp::session::{self, extension};
use crate::smtp::{
    Connection, Failed, Greeting, OpenFailure, Reply, SessionConfig, SessionError, SessionTarget,
    Timing, TlsMode,
};

/// The DNS checks run for every host that speaks SMTP.
#[derive(Clone)]
pub struct DnsAudit {
    /// The resolver.
    pub dns: Dns,
    /// DNS blocklist zones to look each host up in (none by default).
    pub dnsbl_zones: Vec<String>,
}

impl std::fmt::Debug for DnsAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsAudit")
            .field("servers", &self.dns.servers())
            .field("dnsbl_zones", &self.dnsbl_zones)
            .finish()
    }
}

/// Everything an audit needs besides the target.
#[derive(Debug)]
pub struct AuditConfig {
    /// Connection settings shared by every session.
    pub session: SessionConfig,
    /// The third-party domain used in relay vectors.
    pub external_domain: String,
    /// Extra domains the host may consider local (for the backscatter test).
    pub local_domains: Vec<String>,
    /// Local part of the probe sender.
    pub probe_sender: String,
    /// Local part of the probe recipient.
    pub probe_recipient: String,
    /// How long one reply may take.
    pub command_timeout: Duration,
    /// How long the whole audit of one port may take.
    pub host_deadline: Duration,
    /// How many sessions one host may have open at once.
    pub sessions_per_host: usize,
    /// How many relay tests one session runs before a fresh one is opened.
    pub tests_per_session: usize,
    /// How long after a greylisting deferral its tests are tried again with the same envelope
    /// (zero: never); the host's deadline is moved for that retry, and only for that.
    pub greylist_wait: Duration,
    /// Run every test even after one decided its probe's verdict (`--all-vectors`): by default
    /// a host proven an open relay by a plainly external recipient gets no further relay
    /// vectors, and they are listed as not run.
    pub all_vectors: bool,
    /// The rules.
    pub rules: Arc<RuleSet>,
    /// DNS checks, unless disabled.
    pub dns: Option<DnsAudit>,
}

/// State shared by the sessions of one host.
struct Host {
    addr: SocketAddr,
    known_name: Option<String>,
    config: Arc<AuditConfig>,
    pacer: Arc<Pacer>,
    /// When the audit started (transcript times are relative to it).
    started: Instant,
    /// The host's deadline, shared with [`audit`]'s cut-off: a greylisting retry moves it.
    deadline: Arc<Deadline>,
    sessions: AtomicU32,
    /// One permit per session that may be open at once (`sessions_per_host`).
    session_slots: Arc<Semaphore>,
    implicit_tls: bool,
    /// Set when a STARTTLS handshake failed: later sessions stay in plaintext.
    tls_broken: AtomicBool,
    /// Set when the host refused a new session (a 421 rate limit, a 554, a failed connect) or
    /// broke off too many: later tests are not run rather than hammering it into a longer block
    /// or opening a connection per test.
    refused: OnceLock<String>,
    /// Sessions that ended in a protocol error, a timeout or out-of-turn data.
    broken_sessions: AtomicU32,
    /// The transcript notes of every desynchronised session (with a few lines before each).
    desyncs: Mutex<Vec<TranscriptLine>>,
    /// Probes whose verdict a decisive test already settled (see [`crate::probes::TestSpec::decisive`]).
    decided: Mutex<Vec<&'static str>>,
    /// Sessions a gate in front of the server deferred (their tests ran again).
    deferrals: AtomicU32,
    /// Set once a session's greeting came in stages: the host may sit behind a gate.
    gated: AtomicBool,
    /// The first session opened after a gate deferred one, and its opening: what the server
    /// behind the gate offers (the gate's own EHLO offers neither PIPELINING nor AUTH).
    past_gate: Mutex<Option<(u32, Greeting)>>,
    /// Whether fresh sessions may open: false while the first session, greeted in stages, has
    /// not yet learned whether the host's gate opens.
    gate: tokio::sync::watch::Sender<bool>,
    /// Woken when a session finds the server slow without error sleeps (see
    /// [`Connection::answered_slowly`]): the spread tests may then use more sessions.
    slow: tokio::sync::Notify,
    /// Set once a session found the server slow without error sleeps.
    slow_seen: AtomicBool,
}

/// After this many broken sessions (protocol errors, timeouts, out-of-turn data) no new session
/// is opened: a server that breaks every session would otherwise cost a connection per test.
const BROKEN_SESSIONS: u32 = 3;

/// Lines of a desynchronised session kept before each desync note as evidence.
const DESYNC_CONTEXT: usize = 4;

impl Host {
    /// A host about to be audited, nothing known of it yet.
    fn new(
        addr: SocketAddr,
        known_name: Option<&str>,
        config: Arc<AuditConfig>,
        pacer: Arc<Pacer>,
        started: Instant,
        deadline: Arc<Deadline>,
    ) -> Host {
        Host {
            addr,
            known_name: known_name.map(str::to_string),
            started,
            deadline,
            session_slots: Arc::new(Semaphore::new(config.sessions_per_host.max(1))),
            config,
            pacer,
            sessions: AtomicU32::new(0),
            implicit_tls: addr.port() == 465,
            tls_broken: AtomicBool::new(false),
            refused: OnceLock::new(),
            broken_sessions: AtomicU32::new(0),
            desyncs: Mutex::new(Vec::new()),
            decided: Mutex::new(Vec::new()),
            deferrals: AtomicU32::new(0),
            gated: AtomicBool::new(false),
            slow: tokio::sync::Notify::new(),
            slow_seen: AtomicBool::new(false),
            past_gate: Mutex::new(None),
            gate: tokio::sync::watch::channel(true).0,
        }
    }

    fn mode(&self) -> TlsMode {
        if self.implicit_tls {
            TlsMode::Implicit
        } else if self.tls_broken.load(Ordering::Relaxed) {
            TlsMode::Plain
        } else {
            TlsMode::StartTls
        }
    }

    async fn open(&self) -> Result<(Connection, Greeting), Failed> {
        let number = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let target = SessionTarget {
            addr: self.addr,
            known_name: self.known_name.as_deref(),
            mode: self.mode(),
            session: number,
            timing: self.timing(),
        };
        match self
            .within(session::open(&self.config.session, &self.pacer, &target))
            .await
        {
            Some(opened) => opened,
            None => {
                // The opening was abandoned mid-way (a stalled connect, pace or handshake):
                // what it had seen went with it, so the transcript only says why.
                let mut transcript = Transcript::default();
                transcript.push(TranscriptLine {
                    session: number,
                    ms: self.started.elapsed().as_millis() as u64,
                    dir: Direction::Note,
                    text: format!(
                        "host deadline reached while opening a session to {}",
                        self.addr
                    ),
                });
                Err(Failed {
                    reason: OpenFailure::Lost(SessionError::HostDeadline),
                    transcript,
                    banner: None,
                    tls: None,
                    starttls_injection: None,
                })
            }
        }
    }

    /// Runs `work` under the audit's deadline: `None` when the deadline came first. Every
    /// await of the audit that is not a reply on a live connection (which the connection
    /// bounds by the same deadline) goes through here, so no session, reconnect, handshake or
    /// DNS lookup can hold a host past `--host-deadline`.
    async fn within<F: Future>(&self, work: F) -> Option<F::Output> {
        timeout_at(self.deadline.get(), work).await.ok()
    }

    fn deadline_passed(&self) -> bool {
        Instant::now() >= self.deadline.get()
    }

    /// The timing a session opened now runs under.
    fn timing(&self) -> Timing {
        Timing {
            started: self.started,
            command_timeout: self.config.command_timeout,
            deadline: self.deadline.get(),
        }
    }

    /// Counts a session ended by `error`; past [`BROKEN_SESSIONS`] the host gets no new one. A
    /// hang-up or 421 is not counted (reconnecting is the answer to those), nor is the deadline.
    fn session_broke(&self, error: &SessionError) {
        if matches!(error, SessionError::Closed | SessionError::HostDeadline) {
            return;
        }
        let broken = self.broken_sessions.fetch_add(1, Ordering::Relaxed) + 1;
        if broken >= BROKEN_SESSIONS {
            let _ = self.refused.set(format!(
                "{broken} sessions broke off with protocol errors, timeouts or out-of-turn data (last: {error})"
            ));
        }
    }

    /// Records that `probe`'s verdict is settled.
    fn decide(&self, probe: &'static str) {
        let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
        if !decided.contains(&probe) {
            decided.push(probe);
        }
    }

    /// Withdraws a decision whose evidence was discarded (its session fell out of turn).
    fn undecide(&self, probe: &'static str) {
        self.decided
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|p| *p != probe);
    }

    /// Whether `probe`'s remaining tests can be skipped: its verdict is settled and the audit
    /// was not asked for every test.
    fn skips(&self, probe: &'static str) -> bool {
        !self.config.all_vectors
            && self
                .decided
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&probe)
    }

    /// Keeps the desync notes of a session's transcript, each with the lines before it.
    fn note_desync(&self, session: &Transcript) {
        let mut kept = self
            .desyncs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, line) in session.lines.iter().enumerate() {
            if is_desync_note(line) {
                kept.extend_from_slice(&session.lines[i.saturating_sub(DESYNC_CONTEXT)..=i]);
            }
        }
    }

    /// Counts a session a gate deferred.
    fn note_deferral(&self) {
        self.deferrals.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps the opening of the first session opened after a gate deferred one.
    fn note_opened(&self, session: u32, greeting: &Greeting) {
        if self.deferrals.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut kept = self
            .past_gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.get_or_insert_with(|| (session, greeting.clone()));
    }

    /// The opening kept by [`Host::note_opened`].
    fn past_gate(&self) -> Option<(u32, Greeting)> {
        self.past_gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Lets fresh sessions open (see [`Host::gate_known`]).
    fn gate_settled(&self) {
        self.gate
            .send_if_modified(|open| !std::mem::replace(open, true));
    }

    /// Waits until fresh sessions may open: at once, unless the first session was greeted in
    /// stages and has not yet had an envelope answered past the gate, or found it shut, or
    /// ended.
    async fn gate_known(&self) {
        let mut known = self.gate.subscribe();
        // The sender lives as long as the host, so this only ends when the flag is set.
        let _ = known.wait_for(|open| *open).await;
    }

    /// Records that the server answered slowly without error sleeps: more sessions may open.
    fn note_slow(&self) {
        self.slow_seen.store(true, Ordering::Relaxed);
        self.slow.notify_one();
    }

    /// Whether a session found the server slow without error sleeps.
    fn is_slow(&self) -> bool {
        self.slow_seen.load(Ordering::Relaxed)
    }

    /// The evidence kept by [`Host::note_desync`].
    fn desync_evidence(&self) -> Vec<TranscriptLine> {
        self.desyncs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The deadline of one audit: fixed at `--host-deadline` from the start, except that a
/// greylisting retry moves it (see [`greylist`]).
#[derive(Debug)]
struct Deadline(Mutex<Instant>);

impl Deadline {
    fn get(&self) -> Instant {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, at: Instant) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }
}

/// The sweep's audit slot a host holds (one of `--audit-concurrency`): given back while the host
/// only waits out a greylisting delay, so other hosts are audited meanwhile, and taken again
/// for the retry.
#[derive(Debug)]
pub struct AuditSlot {
    slots: Option<Arc<Semaphore>>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl AuditSlot {
    /// A slot `permit` taken from `slots`.
    pub fn new(slots: Arc<Semaphore>, permit: tokio::sync::OwnedSemaphorePermit) -> AuditSlot {
        AuditSlot {
            slots: Some(slots),
            permit: Some(permit),
        }
    }

    /// No slot: an audit run on its own.
    pub fn none() -> AuditSlot {
        AuditSlot {
            slots: None,
            permit: None,
        }
    }

    /// Gives the slot back.
    fn release(&mut self) {
        self.permit = None;
    }

    /// Takes a slot again (waits for one).
    async fn reacquire(&mut self) {
        if let (Some(slots), None) = (&self.slots, &self.permit) {
            self.permit = slots.clone().acquire_owned().await.ok();
        }
    }
}

/// Whether a transcript line is the connection's note of out-of-turn data.
fn is_desync_note(line: &TranscriptLine) -> bool {
    line.dir == Direction::Note && line.text.starts_with("desync:")
}

/// How long past the host deadline an audit may take to wrap up (QUIT, results) before it is
/// cut off.
const WRAP_UP: Duration = Duration::from_millis(500);

/// Audits one open port. Never fails: what went wrong is part of the result.
///
/// The audit owns one deadline, `host_deadline` from the start: every session, reconnect, TLS
/// handshake and DNS check runs under it, and the whole audit is cut off half a second later
/// should anything still be running, so no port takes more than a second past the deadline.
/// Only a greylisting retry moves the deadline (see [`AuditConfig::greylist_wait`]).
pub async fn audit(
    ip: IpAddr,
    port: u16,
    known_name: Option<&str>,
    config: Arc<AuditConfig>,
    pacer: Arc<Pacer>,
) -> HostResult {
    audit_in_slot(ip, port, known_name, config, pacer, AuditSlot::none()).await
}

/// [`audit`], holding one of the sweep's audit slots, which it gives back while it waits out a
/// greylisting delay.
pub async fn audit_in_slot(
    ip: IpAddr,
    port: u16,
    known_name: Option<&str>,
    config: Arc<AuditConfig>,
    pacer: Arc<Pacer>,
    slot: AuditSlot,
) -> HostResult {
    let started = Instant::now();
    let deadline = Arc::new(Deadline(Mutex::new(started + config.host_deadline)));
    let audited = audit_port(
        ip,
        port,
        known_name,
        config,
        pacer,
        started,
        deadline.clone(),
        slot,
    );
    let mut audited = std::pin::pin!(audited);
    loop {
        let cut_off = deadline.get() + WRAP_UP;
        match timeout_at(cut_off, &mut audited).await {
            Ok(result) => return result,
            // The deadline was moved meanwhile (a greylisting retry): wait on.
            Err(_) if deadline.get() + WRAP_UP > cut_off => continue,
            Err(_) => break,
        }
    }
    let mut result = HostResult::unreachable(ip, port, PortState::Open);
    result.target_name = known_name.map(str::to_string);
    result.error = Some("host deadline reached; the audit was cut off and its results lost".into());
    result.elapsed_ms = started.elapsed().as_millis() as u64;
    result
}

#[allow(clippy::too_many_arguments)]
async fn audit_port(
    ip: IpAddr,
    port: u16,
    known_name: Option<&str>,
    config: Arc<AuditConfig>,
    pacer: Arc<Pacer>,
    started: Instant,
    deadline: Arc<Deadline>,
    mut slot: AuditSlot,
) -> HostResult {
    let host = Arc::new(Host::new(
        SocketAddr::new(ip, port),
        known_name,
        config,
        pacer,
        started,
        deadline,
    ));
    let mut result = HostResult::unreachable(ip, port, PortState::Open);
    result.target_name = known_name.map(str::to_string);
    result.source = host.config.session.source;

    // Session 1 learns the server while reverse DNS is looked up.
    let reverse = async {
        match &host.config.dns {
            Some(d) if !ip.is_loopback() => Some(host.within(d.dns.reverse_checks(ip)).await),
            _ => None,
        }
    };
    // The first session counts against the host's session limit until its tests are done.
    let first_slot = host
        .session_slots
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    let (reverse, first) = tokio::join!(reverse, open_first_session(&host));
    let reverse = cut_short(reverse, "reverse DNS", &mut result.notes);
    let mut transcript = first.transcript;
    let (conn, greeting) = match first.result {
        Ok(pair) => {
            // The address the kernel chose, unless --source fixed it.
            result.source = result.source.or(pair.0.local_addr().map(|a| a.ip()));
            pair
        }
        Err(failed) => {
            transcript.append(failed.transcript);
            result.ptr = reverse.and_then(|r| r.ptr);
            return finish_unopened(result, failed.reason, failed.banner, transcript, &host);
        }
    };
    if greeting.staged {
        // Until the first session knows whether a gate lets it through, no fresh one opens.
        host.gate.send_replace(false);
    }
    if host.config.dns.is_some() && ip.is_loopback() {
        result.notes.push(
            "reverse DNS not checked: resolvers answer localhost for loopback addresses".into(),
        );
    }
    let ptr = reverse.as_ref().and_then(|r| r.ptr.clone());

    let names = OwnNames::learn(
        host.known_name.as_deref(),
        &greeting,
        ptr.as_deref(),
        &host.config.local_domains,
    );
    let facts = HostFacts {
        ip,
        port,
        names: &names,
        external_domain: &host.config.external_domain,
        probe_sender: &host.config.probe_sender,
        probe_recipient: &host.config.probe_recipient,
        rules: &host.config.rules,
    };

    let (first_tests, spread) = schedule::plan_tests(&facts);
    // Kept to run greylisted tests again with the very same envelopes.
    let planned: Vec<_> = first_tests.iter().chain(&spread).cloned().collect();
    let (first_tests, chunks) = schedule::deal(first_tests, spread, host.config.tests_per_session);
    let workers = chunks.len();
    let pool = Arc::new(run::Pool::beside_first(
        chunks.into_iter().flatten().collect(),
        host.config.tests_per_session,
    ));
    let tests = async {
        // The first session goes on with its tests while the fresh sessions open: on a host
        // that delays its greeting, that saves a whole greeting's wait.
        let mut t = Transcript::default();
        let first = async {
            let live = run::Live {
                conn,
                staged: greeting.staged,
            };
            // Once its own tests are done it takes spread ones too, in fresh sessions.
            let taker = run::Taker::new(&pool, 0);
            let done = run::run_sequence(&host, Some(live), first_tests, Some(taker), &mut t).await;
            drop(first_slot);
            pool.first_finished();
            done
        };
        let mut pool_t = Transcript::default();
        let (mut done, pool_done) = tokio::join!(
            first,
            run::run_pool(&host, pool.clone(), workers, &mut pool_t)
        );
        done.extend(pool_done);
        t.append(pool_t);
        (done, t)
    };
    let dnsbl = async {
        match &host.config.dns {
            Some(d) if !d.dnsbl_zones.is_empty() => {
                Some(host.within(d.dns.dnsbl_checks(ip, &d.dnsbl_zones)).await)
            }
            _ => None,
        }
    };
    let ((mut done, t), dnsbl) = tokio::join!(tests, dnsbl);
    let dnsbl = cut_short(dnsbl, "DNS blocklists", &mut result.notes);
    transcript.append(t);
    if let Some(note) =
        greylist::retry(&host, &planned, &mut done, &mut transcript, &mut slot).await
    {
        result.notes.push(note);
    }
    done.sort_by_key(|d| d.index);
    let mut records: Vec<TestRecord> = done.into_iter().map(|d| d.record).collect();
    for probe in PROBES {
        probe.review(&mut records, &facts);
    }

    let deferred = host.deferrals.load(Ordering::Relaxed);
    if deferred > 0 {
        result.notes.push(format!(
            "a gate in front of the server (as postscreen) greeted in stages and deferred {deferred} session(s) with 450 4.3.2: their tests ran once more in a fresh session"
        ));
    }

    let desyncs = host.desync_evidence();
    let times = desyncs.iter().filter(|l| is_desync_note(l)).count();
    if times > 0 {
        result.notes.push(format!(
            "the server sent data when no reply was due ({times} times): the verdicts of those sessions were discarded and their tests run once more in fresh sessions"
        ));
    }

    let first_session = transcript
        .lines
        .iter()
        .map(|l| l.session)
        .min()
        .unwrap_or(1);
    // Behind a gate, the first session talked to the gate: what the server offers is what the
    // first session past it saw.
    let past_gate = host.past_gate();
    let (seen, opening_session, failed_tls, injection) = match &past_gate {
        Some((session, opened)) => (opened, *session, None, None),
        None => (&greeting, first_session, first.failed_tls, first.injection),
    };
    let smtp = smtp_info(&host, seen, failed_tls, &names.routing);
    let opening: Vec<TranscriptLine> = transcript
        .session(opening_session)
        .take(40)
        .cloned()
        .collect();
    let audited = Audited {
        ip,
        port,
        external_domain: &host.config.external_domain,
        rules: &host.config.rules,
        opening: OpeningSeen::Opened {
            smtp: &smtp,
            starttls_injection: seen.starttls_injection.as_deref().or(injection.as_deref()),
            lines: &opening,
        },
        tests: &records,
        desyncs: &desyncs,
    };
    result.findings = probe_findings(&audited);
    note_undetermined(&audited, &mut result.notes);
    for checks in reverse.map(|r| r.checks).into_iter().chain(dnsbl) {
        result.findings.extend(checks.findings);
        result.notes.extend(checks.inconclusive);
    }
    if let Some(why) = host.refused.get() {
        let skipped = records
            .iter()
            .filter(|t| t.result.session == 0 && t.result.verdict == Verdict::Inconclusive)
            .count();
        result.notes.push(format!(
            "{skipped} of {} tests did not run ({why}); the relay verdict is incomplete, sweep this host again later",
            records.len()
        ));
    }
    result.ptr = ptr;
    result.tests = records.into_iter().map(|t| t.result).collect();
    result.smtp = Some(smtp);
    finish(result, transcript, &host)
}

/// The first session's opening, with what a failed STARTTLS attempt before it showed.
struct FirstSession {
    result: Result<(Connection, Greeting), Failed>,
    transcript: Transcript,
    failed_tls: Option<relayguard_core::scan::TlsInfo>,
    injection: Option<String>,
}

/// Opens session 1. A failed STARTTLS handshake is remembered and the session reopened in
/// plaintext, so the relay tests still run.
async fn open_first_session(host: &Host) -> FirstSession {
    let mut first = FirstSession {
        result: host.open().await,
        transcript: Transcript::default(),
        failed_tls: None,
        injection: None,
    };
    if !host.implicit_tls
        && let Err(Failed {
            reason: OpenFailure::Tls,
            ..
        }) = &first.result
    {
        host.tls_broken.store(true, Ordering::Relaxed);
        let Err(failed) = std::mem::replace(&mut first.result, host.open().await) else {
            unreachable!("matched as an error above")
        };
        first.transcript = failed.transcript;
        first.failed_tls = failed.tls;
        first.injection = failed.starttls_injection;
    }
    if let Err(Failed {
        reason: OpenFailure::Lost(SessionError::Desync(_)),
        transcript,
        ..
    }) = &mut first.result
    {
        // Out of turn already at the opening (a second greeting): try once more in step.
        host.note_desync(transcript);
        first.transcript.append(std::mem::take(transcript));
        first.result = host.open().await;
        if let Err(failed) = &first.result {
            host.note_desync(&failed.transcript);
        }
    }
    first
}

/// A check that ran under the deadline: `None` when it was not run, `Some(None)` when the
/// deadline cut it short, which is noted.
fn cut_short<T>(check: Option<Option<T>>, what: &str, notes: &mut Vec<String>) -> Option<T> {
    let check = check?;
    if check.is_none() {
        notes.push(format!("{what} not checked: host deadline reached"));
    }
    check
}

/// Says on the host, besides its `relay-undetermined` finding, that it was not judged this time.
fn note_undetermined(audited: &Audited<'_>, notes: &mut Vec<String>) {
    if let Some(why) = relay_undetermined::reason(audited) {
        notes.push(format!(
            "relay verdict not reached this time ({why}): the host was not judged, sweep it again later"
        ));
    }
}

/// Every probe's findings, in the order their kinds are declared (the order the output has
/// always had).
fn probe_findings(seen: &Audited<'_>) -> Vec<relayguard_core::Finding> {
    let mut findings: Vec<_> = PROBES.iter().flat_map(|p| p.findings(seen)).collect();
    findings.sort_by_key(|f| f.kind);
    findings
}

fn smtp_info(
    host: &Host,
    greeting: &Greeting,
    failed_tls: Option<relayguard_core::scan::TlsInfo>,
    names: &[String],
) -> SmtpInfo {
    let banner_text = greeting.banner.wire_lines().join("\n");
    let ehlo_lines: Vec<String> = greeting.ehlo.lines.iter().skip(1).cloned().collect();
    let plaintext = greeting.plaintext_ehlo.as_ref().unwrap_or(&greeting.ehlo);
    let auth_before_tls = if host.implicit_tls {
        Vec::new()
    } else {
        extension(plaintext, "AUTH")
            .map(|mechs| {
                mechs
                    .split_ascii_whitespace()
                    .map(str::to_ascii_uppercase)
                    .collect()
            })
            .unwrap_or_default()
    };
    SmtpInfo {
        mta: host
            .config
            .rules
            .identify_mta(&banner_text, &greeting.ehlo.lines)
            .to_string(),
        banner: banner_text,
        ehlo: ehlo_lines,
        helo_fallback: greeting.helo_fallback,
        names: names.to_vec(),
        starttls: extension(plaintext, "STARTTLS").is_some(),
        auth_before_tls,
        tls: greeting.tls.clone().or(failed_tls),
    }
}

fn finish_unopened(
    mut result: HostResult,
    reason: OpenFailure,
    banner: Option<Reply>,
    transcript: Transcript,
    host: &Host,
) -> HostResult {
    let lines: Vec<TranscriptLine> = transcript.lines.iter().take(10).cloned().collect();
    let desyncs = host.desync_evidence();
    let audited = Audited {
        ip: host.addr.ip(),
        port: host.addr.port(),
        external_domain: &host.config.external_domain,
        rules: &host.config.rules,
        opening: OpeningSeen::Failed {
            reason: &reason,
            lines: &lines,
        },
        tests: &[],
        desyncs: &desyncs,
    };
    result.findings = probe_findings(&audited);
    note_undetermined(&audited, &mut result.notes);
    if let Some(banner) = banner {
        let banner = banner.wire_lines().join("\n");
        result.smtp = Some(SmtpInfo {
            mta: host.config.rules.identify_mta(&banner, &[]).to_string(),
            banner,
            ..SmtpInfo::default()
        });
    }
    result.error = Some(match reason {
        OpenFailure::NoBanner(SessionError::Timeout(t)) => {
            format!("no SMTP greeting within {t:?} (tarpit, or not SMTP)")
        }
        other => other.to_string(),
    });
    finish(result, transcript, host)
}

fn finish(mut result: HostResult, mut transcript: Transcript, host: &Host) -> HostResult {
    // Sessions ran side by side; present each one's lines together, in session order.
    transcript.lines.sort_by_key(|l| l.session);
    result.transcript = transcript;
    result.elapsed_ms = host.started.elapsed().as_millis() as u64;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_task_stays_small() {
        let config = Arc::new(AuditConfig {
            session: crate::smtp::SessionConfig {
                ehlo_name: "scanner.test".into(),
                connect_timeout: Duration::from_secs(2),
                source: None,
                tls: crate::smtp::TlsSetup::new(Vec::new()).unwrap(),
            },
            external_domain: "ext.example".into(),
            local_domains: Vec::new(),
            probe_sender: "probe".into(),
            probe_recipient: "victim".into(),
            command_timeout: Duration::from_secs(2),
            host_deadline: Duration::from_secs(20),
            sessions_per_host: 3,
            tests_per_session: 8,
            greylist_wait: Duration::ZERO,
            all_vectors: false,
            rules: Arc::new(RuleSet::builtin().unwrap()),
            dns: None,
        });
        let started = Instant::now();
        let deadline = Arc::new(Deadline(Mutex::new(started + config.host_deadline)));
        let host = Host::new(
            "192.0.2.1:25".parse().unwrap(),
            None,
            config,
            Arc::new(Pacer::new(None)),
            started,
            deadline,
        );
        let mut transcript = Transcript::default();
        let session = run::run_sequence(&host, None, Vec::new(), None, &mut transcript);
        // A sweep runs a thousand sessions at once (256 hosts, several sessions each). With the
        // opening of a session (connect, greeting, EHLO, STARTTLS) and the goodbye inline, and
        // a 4 KiB read buffer in every reply read, this future was 15 KB; they are boxed for
        // the moment they run, and replies are read into the connection's own buffer.
        let size = std::mem::size_of_val(&session);
        assert!(size <= 3 * 1024, "a session's future is {size} bytes");
    }
}
