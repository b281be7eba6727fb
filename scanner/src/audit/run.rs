//! Running tests over sessions: one after another in a session, reconnecting when the server
//! hangs up or says 421, and the spread tests in parallel chunks.

use std::sync::Arc;

use relayguard_core::Transcript;
use relayguard_core::TranscriptLine;
use relayguard_core::scan::{TestResult, Verdict};
use tokio::task::JoinSet;

use super::Host;
use super::schedule::PlannedTest;
use crate::probes::{StepOutcome, TestRecord};
use crate::smtp::{Connection, SessionError};

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

/// Runs tests one after another on `conn` (or a fresh session), reconnecting when the server
/// hangs up or says 421; the interrupted test is tried once more.
pub(super) async fn run_sequence(
    host: &Host,
    mut conn: Option<Connection>,
    tests: Vec<PlannedTest>,
    transcript: &mut Transcript,
) -> Vec<Done> {
    let mut out = Vec::with_capacity(tests.len());
    let mut tests = tests.into_iter().peekable();
    while let Some(test) = tests.next() {
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
            let session = c.session();
            match outcome {
                Ok(step) => {
                    let lost = step.connection_lost;
                    out.push(finished(&test, step, session, lines));
                    if lost {
                        transcript.append(c.into_transcript());
                    } else if c.held_back_after_errors() && tests.peek().is_some() {
                        // The server now holds every reply back (Postfix past its soft error
                        // limit delays each by a second): the next test goes to a fresh
                        // session, which is answered at full speed again.
                        transcript.append(c.quit_now().await);
                    } else {
                        conn = Some(c);
                    }
                    break;
                }
                Err(e) => {
                    transcript.append(c.into_transcript());
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
