//! Running tests over sessions: one after another in a session, reconnecting when the server
//! hangs up or says 421, and the spread tests in parallel chunks.
//!
//! A session's verdicts are provisional until it ends in step. The server's turn is checked
//! before every command and after QUIT; if it ever sent data when no reply was due, a reply may
//! have been read as the answer to the wrong command (a `250` owed to MAIL FROM read as the
//! answer to RCPT is a false open relay), so every verdict of that session is discarded and its
//! tests are run once more in a fresh session. Tests discarded twice stay inconclusive.

use std::collections::VecDeque;
use std::sync::Arc;

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

/// A finished test and its place in plan order.
pub(super) struct Done {
    pub(super) index: usize,
    pub(super) record: TestRecord,
}

/// Runs the spread tests, a fresh session per chunk, as many at once as the host's session
/// limit allows.
pub(super) async fn run_chunks(
    host: &Arc<Host>,
    chunks: Vec<Vec<PlannedTest>>,
    transcript: &mut Transcript,
) -> Vec<Done> {
    let mut sessions = JoinSet::new();
    for chunk in chunks {
        let host = host.clone();
        sessions.spawn(async move {
            // Past the deadline the sequence runs no test, so the slot is not waited for.
            let _slot = host
                .within(host.session_slots.clone().acquire_owned())
                .await;
            let mut t = Transcript::default();
            let done = run_sequence(&host, None, chunk, &mut t).await;
            (done, t)
        });
    }
    let mut all = Vec::new();
    let mut transcripts = Vec::new();
    while let Some(joined) = sessions.join_next().await {
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

/// The tests of the open session, whose verdicts stand once it ends in step.
struct Session {
    provisional: Vec<(PlannedTest, Done)>,
}

/// Runs tests one after another on `conn` (or a fresh session), reconnecting when the server
/// hangs up or says 421; the interrupted test is tried once more. A session found out of turn
/// has its tests run again in a fresh one (see the module comment).
pub(super) async fn run_sequence(
    host: &Host,
    mut conn: Option<Connection>,
    tests: Vec<PlannedTest>,
    transcript: &mut Transcript,
) -> Vec<Done> {
    let mut out = Vec::with_capacity(tests.len());
    let mut queue: VecDeque<PlannedTest> = tests.into();
    let mut session = Session {
        provisional: Vec::new(),
    };
    loop {
        let Some(mut test) = queue.pop_front() else {
            let Some(c) = conn.take() else { break };
            let (t, desync) = c.quit_checked().await;
            session.settle(host, t, desync.is_some(), &mut queue, &mut out, transcript);
            continue;
        };
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
            let mut c = match conn.take() {
                Some(c) => c,
                None => {
                    if let Some(why) = host.refused.get() {
                        let why = format!("not run: {why}");
                        out.push(inconclusive(&test, &why, 0, Vec::new()));
                        break;
                    }
                    match host.open().await {
                        Ok((c, _)) => c,
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
                    session.provisional.push((test, done));
                    if lost {
                        let desync = c.check_in_turn().await.is_err();
                        let t = c.into_transcript();
                        session.settle(host, t, desync, &mut queue, &mut out, transcript);
                    } else if c.held_back_after_errors() && !queue.is_empty() {
                        // The server now holds every reply back (Postfix past its soft error
                        // limit delays each by a second): the next test goes to a fresh
                        // session, which is answered at full speed again.
                        let desync = c.check_in_turn().await.is_err();
                        let t = c.quit_now().await;
                        session.settle(host, t, desync, &mut queue, &mut out, transcript);
                    } else {
                        conn = Some(c);
                    }
                    break;
                }
                Err(e @ SessionError::Desync(_)) => {
                    host.session_broke(&e);
                    let done = inconclusive(&test, &e.to_string(), number, lines);
                    session.provisional.push((test, done));
                    let t = c.into_transcript();
                    session.settle(host, t, true, &mut queue, &mut out, transcript);
                    break;
                }
                Err(e) => {
                    host.session_broke(&e);
                    let t = c.into_transcript();
                    session.settle(host, t, false, &mut queue, &mut out, transcript);
                    if e.is_retryable() && !retried && host.refused.get().is_none() {
                        retried = true;
                        continue;
                    }
                    out.push(inconclusive(&test, &e.to_string(), number, lines));
                    break;
                }
            }
        }
    }
    out
}

impl Session {
    /// Ends the session: its verdicts stand when it stayed in turn; otherwise each of its tests
    /// goes back to the front of the queue for a fresh session, or, if it was already run again
    /// once, stays inconclusive.
    fn settle(
        &mut self,
        host: &Host,
        session_transcript: Transcript,
        desynced: bool,
        queue: &mut VecDeque<PlannedTest>,
        out: &mut Vec<Done>,
        transcript: &mut Transcript,
    ) {
        if !desynced {
            out.extend(self.provisional.drain(..).map(|(_, done)| done));
            transcript.append(session_transcript);
            return;
        }
        host.note_desync(&session_transcript);
        transcript.append(session_transcript);
        let mut again = Vec::new();
        for (mut test, mut done) in self.provisional.drain(..) {
            if test.desync_retried {
                let result = &mut done.record.result;
                result.verdict = Verdict::Inconclusive;
                result.note = Some(DESYNCED_TWICE.to_string());
                out.push(done);
            } else {
                test.desync_retried = true;
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
