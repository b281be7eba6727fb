//! Text from the network on its way to people.

/// Escapes control characters except tab (`\u{1b}` becomes `\u{1b}`, CR becomes `\r`).
///
/// Banners, PTR names and replies are chosen by whoever runs the remote server; an ANSI escape
/// sequence must not repaint an operator's terminal, and a CR LF must not forge a line in a
/// report or a mail.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_tabs_kept() {
        assert_eq!(
            escape_controls("220 \u{1b}[2J\tok\r\nBcc: x"),
            "220 \\u{1b}[2J\tok\\r\\nBcc: x"
        );
        assert_eq!(escape_controls("ユニコード"), "ユニコード");
    }
}
