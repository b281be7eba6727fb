//! Auditing one open SMTP port: the sessions, the tests run in them, and the result.
//!
//! The first session learns the server (greeting, EHLO, TLS, own names) and runs the cheap
//! probes (VRFY, EXPN, backscatter). The relay vectors are then spread over several fresh
//! sessions, run side by side: Postfix delays every reply by a second after ten errors in one
//! session and hangs up after twenty, and Exim hangs up sooner, so one long session (as nmap
//! does) is both slow and wrong. A session that is dropped or answered with 421 is reopened and
//! the interrupted test is tried once more.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rand::Rng;
use relayguard_core::rules::RuleSet;
use relayguard_core::scan::{HostResult, PortState, SmtpInfo, TestKind, TestResult, Verdict};
use relayguard_core::{Transcript, TranscriptLine};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::dns::Dns;
use crate::pacing::Pacer;
use crate::probes::findings::{self, FindingInput};
use crate::probes::names::{self, is_local_form};
use crate::probes::relay::{self, VectorValues};
use crate::probes::verdict::{classify, refuses_sender};
use crate::smtp::session::{self, extension};
use crate::smtp::{
    Connection, Failed, Greeting, OpenFailure, Reply, SessionConfig, SessionError, Timing, TlsMode,
};

/// The DNS checks run for every host that speaks SMTP (issue 5).
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
    /// The rules.
    pub rules: Arc<RuleSet>,
    /// DNS checks, unless disabled.
    pub dns: Option<DnsAudit>,
}

/// One test to run, in plan order.
#[derive(Debug, Clone)]
struct Planned {
    index: usize,
    id: String,
    kind: TestKind,
    step: Step,
}

#[derive(Debug, Clone)]
enum Step {
    /// MAIL FROM, RCPT TO, RSET. When the server refuses the sender itself (at MAIL FROM, or by
    /// sender verification at RCPT), the test is repeated with `fallback_sender`, so the
    /// recipient form still gets an answer.
    Envelope {
        mail_from: String,
        rcpt_to: String,
        fallback_sender: Option<String>,
    },
    Vrfy {
        known: String,
        random: String,
    },
    Expn {
        list: String,
    },
}

/// A finished test with the transcript lines that show it.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    index: usize,
    pub(crate) result: TestResult,
    pub(crate) lines: Vec<TranscriptLine>,
}

/// State shared by the sessions of one host.
struct Host {
    addr: SocketAddr,
    known_name: Option<String>,
    config: Arc<AuditConfig>,
    pacer: Arc<Pacer>,
    timing: Timing,
    sessions: AtomicU32,
    implicit_tls: bool,
    /// Set when a STARTTLS handshake failed: later sessions stay in plaintext.
    tls_broken: AtomicBool,
}

impl Host {
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
        session::open(
            self.addr,
            &self.config.session,
            &self.pacer,
            self.known_name.as_deref(),
            self.mode(),
            number,
            self.timing,
        )
        .await
    }

    fn deadline_passed(&self) -> bool {
        Instant::now() >= self.timing.deadline
    }
}

/// Audits one open port. Never fails: what went wrong is part of the result.
pub async fn audit(
    ip: IpAddr,
    port: u16,
    known_name: Option<&str>,
    config: Arc<AuditConfig>,
    pacer: Arc<Pacer>,
) -> HostResult {
    let started = Instant::now();
    let host = Arc::new(Host {
        addr: SocketAddr::new(ip, port),
        known_name: known_name.map(str::to_string),
        timing: Timing {
            started,
            command_timeout: config.command_timeout,
            deadline: started + config.host_deadline,
        },
        config,
        pacer,
        sessions: AtomicU32::new(0),
        implicit_tls: port == 465,
        tls_broken: AtomicBool::new(false),
    });
    let mut result = HostResult::unreachable(ip, port, PortState::Open);
    result.target_name = known_name.map(str::to_string);

    // Session 1 learns the server while reverse DNS is looked up.
    let reverse = async {
        match &host.config.dns {
            Some(d) if !ip.is_loopback() => Some(d.dns.reverse_checks(ip).await),
            _ => None,
        }
    };
    let (reverse, first) = tokio::join!(reverse, open_first_session(&host));
    let mut transcript = first.transcript;
    let (conn, greeting) = match first.result {
        Ok(pair) => pair,
        Err(failed) => {
            transcript.append(failed.transcript);
            result.ptr = reverse.and_then(|r| r.ptr);
            return finish_unopened(result, failed.reason, failed.banner, transcript, &host);
        }
    };
    if host.config.dns.is_some() && ip.is_loopback() {
        result.notes.push(
            "reverse DNS not checked: resolvers answer localhost for loopback addresses".into(),
        );
    }
    let ptr = reverse.as_ref().and_then(|r| r.ptr.clone());

    let names = learn_names(&host, &greeting, ptr.as_deref());
    let smtp = smtp_info(&host, &greeting, first.failed_tls, &names.routing);

    let (first_plan, relay_plan) = plan(&host, &names);
    let tests = async {
        let mut t = Transcript::default();
        let mut done = run_sequence(&host, Some(conn), first_plan, &mut t).await;
        done.extend(run_relay_tests(&host, relay_plan, &mut t).await);
        (done, t)
    };
    let dnsbl = async {
        match &host.config.dns {
            Some(d) if !d.dnsbl_zones.is_empty() => {
                Some(d.dns.dnsbl_checks(ip, &d.dnsbl_zones).await)
            }
            _ => None,
        }
    };
    let ((mut done, t), dnsbl) = tokio::join!(tests, dnsbl);
    transcript.append(t);
    done.sort_by_key(|d| d.index);
    reinterpret_local_forms(&mut done, &names.routing, ip);

    let first_session = transcript
        .lines
        .iter()
        .map(|l| l.session)
        .min()
        .unwrap_or(1);
    let opening: Vec<TranscriptLine> = transcript
        .session(first_session)
        .take(40)
        .cloned()
        .collect();
    result.findings = findings::build(&FindingInput {
        port,
        smtp: &smtp,
        starttls_injection: greeting
            .starttls_injection
            .as_deref()
            .or(first.injection.as_deref()),
        opening: &opening,
        tests: &done,
        rules: &host.config.rules,
    });
    for checks in reverse.map(|r| r.checks).into_iter().chain(dnsbl) {
        result.findings.extend(checks.findings);
        result.notes.extend(checks.inconclusive);
    }
    result.ptr = ptr;
    result.tests = done.into_iter().map(|d| d.result).collect();
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
    first
}

/// What a host calls itself.
struct OwnNames {
    /// Names for the `{host}` relay vectors: the operator's name for the host, the names in its
    /// greeting and EHLO reply, its PTR name, the parent domain of the first of those, every
    /// `--local-domain`.
    routing: Vec<String>,
    /// Domains where the host surely delivers locally, for the backscatter probes: the same
    /// without the guessed parent domain (an open relay would accept anything there).
    local: Vec<String>,
}

fn learn_names(host: &Host, greeting: &Greeting, ptr: Option<&str>) -> OwnNames {
    let banner = greeting
        .banner
        .lines
        .first()
        .and_then(|l| names::name_in(l));
    let ehlo = greeting.ehlo.lines.first().and_then(|l| names::name_in(l));
    let ptr = ptr.and_then(names::name_in);
    let parent = host
        .known_name
        .clone()
        .or_else(|| banner.clone())
        .or_else(|| ehlo.clone())
        .and_then(|n| names::parent_domain(&n));
    let mut local = names::own_names([
        host.known_name.as_deref(),
        banner.as_deref(),
        ehlo.as_deref(),
        ptr.as_deref(),
    ]);
    let mut routing = local.clone();
    if let Some(parent) = parent
        && !routing.contains(&parent)
    {
        routing.push(parent);
    }
    for domain in &host.config.local_domains {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        for list in [&mut local, &mut routing] {
            if !list.contains(&domain) {
                list.push(domain.clone());
            }
        }
    }
    OwnNames { routing, local }
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

/// Splits the work into the first session's tests and the relay tests.
fn plan(host: &Host, names: &OwnNames) -> (Vec<Planned>, Vec<Planned>) {
    let config = &host.config;
    let mut tests = vec![
        (
            "vrfy".to_string(),
            TestKind::Vrfy,
            Step::Vrfy {
                known: "postmaster".into(),
                random: random_local_part(),
            },
        ),
        (
            "expn".to_string(),
            TestKind::Expn,
            Step::Expn {
                list: "postmaster".into(),
            },
        ),
    ];
    // RFC 5321 requires every domain's postmaster to exist, so sender verification accepts it.
    let fallback_sender = Some(match names.local.first() {
        Some(name) => format!("<postmaster@{name}>"),
        None => "<>".to_string(),
    });
    // Backscatter: an unknown user at each domain the host may call its own, and at its address
    // literal, which doubles as the control that tells local delivery from relaying.
    let literal = format!("[{}]", names::address_literal(host.addr.ip()));
    for domain in names.local.iter().chain([&literal]) {
        tests.push((
            "backscatter".to_string(),
            TestKind::Backscatter,
            Step::Envelope {
                mail_from: format!("<{}@{}>", config.probe_sender, config.external_domain),
                rcpt_to: format!("<{}@{}>", random_local_part(), domain),
                fallback_sender: fallback_sender.clone(),
            },
        ));
    }

    let values = VectorValues {
        from: &config.probe_sender,
        to: &config.probe_recipient,
        ext: &config.external_domain,
        ip: host.addr.ip(),
        names: &names.routing,
    };
    tests.extend(
        relay::expand(&config.rules.relay_vectors, &values)
            .into_iter()
            .map(|env| {
                let step = Step::Envelope {
                    mail_from: env.mail_from,
                    rcpt_to: env.rcpt_to,
                    fallback_sender: fallback_sender.clone(),
                };
                (env.id, TestKind::Relay, step)
            }),
    );
    // Numbered in one sequence, so results can be put back in plan order.
    tests
        .into_iter()
        .enumerate()
        .map(|(index, (id, kind, step))| Planned {
            index,
            id,
            kind,
            step,
        })
        .partition(|p| p.kind != TestKind::Relay)
}

/// A local part no real mailbox has: `rg-` and 12 random lower-case letters and digits.
fn random_local_part() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("rg-{tail}")
}

/// Runs the relay tests in chunks of `tests_per_session`, up to `sessions_per_host` at once.
async fn run_relay_tests(
    host: &Arc<Host>,
    tests: Vec<Planned>,
    transcript: &mut Transcript,
) -> Vec<Done> {
    let per_session = host.config.tests_per_session.max(1);
    let limit = Arc::new(Semaphore::new(host.config.sessions_per_host.max(1)));
    let mut chunks = JoinSet::new();
    let mut tests = tests.into_iter().peekable();
    while tests.peek().is_some() {
        let chunk: Vec<Planned> = tests.by_ref().take(per_session).collect();
        let host = host.clone();
        let limit = limit.clone();
        chunks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut t = Transcript::default();
            let done = run_sequence(&host, None, chunk, &mut t).await;
            (done, t)
        });
    }
    let mut all = Vec::new();
    let mut transcripts = Vec::new();
    while let Some(joined) = chunks.join_next().await {
        // A chunk only fails to join if it panicked, which would be a bug; its tests are then
        // simply missing from the result rather than taking the whole sweep down.
        if let Ok((done, t)) = joined {
            all.extend(done);
            transcripts.push(t);
        }
    }
    for t in transcripts {
        transcript.append(t);
    }
    all
}

/// Runs tests one after another, reconnecting when the server hangs up or says 421.
async fn run_sequence(
    host: &Host,
    mut conn: Option<Connection>,
    tests: Vec<Planned>,
    transcript: &mut Transcript,
) -> Vec<Done> {
    let mut out = Vec::with_capacity(tests.len());
    for test in tests {
        let mut retried = false;
        loop {
            if host.deadline_passed() {
                out.push(inconclusive(
                    &test,
                    "host deadline reached before the test",
                    0,
                    Vec::new(),
                ));
                break;
            }
            if conn.is_none() {
                match host.open().await {
                    Ok((c, _)) => conn = Some(c),
                    Err(failed) => {
                        let why = format!("could not open a session: {}", failed.reason);
                        transcript.append(failed.transcript);
                        out.push(inconclusive(&test, &why, 0, Vec::new()));
                        break;
                    }
                }
            }
            let c = conn.as_mut().expect("opened above");
            let mark = c.transcript.lines.len();
            let outcome = run_step(c, &test.step).await;
            let lines = c.transcript.lines.get(mark..).unwrap_or_default().to_vec();
            let session = c.session();
            match outcome {
                Ok(step) => {
                    out.push(Done {
                        index: test.index,
                        result: TestResult {
                            id: test.id.clone(),
                            kind: test.kind,
                            mail_from: step.mail_from,
                            argument: step.argument,
                            verdict: step.verdict,
                            reply: step.reply,
                            note: step.note,
                            session,
                        },
                        lines,
                    });
                    if step.connection_lost {
                        transcript.append(conn.take().expect("present").into_transcript());
                    }
                    break;
                }
                Err(e) => {
                    transcript.append(conn.take().expect("present").into_transcript());
                    if e.is_retryable() && !retried {
                        retried = true;
                        continue;
                    }
                    out.push(inconclusive(&test, &e.to_string(), session, lines));
                    break;
                }
            }
        }
    }
    if let Some(c) = conn {
        transcript.append(c.quit().await);
    }
    out
}

fn inconclusive(test: &Planned, why: &str, session: u32, lines: Vec<TranscriptLine>) -> Done {
    let (mail_from, argument) = match &test.step {
        Step::Envelope {
            mail_from, rcpt_to, ..
        } => (Some(mail_from.clone()), rcpt_to.clone()),
        Step::Vrfy { known, random } => (None, format!("{known} / {random}")),
        Step::Expn { list } => (None, list.clone()),
    };
    Done {
        index: test.index,
        result: TestResult {
            id: test.id.clone(),
            kind: test.kind,
            mail_from,
            argument,
            verdict: Verdict::Inconclusive,
            reply: String::new(),
            note: Some(why.to_string()),
            session,
        },
        lines,
    }
}

/// What one step showed.
struct StepOutcome {
    mail_from: Option<String>,
    argument: String,
    verdict: Verdict,
    reply: String,
    note: Option<String>,
    connection_lost: bool,
}

/// A 421 means the server is closing the session: treat it like a hang-up, so the test is retried
/// on a fresh connection instead of being read as an answer.
fn closing(reply: &Reply) -> Result<(), SessionError> {
    if reply.code == 421 {
        Err(SessionError::Closed)
    } else {
        Ok(())
    }
}

async fn run_step(conn: &mut Connection, step: &Step) -> Result<StepOutcome, SessionError> {
    match step {
        Step::Envelope {
            mail_from,
            rcpt_to,
            fallback_sender,
        } => run_envelope(conn, mail_from, rcpt_to, fallback_sender.as_deref()).await,
        Step::Vrfy { known, random } => {
            let k = conn.command(&format!("VRFY {known}")).await?;
            closing(&k)?;
            let r = conn.command(&format!("VRFY {random}")).await?;
            closing(&r)?;
            let positive = |c: u16| c == 250 || c == 251;
            // "No such user" codes. A 501 is a syntax complaint (Exim wants a domain), not an
            // answer about the user.
            let unknown = |c: u16| matches!(c, 550 | 551 | 553);
            // VRFY leaks when it tells a real user from a made-up one.
            let leaks = (positive(k.code) && !positive(r.code) && r.class() != 4)
                || (k.is_positive() && unknown(r.code));
            let verdict = if leaks {
                Verdict::Accepted
            } else if k.class() == 4 || r.class() == 4 {
                Verdict::Inconclusive
            } else {
                Verdict::Refused
            };
            Ok(StepOutcome {
                mail_from: None,
                argument: format!("{known} / {random}"),
                verdict,
                reply: format!("{} / {}", k.summary(), r.summary()),
                note: None,
                connection_lost: false,
            })
        }
        Step::Expn { list } => {
            let reply = conn.command(&format!("EXPN {list}")).await?;
            closing(&reply)?;
            let verdict = match reply.code {
                250 | 251 => Verdict::Accepted,
                400..=499 => Verdict::Inconclusive,
                _ => Verdict::Refused,
            };
            Ok(StepOutcome {
                mail_from: None,
                argument: list.clone(),
                verdict,
                reply: reply.summary(),
                note: None,
                connection_lost: false,
            })
        }
    }
}

/// One MAIL FROM / RCPT TO attempt.
struct Attempt {
    verdict: Verdict,
    reply: String,
    note: Option<String>,
    /// The server refused the sender, so the recipient was not (really) judged.
    sender_refused: bool,
}

async fn try_envelope(
    conn: &mut Connection,
    mail_from: &str,
    rcpt_to: &str,
) -> Result<Attempt, SessionError> {
    let mail = conn.command(&format!("MAIL FROM:{mail_from}")).await?;
    closing(&mail)?;
    if !mail.is_positive() {
        let (verdict, note) = classify(&mail);
        let why = match note {
            Some(n) => format!("refused at MAIL FROM ({n})"),
            None => "refused at MAIL FROM".to_string(),
        };
        return Ok(Attempt {
            verdict,
            reply: mail.summary(),
            note: Some(why),
            sender_refused: mail.class() == 5,
        });
    }
    let rcpt = conn.command(&format!("RCPT TO:{rcpt_to}")).await?;
    closing(&rcpt)?;
    let (verdict, note) = classify(&rcpt);
    Ok(Attempt {
        verdict,
        reply: rcpt.summary(),
        note,
        sender_refused: refuses_sender(&rcpt),
    })
}

/// Resets the envelope; returns whether the connection is still usable.
async fn reset(conn: &mut Connection) -> bool {
    matches!(conn.command("RSET").await, Ok(r) if r.code != 421)
}

async fn run_envelope(
    conn: &mut Connection,
    mail_from: &str,
    rcpt_to: &str,
    fallback_sender: Option<&str>,
) -> Result<StepOutcome, SessionError> {
    let mut attempt = try_envelope(conn, mail_from, rcpt_to).await?;
    let mut sender = mail_from;
    if let Some(fallback) = fallback_sender.filter(|f| attempt.sender_refused && *f != mail_from) {
        if !reset(conn).await {
            return Err(SessionError::Closed);
        }
        let first = attempt.reply;
        attempt = try_envelope(conn, fallback, rcpt_to).await?;
        let why = attempt.note.map(|n| format!("; {n}")).unwrap_or_default();
        attempt.note = Some(format!(
            "sender {mail_from} refused ({first}); retried with {fallback}{why}"
        ));
        sender = fallback;
    }
    // Never DATA: reset the envelope and go on.
    let connection_lost = !reset(conn).await;
    Ok(StepOutcome {
        mail_from: Some(sender.to_string()),
        argument: rcpt_to.to_string(),
        verdict: attempt.verdict,
        reply: attempt.reply,
        note: attempt.note,
        connection_lost,
    })
}

/// On a host that accepts any local recipient, an accepted relay vector whose address the host
/// would read as local proves nothing: it is downgraded to inconclusive.
fn reinterpret_local_forms(done: &mut [Done], names: &[String], ip: IpAddr) {
    let accepts_any_local = done
        .iter()
        .any(|d| d.result.kind == TestKind::Backscatter && d.result.verdict == Verdict::Accepted);
    if !accepts_any_local {
        return;
    }
    for d in done.iter_mut() {
        let r = &mut d.result;
        if r.kind == TestKind::Relay
            && r.verdict == Verdict::Accepted
            && is_local_form(&r.argument, names, ip)
        {
            r.verdict = Verdict::Inconclusive;
            r.note = Some(
                "accepted, but this host accepts any local recipient and may deliver this address locally"
                    .into(),
            );
        }
    }
}

fn finish_unopened(
    mut result: HostResult,
    reason: OpenFailure,
    banner: Option<Reply>,
    transcript: Transcript,
    host: &Host,
) -> HostResult {
    if let OpenFailure::NotSmtp(what) = &reason {
        let finding_lines: Vec<TranscriptLine> =
            transcript.lines.iter().take(10).cloned().collect();
        result.findings = vec![findings::not_smtp(what, finding_lines, &host.config.rules)];
    }
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
    result.elapsed_ms = host.timing.started.elapsed().as_millis() as u64;
    result
}
