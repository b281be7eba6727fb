//! The reply parser on arbitrary bytes and arbitrary limits: it never panics, and what it calls a
//! complete reply is well-formed and bounded.
//!
//! Input: two bytes that choose the limits, then the bytes from the server.

#![no_main]

use libfuzzer_sys::fuzz_target;
use relayguard_scanner::smtp::reply::{Limits, parse_reply};

fuzz_target!(|data: &[u8]| {
    let [line, lines, bytes @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_line: usize::from(*line) * 8,
        max_lines: usize::from(*lines % 64) + 1,
    };
    let Ok(Some((reply, used))) = parse_reply(bytes, limits) else {
        return;
    };
    // A complete reply is a non-empty run of whole lines within the limits.
    assert!(used > 0 && used <= bytes.len());
    assert_eq!(bytes[used - 1], b'\n');
    assert!((200..600).contains(&reply.code));
    assert!(!reply.lines.is_empty() && reply.lines.len() <= limits.max_lines);
    assert!(
        bytes[..used]
            .split(|&b| b == b'\n')
            .all(|l| l.len() <= limits.max_line + 1)
    );
    // Server text is escaped: nothing that could drive a terminal survives.
    for text in &reply.lines {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\t'),
            "{text:?}"
        );
    }
    // The reply depends on its own bytes only.
    assert_eq!(
        parse_reply(&bytes[..used], limits),
        Ok(Some((reply.clone(), used)))
    );
    assert_eq!(reply.wire_lines().len(), reply.lines.len());
});
