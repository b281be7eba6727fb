//! Recognising MTAs from names: init scripts, unit names, program paths.
//!
//! Names are matched on whole words of the MTA vocabulary rather than on the process `comm`
//! alone: `master`, `smtpd` and `tcpserver` are ambiguous (Postfix's `master`/`smtpd` versus
//! OpenSMTPD's `smtpd`; tcpserver runs anything), so callers pass full paths or command lines.

pub use relayguard_core::agent_report::Mta;

/// Courier's ESMTP daemons (Debian courier-mta: `courier-mta`, `courier-mta-ssl` and
/// `courier-msa`, on ports 25, 465 and 587). Kept as a name for the tests and callers that
/// predate [`Mta::Courier`].
pub const COURIER: Mta = Mta::Courier;

/// Whether a service name is one of Courier's ESMTP listeners. `courier`, `courierfilter` and
/// `courier-authdaemon` are the delivery side and listen on nothing; `courier-imap*` and
/// `courier-pop*` are not mail transfer.
fn is_courier_listener(n: &str) -> bool {
    n.starts_with("courier-mta") || n.starts_with("courier-msa") || n.starts_with("esmtpd")
}

/// SMTP ports the agent cares about: smtp, submissions (smtps), submission.
pub const SMTP_PORTS: [u16; 3] = [25, 465, 587];

/// Classifies a service/script/unit name (e.g. `S88sendmail`, `exim4.service`, `qmail-smtpd`).
pub fn classify_service_name(name: &str) -> Option<Mta> {
    let n = name.to_ascii_lowercase();
    let n = n
        .trim_end_matches(".service")
        .trim_end_matches(".socket")
        .trim_end_matches(".sh");
    if is_courier_listener(n) {
        Some(COURIER)
    } else if n.contains("sendmail") || n == "sm-client" || n == "sm-mta" {
        Some(Mta::Sendmail)
    } else if n.contains("postfix") {
        Some(Mta::Postfix)
    } else if n.contains("exim") {
        Some(Mta::Exim)
    } else if n.contains("qmail") {
        Some(Mta::Qmail)
    } else if n.contains("opensmtpd") || n == "smtpd" {
        // A bare `smtpd` service name is Arch/OpenBSD's OpenSMTPD; Postfix never names its
        // boot service smtpd.
        Some(Mta::Opensmtpd)
    } else if n.contains("nullmailer") {
        Some(Mta::Nullmailer)
    } else if n == "dma" || n.starts_with("dma-") {
        Some(Mta::Dma)
    } else {
        None
    }
}

/// Classifies a program path or command line by its distinctive parts
/// (e.g. `/var/qmail/bin/qmail-smtpd`, `/usr/lib/postfix/sbin/master`, `/usr/sbin/exim4`).
pub fn classify_program(cmd: &str) -> Option<Mta> {
    let c = cmd.to_ascii_lowercase();
    // Courier's couriertcpd also serves IMAP and POP: only its ESMTP programs and the courierd
    // delivery daemon are the MTA.
    if c.contains("courieresmtpd") || c.contains("/esmtpd") || c.contains("courierd") {
        return Some(COURIER);
    }
    if c.contains("qmail") {
        Some(Mta::Qmail)
    } else if c.contains("postfix") {
        Some(Mta::Postfix)
    } else if c.contains("exim") {
        Some(Mta::Exim)
    } else if c.contains("sendmail") || c.contains("sm-mta") {
        Some(Mta::Sendmail)
    } else if c.contains("opensmtpd") || c.contains("smtpctl") || c.starts_with("smtpd:") {
        Some(Mta::Opensmtpd)
    } else if c.contains("nullmailer") {
        Some(Mta::Nullmailer)
    } else if c.contains("/dma") {
        Some(Mta::Dma)
    } else {
        None
    }
}

/// Maps an inetd/xinetd service name or port string to an SMTP port.
pub fn smtp_port_of_service(s: &str) -> Option<u16> {
    match s.to_ascii_lowercase().as_str() {
        "smtp" | "25" => Some(25),
        "smtps" | "submissions" | "urd" | "465" => Some(465),
        "submission" | "587" => Some(587),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(classify_service_name("S88sendmail"), Some(Mta::Sendmail));
        assert_eq!(classify_service_name("exim4.service"), Some(Mta::Exim));
        assert_eq!(classify_service_name("qmail-smtpd"), Some(Mta::Qmail));
        assert_eq!(classify_service_name("smtpd.service"), Some(Mta::Opensmtpd));
        assert_eq!(classify_service_name("ssh.service"), None);
        assert_eq!(
            classify_program("/usr/lib/postfix/sbin/master -w"),
            Some(Mta::Postfix)
        );
        assert_eq!(classify_program("master"), None);
        assert_eq!(smtp_port_of_service("submission"), Some(587));
        assert_eq!(classify_service_name("courier-mta.service"), Some(COURIER));
        assert_eq!(classify_service_name("courier-msa"), Some(COURIER));
        assert_eq!(classify_service_name("courier.service"), None);
        assert_eq!(classify_service_name("courier-imap"), None);
        assert_eq!(
            classify_program(
                "/usr/sbin/couriertcpd -address=0 25 /usr/lib/courier/courier/modules/esmtp/courieresmtpd"
            ),
            Some(COURIER)
        );
        assert_eq!(
            classify_program("/usr/sbin/couriertcpd -address=0 143 /usr/lib/courier/courier/imapd"),
            None
        );
    }
}
