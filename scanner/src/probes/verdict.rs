//! Reading verdicts from replies: accepted, refused, auth-required or inconclusive.
//!
//! The first digit is not enough. Postfix's stock relay refusal is `454 4.7.1 Relay access
//! denied` (a 4xx, yet a policy decision, not a temporary problem), while a greylisting server
//! answers `451 4.7.1 Greylisted` (also 4.7.x, and truly temporary). A `530 5.7.0 Must issue a
//! STARTTLS command first` is not an authentication requirement, whatever nmap says.

use relayguard_core::scan::Verdict;

use crate::smtp::Reply;

/// The verdict a reply to MAIL FROM or RCPT TO gives a test, and why when that is not obvious.
pub fn classify(reply: &Reply) -> (Verdict, Option<String>) {
    let text = reply.text().to_ascii_lowercase();
    match reply.code {
        250 | 251 => (Verdict::Accepted, None),
        252 => (
            Verdict::Inconclusive,
            Some("252: the server neither accepts nor refuses".into()),
        ),
        530 if text.contains("starttls") || text.contains("tls") => (
            Verdict::Inconclusive,
            Some("the server requires TLS first".into()),
        ),
        530 | 535 | 538 => (Verdict::AuthRequired, None),
        400..=599 if refuses_sender(reply) => (
            Verdict::Inconclusive,
            Some("the server refused the probe sender, not the recipient".into()),
        ),
        400..=599 if is_unresolvable_domain(reply, &text) => (
            Verdict::Inconclusive,
            Some("the server could not resolve the test domain; pass an --external-domain that receives mail".into()),
        ),
        500..=599 if is_auth_required(reply, &text) => (Verdict::AuthRequired, None),
        500..=599 => (Verdict::Refused, None),
        400..=499 if is_greylisting(&text) => (
            Verdict::Inconclusive,
            Some("greylisting: a temporary refusal".into()),
        ),
        400..=499 if is_policy_refusal(reply, &text) => (
            Verdict::Refused,
            Some("a 4xx policy refusal: the server will not relay".into()),
        ),
        400..=499 => (Verdict::Inconclusive, Some("a temporary failure".into())),
        _ => (
            Verdict::Inconclusive,
            Some(format!("unexpected reply code {}", reply.code)),
        ),
    }
}

/// Whether a refusal at RCPT is about the sender rather than the recipient: Exim's sender
/// verification ("550 Sender verification failed"), Postfix's "Sender address rejected", and the
/// sender status codes of RFC 3463 (x.1.7 bad sender mailbox, x.1.8 bad sender system).
///
/// Such a refusal says nothing about relaying; the audit retries with a sender the server can
/// verify.
pub fn refuses_sender(reply: &Reply) -> bool {
    let text = reply.text().to_ascii_lowercase();
    let code = reply
        .enhanced
        .is_some_and(|e| e.subject == 1 && matches!(e.detail, 7 | 8));
    // "Sender address rejected" (Postfix), "Domain of sender address … does not exist" and
    // "Domain name required for sender address" (Sendmail, at RCPT with delay_checks).
    reply.class() >= 4 && (code || text.contains("sender verif") || text.contains("sender address"))
}

/// 5.7.0/5.7.57 "authentication required" style refusals (RFC 4954, RFC 7504 era servers).
fn is_auth_required(reply: &Reply, text: &str) -> bool {
    let security = reply.enhanced.is_some_and(|e| e.subject == 7);
    security && (text.contains("authenticat") || text.contains("auth required"))
}

/// Sendmail refuses senders whose domain does not resolve (5.1.8), Postfix may refuse unknown
/// recipient domains (4.1.2) or null-MX domains (5.1.10): answers about DNS, not about relaying.
fn is_unresolvable_domain(reply: &Reply, text: &str) -> bool {
    // A temporary x.1.2/x.1.8 is a lookup that failed; a permanent 5.1.2 is also Sendmail's
    // "Invalid route address" (a syntax refusal), so permanent ones count only by their words.
    let code = reply.enhanced.is_some_and(|e| {
        e.subject == 1 && (e.detail == 10 || (e.class == 4 && matches!(e.detail, 2 | 8)))
    });
    let words = text.contains("domain not found")
        || text.contains("does not resolve")
        || text.contains("domain of sender address")
        || text.contains("does not accept mail (nullmx)");
    code || words
}

/// Whether a temporary refusal's text (lower case) says greylisting: postgrey's "Greylisted",
/// "try again later" of other greylisting daemons.
pub fn is_greylisting(text: &str) -> bool {
    text.contains("greylist") || text.contains("graylist") || text.contains("try again later")
}

/// A 4xx that is a security/policy decision (enhanced 4.7.x, or "relay … denied" wording).
fn is_policy_refusal(reply: &Reply, text: &str) -> bool {
    let policy = reply.enhanced.is_some_and(|e| e.subject == 7);
    // Sendmail's "450 4.4.0 Relaying temporarily denied. Cannot resolve PTR record" is about a
    // failed lookup of the client, not a decision.
    let relay_words = text.contains("relay")
        && !text.contains("temporar")
        && (text.contains("denied")
            || text.contains("not permitted")
            || text.contains("not allowed"));
    policy || relay_words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::{Limits, parse_reply};

    fn verdict(wire: &str) -> Verdict {
        let (reply, _) = parse_reply(format!("{wire}\r\n").as_bytes(), Limits::default())
            .unwrap()
            .unwrap();
        classify(&reply).0
    }

    #[test]
    fn relay_refusals_of_real_servers() {
        // Postfix defer_unauth_destination (the default since 2.10).
        assert_eq!(
            verdict("454 4.7.1 <u@ext.example>: Relay access denied"),
            Verdict::Refused
        );
        // Postfix reject_unauth_destination.
        assert_eq!(
            verdict("554 5.7.1 <u@ext.example>: Relay access denied"),
            Verdict::Refused
        );
        // Exim.
        assert_eq!(verdict("550 relay not permitted"), Verdict::Refused);
        // Sendmail.
        assert_eq!(
            verdict("550 5.7.1 <u@ext.example>... Relaying denied"),
            Verdict::Refused
        );
        // A 4xx without enhanced code but with relay wording.
        assert_eq!(
            verdict("450 Relaying denied, try authenticating"),
            Verdict::Refused
        );
    }

    #[test]
    fn sender_refusals_are_not_relay_refusals() {
        // Exim with Debian's CHECK_RCPT_VERIFY_SENDER, sender at an unroutable domain.
        let exim = "550-Verification failed for <p@exs.exim.test>\r\n550-Unrouteable address\r\n550 Sender verification failed";
        assert_eq!(verdict(exim), Verdict::Inconclusive);
        assert_eq!(
            verdict("450 4.1.7 <p@x.example>: Sender address rejected: unverified address"),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict("554 5.7.1 <u@ext.example>: Relay access denied"),
            Verdict::Refused
        );
    }

    #[test]
    fn sendmail_answers() {
        // A syntax refusal with 5.1.2 is a refusal, not a DNS problem.
        assert_eq!(
            verdict("553 5.1.2 <u@ext.example@>... Invalid route address"),
            Verdict::Refused
        );
        // Sender complaints at RCPT (delay_checks) say nothing about relaying.
        let unqualified =
            "553 5.5.4 <u@ext.example>... Domain name required for sender address relayguard-probe";
        assert_eq!(verdict(unqualified), Verdict::Inconclusive);
        let (reply, _) = parse_reply(format!("{unqualified}\r\n").as_bytes(), Limits::default())
            .unwrap()
            .unwrap();
        assert!(refuses_sender(&reply));
        // A failed lookup of the client's PTR, not a relay decision.
        assert_eq!(
            verdict(
                "450 4.4.0 <u@ext.example>... Relaying temporarily denied. Cannot resolve PTR record for 127.66.0.1"
            ),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict(
                "550 5.7.1 <u@ext.example>... Relaying denied. IP name lookup failed [127.66.0.1]"
            ),
            Verdict::Refused
        );
        assert_eq!(
            verdict("451 4.1.8 Domain of sender address p@x.example does not resolve"),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn acceptance_and_auth() {
        assert_eq!(verdict("250 2.1.5 Ok"), Verdict::Accepted);
        assert_eq!(
            verdict("251 User not local; will forward"),
            Verdict::Accepted
        );
        assert_eq!(
            verdict("530 5.7.0 Authentication required"),
            Verdict::AuthRequired
        );
        assert_eq!(
            verdict(
                "550 5.7.1 Client does not have permissions to send as this sender; authentication required"
            ),
            Verdict::AuthRequired
        );
    }

    #[test]
    fn temporary_and_odd_answers_are_inconclusive() {
        assert_eq!(
            verdict("451 4.7.1 Greylisted, try again later"),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict("450 4.2.0 <u@x>: Recipient address rejected: Greylisted"),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict("451 4.3.0 Temporary lookup failure"),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict("450 4.1.1 <u@x>: Recipient address rejected: unverified address"),
            Verdict::Inconclusive
        );
        assert_eq!(verdict("252 2.0.0 maybe"), Verdict::Inconclusive);
        assert_eq!(
            verdict("530 5.7.0 Must issue a STARTTLS command first"),
            Verdict::Inconclusive
        );
        assert_eq!(verdict("354 go ahead"), Verdict::Inconclusive);
        // Sendmail's default check of the sender domain, Postfix's unknown recipient domain.
        assert_eq!(
            verdict(
                "553 5.1.8 <p@nowhere.example>... Domain of sender address p@nowhere.example does not exist"
            ),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict("450 4.1.2 <u@nowhere.example>: Recipient address rejected: Domain not found"),
            Verdict::Inconclusive
        );
    }
}
