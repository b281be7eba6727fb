//! Running tests over sessions: one after another in a session, reconnecting when the server
//! hangs up or says 421, and relay tests in parallel chunks.

use std::net::IpAddr;
use std::sync::Arc;

use relayguard_core::scan::{TestKind, TestResult, Verdict};
use relayguard_core::{Transcript, TranscriptLine};
use tokio::task::JoinSet;

use super::Host;
use crate::probes::names::is_local_form;
use crate::probes::verdict::{classify, refuses_sender};
use crate::smtp::{Connection, Reply, SessionError};

use super::plan::{Planned, Step};

/// A finished test with the transcript lines that show it.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    pub(super) index: usize,
    pub(crate) result: TestResult,
    pub(crate) lines: Vec<TranscriptLine>,
}

/// Runs the relay tests, a fresh session per chunk, as many at once as the host's session
/// limit allows.
pub(super) async fn run_relay_tests(
    host: &Arc<Host>,
    chunks: Vec<Vec<Planned>>,
    transcript: &mut Transcript,
) -> Vec<Done> {
    let mut sessions = JoinSet::new();
    for chunk in chunks {
        let host = host.clone();
        sessions.spawn(async move {
            let _slot = host.session_slots.clone().acquire_owned().await;
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

/// Runs tests one after another, reconnecting when the server hangs up or says 421.
pub(super) async fn run_sequence(
    host: &Host,
    mut conn: Option<Connection>,
    tests: Vec<Planned>,
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
            if conn.is_none() {
                if let Some(why) = host.refused.get() {
                    out.push(inconclusive(
                        &test,
                        &format!("not run: {why}"),
                        0,
                        Vec::new(),
                    ));
                    break;
                }
                match host.open().await {
                    Ok((c, _)) => conn = Some(c),
                    Err(failed) => {
                        let why = format!("the server refused a new session: {}", failed.reason);
                        transcript.append(failed.transcript);
                        // Stop here: each refused attempt can extend a rate-limit block
                        // (Sendmail's ratecontrol, Postfix's anvil).
                        let _ = host.refused.set(why.clone());
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
                    } else if c.held_back_after_errors() && tests.peek().is_some() {
                        // The server now holds every reply back (Postfix past its soft error
                        // limit delays each by a second): the next test goes to a fresh
                        // session, which is answered at full speed again.
                        transcript.append(conn.take().expect("present").quit_now().await);
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
pub(super) fn reinterpret_local_forms(done: &mut [Done], names: &[String], ip: IpAddr) {
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
