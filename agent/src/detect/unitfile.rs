//! A minimal systemd unit file reader: sections, repeated keys, `\` continuations, comments.
//!
//! Only what the detectors need (`[Socket] ListenStream=`, `[Install]`); no specifier expansion.

/// One `key=value` assignment with its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Section name without brackets, e.g. `Socket`.
    pub section: String,
    /// Key, e.g. `ListenStream`.
    pub key: String,
    /// Value with surrounding whitespace removed.
    pub value: String,
    /// 1-based line where the assignment starts.
    pub line: usize,
}

/// Parses unit file text into entries. Lines that are neither sections, comments nor
/// assignments are returned as errors `(line, message)` — systemd itself ignores them with a
/// warning, so callers warn rather than fail.
pub fn parse(text: &str) -> (Vec<Entry>, Vec<(usize, String)>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut section = String::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let (start, mut acc) = match pending.take() {
            Some((s, a)) => (s, a),
            None => {
                let t = raw.trim();
                if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                    continue;
                }
                (lineno, String::new())
            }
        };
        let t = raw.trim_end();
        if let Some(stripped) = t.strip_suffix('\\') {
            acc.push_str(stripped);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(t);
        let line = acc.trim();
        if line.starts_with('[') {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
            } else {
                errors.push((start, "unterminated section header".to_string()));
            }
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => entries.push(Entry {
                section: section.clone(),
                key: k.trim().to_string(),
                value: v.trim().to_string(),
                line: start,
            }),
            _ => errors.push((start, format!("not an assignment: {line:?}"))),
        }
    }
    if let Some((start, _)) = pending {
        errors.push((start, "continuation at end of file".to_string()));
    }
    (entries, errors)
}

/// Splits a `ListenStream=` value into (address, port); `None` for unix sockets and names.
/// Accepted forms: `25`, `0.0.0.0:25`, `[::]:25`, `127.0.0.1:587`.
pub fn listen_port(value: &str) -> Option<(String, u16)> {
    let v = value.trim();
    if v.starts_with('/') || v.starts_with('@') {
        return None;
    }
    if let Ok(p) = v.parse::<u16>() {
        return Some(("*".to_string(), p));
    }
    let (addr, port) = v.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    Some((
        addr.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
    ))
}

/// Whether a bound address is loopback only (127.0.0.0/8, ::1, ::ffff:127.x, `localhost`).
pub fn is_loopback_addr(addr: &str) -> bool {
    let a = addr
        .trim()
        .trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase();
    a.starts_with("127.")
        || a == "::1"
        || a.starts_with("::ffff:127.")
        || a == "localhost"
        || a == "lo"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_and_continuations() {
        let (e, err) =
            parse("[Socket]\nListenStream=0.0.0.0:25\n# c\nExec=a \\\n b\ngarbage\n[Bad\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].value, "a   b");
        assert_eq!(err.len(), 2);
    }

    #[test]
    fn listen_values() {
        assert_eq!(listen_port("25"), Some(("*".into(), 25)));
        assert_eq!(listen_port("[::1]:587"), Some(("::1".into(), 587)));
        assert_eq!(listen_port("/run/x.sock"), None);
        assert!(is_loopback_addr("127.0.0.1"));
        assert!(!is_loopback_addr("0.0.0.0"));
    }
}
