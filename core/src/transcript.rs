//! The record of an SMTP conversation, kept as evidence.

use serde::{Deserialize, Serialize};

/// Who produced a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Sent by relayguard.
    Client,
    /// Received from the server.
    Server,
    /// A remark by relayguard: connect, TLS established, timeout, hang-up.
    Note,
}

/// One line of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// Which connection to the host this line belongs to (1-based).
    pub session: u32,
    /// Milliseconds since the start of the host's audit.
    pub ms: u64,
    /// Who said it.
    pub dir: Direction,
    /// The text, without the line ending; non-UTF-8 bytes are replaced.
    pub text: String,
}

/// A bounded, append-only conversation log.
///
/// Bounded because the server is untrusted: a hostile peer must not make us hold an unbounded
/// transcript in memory. Lines past the limit are counted, not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    /// The stored lines.
    pub lines: Vec<TranscriptLine>,
    /// How many lines were dropped because the limit was reached.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Transcript {
    /// The most lines kept for one host.
    pub const MAX_LINES: usize = 4000;

    /// Appends a line unless the limit is reached.
    pub fn push(&mut self, line: TranscriptLine) {
        if self.lines.len() < Self::MAX_LINES {
            self.lines.push(line);
        } else {
            self.dropped += 1;
        }
    }

    /// Moves every line of `other` to the end of this transcript.
    pub fn append(&mut self, other: Transcript) {
        self.dropped += other.dropped;
        for line in other.lines {
            self.push(line);
        }
    }

    /// The lines of one session.
    pub fn session(&self, session: u32) -> impl Iterator<Item = &TranscriptLine> {
        self.lines.iter().filter(move |l| l.session == session)
    }
}
