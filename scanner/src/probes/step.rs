//! Steps as data, and how they are said on the wire: an envelope (MAIL FROM, RCPT TO, RSET) or
//! a few commands in turn. Every step stops short of DATA.

use relayguard_core::scan::Verdict;

use super::verdict::{classify, refuses_sender};
use crate::smtp::{Connection, Reply, SessionError};

/// What one test sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpStep {
    /// MAIL FROM, RCPT TO, RSET. When the server refuses the sender itself (at MAIL FROM, or by
    /// sender verification at RCPT), the test is repeated with `fallback_sender`, so the
    /// recipient form still gets an answer.
    Envelope {
        /// The MAIL FROM argument, `<>` included.
        mail_from: String,
        /// The RCPT TO argument, `<>` included.
        rcpt_to: String,
        /// The sender to retry with.
        fallback_sender: Option<String>,
    },
    /// Command lines sent one after another, each reply kept for the probe to judge.
    Commands(Vec<String>),
}

impl SmtpStep {
    /// The sender the step offers, if it offers one.
    pub fn mail_from(&self) -> Option<&str> {
        match self {
            SmtpStep::Envelope { mail_from, .. } => Some(mail_from),
            SmtpStep::Commands(_) => None,
        }
    }

    /// What the step asks about, as results show it: the recipient of an envelope, the
    /// arguments of commands (`postmaster / rg-…` for two VRFYs).
    pub fn argument(&self) -> String {
        match self {
            SmtpStep::Envelope { rcpt_to, .. } => rcpt_to.clone(),
            SmtpStep::Commands(lines) => lines
                .iter()
                .map(|l| l.split_once(' ').map_or("", |(_, arg)| arg))
                .collect::<Vec<_>>()
                .join(" / "),
        }
    }
}

/// A verdict read from replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// The reply (or replies) it was read from, summarised.
    pub reply: String,
    /// Why, when the reply does not say it plainly.
    pub note: Option<String>,
}

/// What one step showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// The sender finally used, when the step offered one.
    pub mail_from: Option<String>,
    /// The verdict and its reply.
    pub judgement: Judgement,
    /// The server hung up (or said 421) after answering: the session cannot go on.
    pub connection_lost: bool,
}

impl StepOutcome {
    /// A step that ended with the connection still usable.
    pub fn judged(mail_from: Option<String>, judgement: Judgement) -> StepOutcome {
        StepOutcome {
            mail_from,
            judgement,
            connection_lost: false,
        }
    }
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

/// Sends each line in turn and returns the replies.
pub async fn run_commands(
    conn: &mut Connection,
    lines: &[String],
) -> Result<Vec<Reply>, SessionError> {
    let mut replies = Vec::with_capacity(lines.len());
    for line in lines {
        let reply = conn.command(line).await?;
        closing(&reply)?;
        replies.push(reply);
    }
    Ok(replies)
}

/// The answer to one MAIL FROM / RCPT TO pair.
struct EnvelopeAnswer {
    judgement: Judgement,
    /// The server refused the sender, so the recipient was not (really) judged.
    sender_refused: bool,
}

impl EnvelopeAnswer {
    /// The envelope was refused at MAIL FROM: the recipient was not judged.
    fn refused_at_mail(mail: &Reply) -> EnvelopeAnswer {
        let (verdict, note) = classify(mail);
        let why = match note {
            Some(n) => format!("refused at MAIL FROM ({n})"),
            None => "refused at MAIL FROM".to_string(),
        };
        EnvelopeAnswer {
            judgement: Judgement {
                verdict,
                reply: mail.summary(),
                note: Some(why),
            },
            sender_refused: mail.class() == 5,
        }
    }

    /// The sender was accepted: the RCPT reply is the verdict.
    fn judged_at_rcpt(rcpt: &Reply) -> EnvelopeAnswer {
        let (verdict, note) = classify(rcpt);
        EnvelopeAnswer {
            judgement: Judgement {
                verdict,
                reply: rcpt.summary(),
                note,
            },
            sender_refused: refuses_sender(rcpt),
        }
    }
}

/// One MAIL FROM / RCPT TO pair and the RSET after it; returns the answer and whether the
/// connection is still usable. In one flight when the server offers PIPELINING (one round trip
/// instead of three; RFC 2920 lets MAIL, RCPT and RSET go anywhere in a flight, and a RCPT after
/// a refused MAIL is merely answered 503), otherwise command by command, RCPT only after an
/// accepted MAIL.
async fn envelope(
    conn: &mut Connection,
    mail_from: &str,
    rcpt_to: &str,
) -> Result<(EnvelopeAnswer, bool), SessionError> {
    let mail_cmd = format!("MAIL FROM:{mail_from}");
    let rcpt_cmd = format!("RCPT TO:{rcpt_to}");
    if conn.pipelining() {
        let (replies, stopped) = conn
            .pipeline(&[mail_cmd, rcpt_cmd, "RSET".to_string()])
            .await?;
        let mut replies = replies.into_iter();
        let (mail, rcpt, rset) = (replies.next(), replies.next(), replies.next());
        let answer = match (mail, rcpt, stopped) {
            // Out of turn anywhere in the flight: nothing in it can be trusted.
            (_, _, Some(e @ SessionError::Desync(_))) => return Err(e),
            (Some(mail), _, _) if !mail.is_positive() => {
                closing(&mail)?;
                EnvelopeAnswer::refused_at_mail(&mail)
            }
            (Some(_), Some(rcpt), _) => {
                closing(&rcpt)?;
                EnvelopeAnswer::judged_at_rcpt(&rcpt)
            }
            // The server stopped before answering RCPT: as if it hung up mid-envelope.
            (_, _, stopped) => return Err(stopped.unwrap_or(SessionError::Closed)),
        };
        // As with RSET in turn: a hang-up after the RCPT reply leaves that reply standing.
        return Ok((answer, rset.is_some_and(|r| r.code != 421)));
    }
    let mail = conn.command(&mail_cmd).await?;
    closing(&mail)?;
    let answer = if mail.is_positive() {
        let rcpt = conn.command(&rcpt_cmd).await?;
        closing(&rcpt)?;
        EnvelopeAnswer::judged_at_rcpt(&rcpt)
    } else {
        EnvelopeAnswer::refused_at_mail(&mail)
    };
    Ok((answer, reset(conn).await?))
}

/// Resets the envelope; returns whether the connection is still usable. Out-of-turn data is
/// passed on: it means the replies so far may not be what they seemed.
async fn reset(conn: &mut Connection) -> Result<bool, SessionError> {
    match conn.command("RSET").await {
        Ok(r) => Ok(r.code != 421),
        Err(e @ SessionError::Desync(_)) => Err(e),
        Err(_) => Ok(false),
    }
}

/// Runs an envelope step: MAIL FROM, RCPT TO, RSET, and once more with the fallback sender when
/// the server refused the sender. Never DATA.
pub async fn run_envelope(
    conn: &mut Connection,
    mail_from: &str,
    rcpt_to: &str,
    fallback_sender: Option<&str>,
) -> Result<StepOutcome, SessionError> {
    let (mut answer, mut usable) = envelope(conn, mail_from, rcpt_to).await?;
    let mut sender = mail_from;
    if let Some(fallback) = fallback_sender.filter(|f| answer.sender_refused && *f != mail_from) {
        if !usable {
            return Err(SessionError::Closed);
        }
        let first = answer.judgement.reply;
        (answer, usable) = envelope(conn, fallback, rcpt_to).await?;
        let why = answer
            .judgement
            .note
            .map(|n| format!("; {n}"))
            .unwrap_or_default();
        answer.judgement.note = Some(format!(
            "sender {mail_from} refused ({first}); retried with {fallback}{why}"
        ));
        sender = fallback;
    }
    Ok(StepOutcome {
        mail_from: Some(sender.to_string()),
        judgement: answer.judgement,
        connection_lost: !usable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_shown_as_before() {
        let vrfy = SmtpStep::Commands(vec!["VRFY postmaster".into(), "VRFY rg-x".into()]);
        assert_eq!(vrfy.argument(), "postmaster / rg-x");
        assert_eq!(vrfy.mail_from(), None);
        let env = SmtpStep::Envelope {
            mail_from: "<p@x>".into(),
            rcpt_to: "<u@y>".into(),
            fallback_sender: None,
        };
        assert_eq!(
            (env.argument().as_str(), env.mail_from()),
            ("<u@y>", Some("<p@x>"))
        );
    }
}
