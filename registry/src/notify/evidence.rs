//! The lines of evidence a digest quotes, read from core's typed [`Evidence`].

use relayguard_core::transcript::Direction;
use relayguard_core::{Evidence, escape_controls};

use crate::store::FindingRow;

/// Most evidence lines quoted for one finding.
const MAX_LINES: usize = 40;
/// Most characters quoted from one line.
const MAX_CHARS: usize = 300;

/// The lines of evidence worth showing: for relay and backscatter findings, the MAIL/RCPT
/// commands and the replies to them; otherwise the start of the transcript. Evidence the
/// registry or an agent made (no tests, no transcript) becomes one `key: value` line per field
/// that says something. Control characters are escaped and long lines cut.
pub fn evidence_lines(f: &FindingRow) -> Vec<String> {
    let mut out = Vec::new();
    let lines = match serde_json::from_value::<Evidence>(f.evidence.clone()) {
        Ok(ev) if !ev.tests.is_empty() || !ev.transcript.is_empty() => {
            // What a relay verdict rests on comes first: a reader must not take a routed-form
            // acceptance for a proven relay.
            if let Some(strength) = ev.relay_strength {
                out.push(format!("verdict: {}", strength.describe()));
            }
            scan_lines(&ev)
        }
        _ => field_lines(&f.evidence),
    };
    if let Some(from) = &f.tested_from {
        out.push(format!("tested from: {}", clip(from)));
    }
    out.extend(lines);
    out
}

fn clip(s: &str) -> String {
    let s = escape_controls(s);
    if s.chars().count() > MAX_CHARS {
        s.chars().take(MAX_CHARS).collect::<String>() + "…"
    } else {
        s
    }
}

/// A scanner finding's evidence: the tests, then the envelope commands with their replies (or,
/// when there are none, the whole transcript).
fn scan_lines(ev: &Evidence) -> Vec<String> {
    let mut out = Vec::new();
    if !ev.tests.is_empty() {
        out.push(clip(&format!("tests: {}", ev.tests.join(", "))));
    }
    let prefix = |dir: Direction| match dir {
        Direction::Client => "C: ",
        Direction::Server => "S: ",
        Direction::Note => "-- ",
    };
    let is_envelope = |dir: Direction, text: &str| {
        let t = text.trim_start().to_ascii_uppercase();
        dir == Direction::Client && (t.starts_with("MAIL FROM") || t.starts_with("RCPT TO"))
    };
    let quote = |dir: Direction, text: &str| format!("{}{}", prefix(dir), clip(text));
    let mut picked = Vec::new();
    if ev.transcript.iter().any(|l| is_envelope(l.dir, &l.text)) {
        let mut keep_replies = false;
        let mut after_envelope = false;
        for l in &ev.transcript {
            if is_envelope(l.dir, &l.text) {
                keep_replies = true;
                picked.push(quote(l.dir, &l.text));
            } else if l.dir == Direction::Client && after_envelope {
                // A pipelined flight (MAIL, RCPT, RSET, then their replies): the RSET is quoted
                // so that the replies line up with the commands they answer.
                picked.push(quote(l.dir, &l.text));
            } else if l.dir == Direction::Server && keep_replies {
                picked.push(quote(l.dir, &l.text));
            } else if l.dir == Direction::Client {
                keep_replies = false;
            }
            after_envelope = is_envelope(l.dir, &l.text);
        }
    } else {
        picked = ev
            .transcript
            .iter()
            .map(|l| quote(l.dir, &l.text))
            .collect();
    }
    let total = picked.len();
    out.extend(picked.into_iter().take(MAX_LINES));
    if total > MAX_LINES {
        out.push(format!("… ({} more lines)", total - MAX_LINES));
    }
    out
}

/// Registry- and agent-made evidence: one `key: value` line per field that says something.
fn field_lines(ev: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(obj) = ev.as_object() else {
        return out;
    };
    for (k, v) in obj {
        let v = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) if s.is_empty() => continue,
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if out.len() >= MAX_LINES {
            break;
        }
        out.push(clip(&format!("{k}: {v}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FindingSource, FindingStatus};
    use relayguard_core::Severity;
    use serde_json::json;

    fn finding(status: FindingStatus, evidence: serde_json::Value) -> FindingRow {
        FindingRow {
            overridden: None,
            id: 1,
            address: "192.0.2.1".into(),
            port: 25,
            kind: "open-relay".into(),
            source: FindingSource::Sweep,
            severity: Severity::Critical,
            summary: "s".into(),
            evidence,
            status,
            first_seen: 0,
            last_seen: 0,
            resolved_at: None,
            last_sweep: None,
            tested_from: None,
            vantages: vec![],
            admin_email: None,
        }
    }

    #[test]
    fn evidence_quotes_envelope_lines_with_control_characters_escaped() {
        let f = finding(
            FindingStatus::Open,
            json!({"tests": ["v1"], "transcript": [
                {"session": 1, "ms": 0, "dir": "server", "text": "220 \u{1b}[31mhi"},
                {"session": 1, "ms": 1, "dir": "client", "text": "MAIL FROM:<a@b.c>"},
                {"session": 1, "ms": 2, "dir": "server", "text": "250 ok\r\nBcc: x"},
                {"session": 1, "ms": 3, "dir": "client", "text": "QUIT"},
                {"session": 1, "ms": 4, "dir": "server", "text": "221 bye"}
            ]}),
        );
        assert_eq!(
            evidence_lines(&f),
            vec!["tests: v1", "C: MAIL FROM:<a@b.c>", "S: 250 ok\\r\\nBcc: x"]
        );
        let f = finding(
            FindingStatus::Open,
            json!({"banner": "220 \u{1b}[2J", "ptr": null, "sweep": 3}),
        );
        assert_eq!(
            evidence_lines(&f),
            vec!["banner: 220 \\u{1b}[2J", "sweep: 3"]
        );
    }

    #[test]
    fn a_pipelined_flight_keeps_its_replies_in_line_with_its_commands() {
        let line = |ms, dir, text| json!({"session": 1, "ms": ms, "dir": dir, "text": text});
        let f = finding(
            FindingStatus::Open,
            json!({"tests": ["v1"], "transcript": [
                line(0, "client", "MAIL FROM:<a@b.c>"),
                line(0, "client", "RCPT TO:<u@ext.example>"),
                line(0, "client", "RSET"),
                line(1, "server", "250 2.1.0 Ok"),
                line(1, "server", "250 2.1.5 Ok"),
                line(1, "server", "250 2.0.0 Ok"),
                line(2, "client", "QUIT"),
                line(3, "server", "221 bye")
            ]}),
        );
        assert_eq!(
            evidence_lines(&f),
            vec![
                "tests: v1",
                "C: MAIL FROM:<a@b.c>",
                "C: RCPT TO:<u@ext.example>",
                "C: RSET",
                "S: 250 2.1.0 Ok",
                "S: 250 2.1.5 Ok",
                "S: 250 2.0.0 Ok"
            ]
        );
    }
}
