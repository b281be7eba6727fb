//! Running tests over sessions: one after another in a session, reconnecting when the server
//! hangs up or says 421, and the spread tests in parallel chunks.
//!
//! A session's verdicts are provisional until it ends in step. The server's turn is checked
//! before every command and after QUIT; if it ever sent data when no reply was due, a reply may
//! have been read as the answer to the wrong command (a `250` owed to MAIL FROM read as the
//! answer to RCPT is a false open relay), so every verdict of that session is discarded and its
//! tests are run once more in a fresh session. Tests discarded twice stay inconclusive.
//!
//! A gate in front of the server is handled the same way. Postfix's postscreen greets a new
//! client in stages (`220-`, then the final `220 ` seconds later; later sessions may get a plain
//! greeting once that test has passed) and answers every RCPT (and VRFY) with `450 4.3.2` until
//! the client has shown, by a whole envelope, that it passes its tests after the greeting; the
//! client is let through to the real server only when it connects again. So on a host that
//! greeted in stages, a session whose RCPT is answered `450 4.3.2` is ended there (QUIT, so the
//! gate records the pass) and its tests run once more in a fresh session. Tests deferred twice
//! stay inconclusive, and the host gets no new session: its gate did not open.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use relayguard_core::Transcript;
use relayguard_core::TranscriptLine;
use relayguard_core::scan::{TestResult, Verdict};
use tokio::task::JoinSet;

use super::Host;
use super::schedule::PlannedTest;
use crate::probes::{StepOutcome, TestRecord};
use crate::smtp::{Connection, OpenFailure, SessionError};

/// Why a test is inconclusive when the server was out of turn both times it ran.
const DESYNCED_TWICE: &str = "discarded: the server sent data out of turn in this session and in \
                              the retry, so its replies cannot be matched to the commands";

/// Why a test is inconclusive when a gate deferred it in its session and in the retry.
const DEFERRED_TWICE: &str = "deferred by a gate in front of the server (450 4.3.2 after a \
                              staged greeting) in this session and again after reconnecting";

/// Why the host gets no new session once a reconnect did not get past its gate.
const GATE_SHUT: &str = "the gate in front of the server (450 4.3.2 after a staged greeting, \
                         as postscreen defers a new client) did not open on reconnecting";

/// A live session: the connection and whether its greeting came in stages.
pub(super) struct Live {
    pub(super) conn: Connection,
    pub(super) staged: bool,
}

/// How a session ended, which decides whether its verdicts stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// In step to the end: its verdicts stand.
    InStep,
    /// The server sent data out of turn: its replies may answer other commands.
    Desynced,
    /// A gate in front of the server deferred it: the real server never answered.
    Deferred,
}

impl Ending {
    fn of(desynced: bool) -> Ending {
        if desynced {
            Ending::Desynced
        } else {
            Ending::InStep
        }
    }
}

/// Whether a test's reply is a gate's deferral: `450 4.3.2` (RFC 3463: the system is not
/// accepting network messages), which postscreen gives every RCPT of a new client's first
/// session. Only read so on a host that greeted in stages.
fn is_gate_deferral(reply: &str) -> bool {
    let mut words = reply.split_ascii_whitespace();
    matches!(
        (words.next(), words.next()),
        (Some(code), Some("4.3.2")) if code.starts_with('4')
    )
}

/// A finished test and its place in plan order.
pub(super) struct Done {
    pub(super) index: usize,
    pub(super) record: TestRecord,
}

/// The spread tests not yet taken by a session, in plan order. Sessions take them one at a
/// time, so a session slowed down by its tests' answers leaves the rest to the others instead
/// of holding a fixed share of them.
pub(super) struct Pool {
    tests: Mutex<VecDeque<PlannedTest>>,
    /// How many tests one session runs before the next goes to a fresh session.
    per_session: usize,
    /// Whether the first session's sequence still runs: until it ends it may share its own
    /// tests, so [`run_pool`] waits for it even when its own sessions are all done.
    first_running: std::sync::atomic::AtomicBool,
    /// Wakes [`run_pool`] when tests were shared or the first sequence ended.
    changed: tokio::sync::Notify,
}

impl Pool {
    /// A pool of `tests`, at most `per_session` of them to a session, with no first session
    /// beside it (a greylisting retry).
    pub(super) fn new(tests: Vec<PlannedTest>, per_session: usize) -> Pool {
        Pool {
            tests: Mutex::new(tests.into()),
            per_session: per_session.max(1),
            first_running: std::sync::atomic::AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The same, beside a first session that may share its own tests into it until it calls
    /// [`Pool::first_finished`].
    pub(super) fn beside_first(tests: Vec<PlannedTest>, per_session: usize) -> Pool {
        let pool = Pool::new(tests, per_session);
        pool.first_running.store(true, Ordering::Relaxed);
        pool
    }

    /// The first session's sequence has ended: nothing more will be shared.
    pub(super) fn first_finished(&self) {
        self.first_running.store(false, Ordering::Relaxed);
        self.changed.notify_one();
    }

    fn take(&self) -> Option<PlannedTest> {
        self.lock().pop_front()
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Puts a sequence's own waiting tests at the front of the pool, in order, so sessions
    /// that have room take them side by side. Tests being run again after a desynchronised or
    /// gate-deferred session stay with their sequence, which runs them in a fresh session.
    fn share(&self, queue: &mut VecDeque<PlannedTest>) {
        let (mine, shared): (VecDeque<_>, VecDeque<_>) = queue
            .drain(..)
            .partition(|t| t.desync_retried || t.gate_retried);
        *queue = mine;
        if shared.is_empty() {
            return;
        }
        let mut tests = self.lock();
        for test in shared.into_iter().rev() {
            tests.push_front(test);
        }
        drop(tests);
        // The pool's sessions may all have ended already (their own tests were decided):
        // new ones are opened for what was shared.
        self.changed.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<PlannedTest>> {
        self.tests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One sequence's claim on the pool: it takes tests into its open session while the session
/// has room, and into a fresh session while it has taken fewer than its `quota` (the share of a
/// session the schedule dealt it) or once the server is known to be slow. So a quick server
/// gets exactly the sessions the schedule dealt, and only a slow one gets more.
pub(super) struct Taker<'a> {
    pool: &'a Pool,
    quota: usize,
    taken: usize,
}

impl<'a> Taker<'a> {
    /// A claim on `pool` with room for `quota` tests in fresh sessions.
    pub(super) fn new(pool: &'a Pool, quota: usize) -> Taker<'a> {
        Taker {
            pool,
            quota,
            taken: 0,
        }
    }

    /// The next test, if this sequence may take one: `in_session` tests ran in the open
    /// session (`None`: no session is open).
    fn next(&mut self, host: &Host, in_session: Option<usize>) -> Option<PlannedTest> {
        let may = match in_session {
            Some(ran) => ran < self.pool.per_session,
            None => self.taken < self.quota || host.is_slow(),
        };
        let test = if may { self.pool.take() } else { None }?;
        self.taken += 1;
        Some(test)
    }

    fn pool_is_empty(&self) -> bool {
        self.pool.is_empty()
    }
}

/// Runs the spread tests in `pool` over fresh sessions: `workers` of them to start with (as
/// many sessions as the tests fill, see [`super::schedule::deal`]), and, once a session finds
/// the server slow without error sleeps, as many more as tests are waiting, up to the host's
/// session limit, and again when the first session shares its own tests. Every worker takes
/// tests from the pool until it is empty; the pool ends when its workers and the first
/// session's sequence have.
pub(super) async fn run_pool(
    host: &Arc<Host>,
    pool: Arc<Pool>,
    workers: usize,
    transcript: &mut Transcript,
) -> Vec<Done> {
    let mut sessions = JoinSet::new();
    let spawn = |sessions: &mut JoinSet<_>| {
        let host = host.clone();
        let pool = pool.clone();
        sessions.spawn(async move {
            // Past the deadline the sequence runs no test, so the slot is not waited for.
            // Behind a gate, the first session finds out whether it opens before more knock.
            host.within(host.gate_known()).await;
            let _slot = host
                .within(host.session_slots.clone().acquire_owned())
                .await;
            let mut t = Transcript::default();
            let taker = Taker::new(&pool, pool.per_session);
            let done = run_sequence(&host, None, Vec::new(), Some(taker), &mut t).await;
            (done, t)
        });
    };
    for _ in 0..workers {
        spawn(&mut sessions);
    }
    let limit = host.config.sessions_per_host.max(1);
    let mut all = Vec::new();
    let mut transcripts = Vec::new();
    loop {
        if sessions.is_empty() && !pool.first_running.load(Ordering::Relaxed) {
            break;
        }
        let grow = tokio::select! {
            Some(joined) = sessions.join_next() => {
                // A worker only fails to join if it panicked, which would be a bug; its tests
                // are then simply missing from the result rather than taking the sweep down.
                if let Ok((done, t)) = joined {
                    all.extend(done);
                    transcripts.push(t);
                }
                false
            }
            () = host.slow.notified() => true,
            // A quick server keeps the sessions the schedule dealt it: only a slow one, or
            // tests left with no session to take them, get new ones.
            () = pool.changed.notified() => host.is_slow() || sessions.is_empty(),
        };
        if grow {
            let room = limit.saturating_sub(sessions.len()).min(pool.len());
            for _ in 0..room {
                spawn(&mut sessions);
            }
        }
    }
    for t in transcripts {
        transcript.append(t);
    }
    all
}

/// The tests of the open session, whose verdicts stand once it ends in step.
struct Session {
    provisional: Vec<(PlannedTest, Done)>,
}

/// Runs tests one after another on `conn` (or a fresh session), reconnecting when the server
/// hangs up or says 421; the interrupted test is tried once more. A session found out of turn,
/// or deferred by a gate, has its tests run again in a fresh one (see the module comment).
/// With a claim on the pool, once its own tests are done it takes more from there (see
/// [`Taker`]), at most the pool's `per_session` to a session.
pub(super) async fn run_sequence(
    host: &Host,
    mut conn: Option<Live>,
    tests: Vec<PlannedTest>,
    mut pool: Option<Taker<'_>>,
    transcript: &mut Transcript,
) -> Vec<Done> {
    let mut out = Vec::with_capacity(tests.len());
    let mut queue: VecDeque<PlannedTest> = tests.into();
    let mut session = Session {
        provisional: Vec::new(),
    };
    // The session the last test ran in, and how many tests ran in it.
    let mut current = (0, 0);
    loop {
        // On a slow server the first session's own tests are shared out too: each of them
        // (a backscatter RCPT, say) costs as long as a relay vector.
        if let Some(taker) = &pool
            && !queue.is_empty()
            && host.is_slow()
        {
            taker.pool.share(&mut queue);
        }
        let in_session = conn.as_ref().map(|_| current.1);
        let next = queue
            .pop_front()
            .or_else(|| pool.as_mut()?.next(host, in_session));
        let Some(mut test) = next else {
            let Some(live) = conn.take() else { break };
            let (t, desync) = Box::pin(live.conn.quit_checked()).await;
            let ending = Ending::of(desync.is_some());
            session.settle(host, t, ending, &mut queue, &mut out, transcript);
            continue;
        };
        let mut retried = false;
        let envelope = test.spec.step.mail_from().is_some();
        let mut gate_deferred = false;
        loop {
            if host.skips(test.probe.id()) {
                out.push(not_run(&test));
                break;
            }
            if host.deadline_passed() {
                out.push(inconclusive(
                    &test,
                    "host deadline reached before the test",
                    0,
                    Vec::new(),
                ));
                break;
            }
            let Live {
                conn: mut c,
                staged,
            } = match conn.take() {
                Some(live) => live,
                None => {
                    if let Some(why) = host.refused.get() {
                        let why = format!("not run: {why}");
                        out.push(inconclusive(&test, &why, 0, Vec::new()));
                        break;
                    }
                    // Boxed, as the goodbyes below: inline, the opening of a session (connect,
                    // greeting, EHLO, STARTTLS) made every session's future 6 KB larger, for
                    // the moment it runs (a test checks the size).
                    match Box::pin(host.open()).await {
                        Ok((conn, greeting)) => {
                            host.note_opened(conn.session(), &greeting);
                            Live {
                                conn,
                                staged: greeting.staged,
                            }
                        }
                        Err(failed) if host.deadline_passed() => {
                            transcript.append(failed.transcript);
                            out.push(inconclusive(
                                &test,
                                "host deadline reached before the test",
                                0,
                                Vec::new(),
                            ));
                            break;
                        }
                        Err(failed) => {
                            if let OpenFailure::Lost(e @ SessionError::Desync(_)) = &failed.reason {
                                host.note_desync(&failed.transcript);
                                host.session_broke(e);
                                transcript.append(failed.transcript);
                                if !test.desync_retried {
                                    test.desync_retried = true;
                                    continue;
                                }
                                out.push(inconclusive(&test, DESYNCED_TWICE, 0, Vec::new()));
                                break;
                            }
                            let why =
                                format!("the server refused a new session: {}", failed.reason);
                            transcript.append(failed.transcript);
                            // Stop here: each refused attempt can extend a rate-limit block
                            // (Sendmail's ratecontrol, Postfix's anvil).
                            let _ = host.refused.set(why.clone());
                            out.push(inconclusive(&test, &why, 0, Vec::new()));
                            break;
                        }
                    }
                }
            };
            if staged {
                host.gated.store(true, Ordering::Relaxed);
            }
            if c.session() != current.0 {
                current = (c.session(), 0);
            }
            current.1 += 1;
            let mark = c.transcript.lines.len();
            let outcome = host
                .within(test.probe.run(&mut c, &test.spec.step))
                .await
                .unwrap_or(Err(SessionError::HostDeadline));
            let lines = c.transcript.lines.get(mark..).unwrap_or_default().to_vec();
            let number = c.session();
            match outcome {
                Ok(step) => {
                    let lost = step.connection_lost;
                    let done = finished(&test, step, number, lines);
                    if test.spec.decisive && done.record.result.verdict == Verdict::Accepted {
                        host.decide(test.probe.id());
                    }
                    let deferred = envelope
                        && host.gated.load(Ordering::Relaxed)
                        && is_gate_deferral(&done.record.result.reply);
                    session.provisional.push((test, done));
                    if deferred {
                        gate_deferred = true;
                        // Leave at once, politely: the gate records a pass when the client
                        // disconnects, and every further command would only be deferred too.
                        let (t, desync) = if lost {
                            let desync = c.check_in_turn().await.err();
                            (c.into_transcript(), desync)
                        } else {
                            Box::pin(c.quit_checked()).await
                        };
                        let ending = if desync.is_some() {
                            Ending::Desynced
                        } else {
                            Ending::Deferred
                        };
                        session.settle(host, t, ending, &mut queue, &mut out, transcript);
                    } else if lost {
                        let desync = c.check_in_turn().await.is_err();
                        let t = c.into_transcript();
                        let ending = Ending::of(desync);
                        session.settle(host, t, ending, &mut queue, &mut out, transcript);
                    } else if c.held_back_after_errors()
                        && !(queue.is_empty() && pool.as_ref().is_none_or(Taker::pool_is_empty))
                    {
                        // The server now holds every reply back (Postfix past its soft error
                        // limit delays each by a second): the next test goes to a fresh
                        // session, which is answered at full speed again.
                        let desync = c.check_in_turn().await.is_err();
                        let t = c.quit_now().await;
                        let ending = Ending::of(desync);
                        session.settle(host, t, ending, &mut queue, &mut out, transcript);
                    } else {
                        if c.answered_slowly() {
                            host.note_slow();
                        }
                        conn = Some(Live { conn: c, staged });
                    }
                    break;
                }
                Err(e @ SessionError::Desync(_)) => {
                    host.session_broke(&e);
                    let done = inconclusive(&test, &e.to_string(), number, lines);
                    session.provisional.push((test, done));
                    let t = c.into_transcript();
                    session.settle(host, t, Ending::Desynced, &mut queue, &mut out, transcript);
                    break;
                }
                Err(e) => {
                    host.session_broke(&e);
                    let t = c.into_transcript();
                    session.settle(host, t, Ending::InStep, &mut queue, &mut out, transcript);
                    if e.is_retryable() && !retried && host.refused.get().is_none() {
                        retried = true;
                        continue;
                    }
                    out.push(inconclusive(&test, &e.to_string(), number, lines));
                    break;
                }
            }
        }
        // Sessions waiting to learn whether the host's gate opens may go ahead once an
        // envelope got past it, or once it is known not to open (they then run nothing).
        if (envelope && !gate_deferred) || host.refused.get().is_some() {
            host.gate_settled();
        }
    }
    host.gate_settled();
    out
}

impl Session {
    /// Ends the session: its verdicts stand when it stayed in turn; otherwise (out of turn, or
    /// deferred by a gate) each of its tests goes back to the front of the queue for a fresh
    /// session, or, if it was already run again for the same reason once, stays inconclusive.
    fn settle(
        &mut self,
        host: &Host,
        session_transcript: Transcript,
        ending: Ending,
        queue: &mut VecDeque<PlannedTest>,
        out: &mut Vec<Done>,
        transcript: &mut Transcript,
    ) {
        match ending {
            Ending::InStep => {
                out.extend(self.provisional.drain(..).map(|(_, done)| done));
                transcript.append(session_transcript);
                return;
            }
            Ending::Desynced => host.note_desync(&session_transcript),
            Ending::Deferred => host.note_deferral(),
        }
        transcript.append(session_transcript);
        let mut again = Vec::new();
        for (mut test, mut done) in self.provisional.drain(..) {
            // A decision this session made is discarded with its verdicts: the decisive test
            // runs again rather than being skipped as already decided.
            if test.spec.decisive && done.record.result.verdict == Verdict::Accepted {
                host.undecide(test.probe.id());
            }
            let (retried, why) = match ending {
                Ending::Deferred => (&mut test.gate_retried, DEFERRED_TWICE),
                _ => (&mut test.desync_retried, DESYNCED_TWICE),
            };
            if *retried {
                if ending == Ending::Deferred {
                    let _ = host.refused.set(GATE_SHUT.to_string());
                }
                let result = &mut done.record.result;
                result.verdict = Verdict::Inconclusive;
                result.note = Some(why.to_string());
                out.push(done);
            } else {
                *retried = true;
                again.push(test);
            }
        }
        for test in again.into_iter().rev() {
            queue.push_front(test);
        }
    }
}

fn finished(
    test: &PlannedTest,
    step: StepOutcome,
    session: u32,
    lines: Vec<TranscriptLine>,
) -> Done {
    Done {
        index: test.index,
        record: TestRecord {
            result: TestResult {
                id: test.spec.id.clone(),
                kind: test.probe.kind(),
                mail_from: step.mail_from,
                argument: test.spec.step.argument(),
                verdict: step.judgement.verdict,
                reply: step.judgement.reply,
                note: step.judgement.note,
                session,
            },
            lines,
        },
    }
}

/// A test skipped because its probe's verdict was already decided.
fn not_run(test: &PlannedTest) -> Done {
    let mut done = inconclusive(test, NOT_RUN, 0, Vec::new());
    done.record.result.verdict = Verdict::NotRun;
    done
}

/// Why a test was skipped.
const NOT_RUN: &str = "not run: the host already accepted a plainly external recipient, which \
                       makes it an open relay (--all-vectors runs every vector)";

fn inconclusive(test: &PlannedTest, why: &str, session: u32, lines: Vec<TranscriptLine>) -> Done {
    Done {
        index: test.index,
        record: TestRecord {
            result: TestResult {
                id: test.spec.id.clone(),
                kind: test.probe.kind(),
                mail_from: test.spec.step.mail_from().map(str::to_string),
                argument: test.spec.step.argument(),
                verdict: Verdict::Inconclusive,
                reply: String::new(),
                note: Some(why.to_string()),
                session,
            },
            lines,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::is_gate_deferral;

    #[test]
    fn only_a_4xx_with_status_4_3_2_is_a_gates_deferral() {
        assert!(is_gate_deferral("450 4.3.2 Service currently unavailable"));
        assert!(is_gate_deferral(
            "450 4.3.2 Service currently unavailable / 450 4.3.2 Service currently unavailable"
        ));
        assert!(!is_gate_deferral(
            "454 4.7.1 <u@ext.example>: Relay access denied"
        ));
        assert!(!is_gate_deferral(
            "450 4.2.0 <u@x>: Recipient address rejected: Greylisted"
        ));
        assert!(!is_gate_deferral("550 4.3.2 odd"));
        assert!(!is_gate_deferral("250 2.1.5 Ok"));
        assert!(!is_gate_deferral(""));
    }
}
