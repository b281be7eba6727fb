//! Results kept until the sweep ends, in a temporary file rather than in memory.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;

use anyhow::Context;
use relayguard_core::scan::HostResult;
use serde::ser::{Error as _, SerializeSeq};
use serde::{Serialize, Serializer};

/// The results of a sweep as it runs, each written as compact JSON to an unlinked temporary
/// file: the result without its transcript, then the transcript.
///
/// An audited host's result carries its transcripts: ~22 KB of JSON on the campus /16, 5.7 MiB
/// for its 256 hosts. Kept in memory they were a fifth of the sweep's peak heap, held while
/// 16,000 discovery connections are in flight, and read back whole at the end they were most of
/// what the registry write added to the peak. The file (in `$TMPDIR`, removed by the system
/// when the process ends, even on a crash) is read back after discovery's memory is free, and
/// only as much at a time as each use needs ([`Kept`]); the transcript is written apart so that
/// the uses that do not show it never decode it.
#[derive(Debug)]
pub struct KeptResults {
    file: BufWriter<File>,
    index: Vec<Entry>,
    written: u64,
}

/// Where one result lies in the file, and what it is sorted by.
#[derive(Debug, Clone, Copy)]
struct Entry {
    address: IpAddr,
    port: u16,
    offset: u64,
    /// The result without its transcript.
    length: u32,
    /// The transcript, right after it.
    transcript_length: u32,
}

impl KeptResults {
    /// An empty set of results, backed by a new temporary file.
    pub fn new() -> anyhow::Result<Self> {
        let file = tempfile::tempfile()
            .context("creating a temporary file for the results (is $TMPDIR writable?)")?;
        Ok(KeptResults {
            file: BufWriter::new(file),
            index: Vec::new(),
            written: 0,
        })
    }

    /// Keeps one result.
    pub fn keep(&mut self, mut host: HostResult) -> anyhow::Result<()> {
        let transcript = std::mem::take(&mut host.transcript);
        let head = serde_json::to_vec(&host).context("encoding a result")?;
        let tail = serde_json::to_vec(&transcript).context("encoding a transcript")?;
        let too_large = || anyhow::anyhow!("a result of more than 4 GiB");
        let entry = Entry {
            address: host.address,
            port: host.port,
            offset: self.written,
            length: u32::try_from(head.len()).map_err(|_| too_large())?,
            transcript_length: u32::try_from(tail.len()).map_err(|_| too_large())?,
        };
        self.file
            .write_all(&head)
            .and_then(|()| self.file.write_all(&tail))
            .context("writing a result to the temporary file")?;
        self.index.push(entry);
        self.written += (head.len() + tail.len()) as u64;
        Ok(())
    }

    /// The results kept, ordered by address and port, ready to be read back.
    pub fn finish(mut self) -> anyhow::Result<Kept> {
        let file = self
            .file
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .context("writing the results to the temporary file")?;
        self.index.sort_by_key(|e| (e.address, e.port));
        Ok(Kept {
            file,
            index: self.index,
        })
    }
}

/// The results of a finished (or interrupted) sweep, in their temporary file.
#[derive(Debug)]
pub struct Kept {
    file: File,
    index: Vec<Entry>,
}

impl Kept {
    /// Each result, whole, ordered by address and port: one in memory at a time.
    pub fn each(&self) -> impl Iterator<Item = anyhow::Result<HostResult>> + '_ {
        self.read(true)
    }

    /// Every result, whole.
    pub fn all(&self) -> anyhow::Result<Vec<HostResult>> {
        self.each().collect()
    }

    /// Each result without its transcript, in the same order, one in memory at a time: what
    /// the table and the CSV read (they report findings, tests and port states, not
    /// conversations).
    pub fn each_without_transcript(&self) -> impl Iterator<Item = anyhow::Result<HostResult>> + '_ {
        self.read(false)
    }

    fn read(&self, transcripts: bool) -> impl Iterator<Item = anyhow::Result<HostResult>> + '_ {
        let mut text = Vec::new();
        self.index.iter().map(move |e| {
            let length = if transcripts {
                e.length as usize + e.transcript_length as usize
            } else {
                e.length as usize
            };
            // `&File` reads and seeks: no exclusive borrow, so several walks may be made.
            let mut file = &self.file;
            text.resize(length, 0);
            file.seek(SeekFrom::Start(e.offset))
                .and_then(|_| file.read_exact(&mut text))
                .context("reading a result back from the temporary file")?;
            let (head, tail) = text.split_at(e.length as usize);
            let mut host: HostResult =
                serde_json::from_slice(head).context("decoding a kept result")?;
            if transcripts {
                host.transcript =
                    serde_json::from_slice(tail).context("decoding a kept transcript")?;
            }
            Ok(host)
        })
    }
}

/// The results a JSON report lists: whole in memory, or read back from their file one at a
/// time as the report is written.
#[derive(Debug, Clone, Copy)]
pub enum HostsOf<'a> {
    /// Results already in memory (an upload's, or those `--confirm` added to).
    Memory(&'a [HostResult]),
    /// The sweep's results in their file.
    File(&'a Kept),
}

impl Serialize for HostsOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            HostsOf::Memory(hosts) => hosts.serialize(serializer),
            HostsOf::File(kept) => {
                let mut seq = serializer.serialize_seq(Some(kept.index.len()))?;
                for host in kept.each() {
                    let host = host.map_err(|e| S::Error::custom(format!("{e:#}")))?;
                    seq.serialize_element(&host)?;
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use relayguard_core::scan::{PortState, TestKind, TestResult, Verdict};
    use relayguard_core::{Direction, TranscriptLine};

    use super::*;

    #[test]
    fn results_come_back_exactly_as_kept() {
        let ip: IpAddr = "2001:db8::25".parse().unwrap();
        let mut host = HostResult::unreachable(ip, 25, PortState::Open);
        host.target_name = Some("mx.campus.test".into());
        host.notes.push("a note with \u{1b} and ünïcode".into());
        host.tests.push(TestResult {
            id: "percent-hack-ip".into(),
            kind: TestKind::Relay,
            mail_from: Some("<probe@example.com>".into()),
            argument: "<victim%example.com@[IPv6:2001:db8::25]>".into(),
            verdict: Verdict::Refused,
            reply: "554 5.7.1 Relay access denied".into(),
            note: None,
            session: 2,
        });
        host.transcript.push(TranscriptLine {
            session: 2,
            ms: 17,
            dir: Direction::Server,
            text: "554 5.7.1 Relay access denied".into(),
        });
        let other = HostResult::unreachable("192.0.2.7".parse().unwrap(), 587, PortState::Filtered);
        let mut kept = KeptResults::new().unwrap();
        kept.keep(host.clone()).unwrap();
        kept.keep(other.clone()).unwrap();
        let kept = kept.finish().unwrap();
        // Sorted by address: the IPv4 result first.
        assert_eq!(kept.all().unwrap(), vec![other.clone(), host.clone()]);
        // A second walk reads the same; without transcripts, only the transcript is gone.
        assert_eq!(kept.all().unwrap(), vec![other.clone(), host.clone()]);
        let slim: Vec<HostResult> = kept
            .each_without_transcript()
            .collect::<anyhow::Result<_>>()
            .unwrap();
        assert!(slim[1].transcript.lines.is_empty());
        assert_eq!(slim[1].tests, host.tests);
        assert_eq!(slim[1].notes, host.notes);
        // A report listed from the file is the report listed from memory.
        assert_eq!(
            serde_json::to_string(&HostsOf::File(&kept)).unwrap(),
            serde_json::to_string(&HostsOf::Memory(&[other.clone(), host.clone()])).unwrap()
        );
        // A file cut short is an error that says so, not a result quietly missing.
        kept.file.set_len(10).unwrap();
        let e = kept.all().unwrap_err();
        assert!(format!("{e:#}").contains("reading a result back"), "{e:#}");
        let e = serde_json::to_string(&HostsOf::File(&kept)).unwrap_err();
        assert!(e.to_string().contains("reading a result back"), "{e}");
    }
}
