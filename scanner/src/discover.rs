//! Discovery: is anything listening on the port?

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use relayguard_core::scan::PortState;

use crate::pacing::Pacer;
use crate::smtp::connection::tcp_socket;

/// How often a local resource shortage (no free file descriptors or ports) is waited out before
/// the address is given up on as filtered.
const LOCAL_RETRIES: u32 = 50;

/// What one connection attempt heard back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The handshake completed.
    Open,
    /// A reset: nothing listens there.
    Closed,
    /// No answer within the timeout: filtered, or a SYN (or SYN-ACK) was lost.
    Silent,
    /// An ICMP error or another definite failure: nothing answers there.
    Unreachable,
}

impl Answer {
    /// The port state this answer stands for, once no retry is left.
    pub fn state(self) -> PortState {
        match self {
            Answer::Open => PortState::Open,
            Answer::Closed => PortState::Closed,
            Answer::Silent | Answer::Unreachable => PortState::Filtered,
        }
    }
}

/// Where discovery connects from and how long it waits for an answer.
#[derive(Debug, Clone, Copy)]
pub struct Dial {
    /// The local address to connect from (`None`: the kernel's choice).
    pub source: Option<IpAddr>,
    /// How long a connect may take before the port counts as silent.
    pub timeout: Duration,
}

/// Connects once and closes again at once. The caller paces the attempt.
///
/// A local resource shortage (no free descriptor or port) sends no packet, so it is waited out
/// here rather than counted as the target's answer.
///
/// Thousands of attempts are in flight at once, and each byte of this future is one of theirs:
/// `dial` is borrowed (the caller keeps one for all), and the socket is made here and its
/// connect awaited directly, not through `tcp_connect`, whose future copies its arguments.
pub async fn attempt(addr: SocketAddr, dial: &Dial) -> Answer {
    let mut local_waits = 0;
    loop {
        let connected = match tcp_socket(addr, dial.source) {
            Ok(socket) => match tokio::time::timeout(dial.timeout, socket.connect(addr)).await {
                Ok(Ok(_stream)) => return Answer::Open,
                Ok(Err(e)) => e,
                Err(_) => return Answer::Silent,
            },
            Err(e) => e,
        };
        return match connected.kind() {
            std::io::ErrorKind::ConnectionRefused => Answer::Closed,
            _ if is_local_shortage(&connected) && local_waits < LOCAL_RETRIES => {
                local_waits += 1;
                tracing::debug!(%addr, error = %connected, "local resource shortage; waiting");
                // Boxed for the same reason: only this rare path needs a second timer.
                Box::pin(tokio::time::sleep(Duration::from_millis(20))).await;
                continue;
            }
            std::io::ErrorKind::TimedOut => Answer::Silent,
            // Unreachable (ICMP) and everything else: nothing answers there.
            _ => Answer::Unreachable,
        };
    }
}

/// Connects once (plus `retries` more times while there is no answer) and reports the state.
///
/// A lost SYN looks exactly like a filtered port, so a silent port is retried: without
/// retransmission a sweep quietly loses live hosts. The first attempt is paced by the caller;
/// retries are paced here.
pub async fn probe(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
    retries: u32,
    pacer: &Pacer,
) -> PortState {
    let dial = Dial { source, timeout };
    let mut silent_attempts = 0;
    loop {
        match attempt(addr, &dial).await {
            Answer::Silent if silent_attempts < retries => silent_attempts += 1,
            answer => return answer.state(),
        }
        pacer.wait().await;
    }
}

/// EMFILE, ENFILE, EADDRNOTAVAIL, ENOBUFS: our own limits, not the target's answer.
fn is_local_shortage(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::AddrNotAvailable
        || matches!(e.raw_os_error(), Some(23 | 24 | 105))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_and_closed_ports_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let pacer = Pacer::new(None);
        let t = Duration::from_secs(2);
        let dial = Dial {
            source: None,
            timeout: t,
        };
        assert_eq!(attempt(open, &dial).await, Answer::Open);
        assert_eq!(probe(open, None, t, 1, &pacer).await, PortState::Open);
        drop(listener);
        // Nothing listens there any more: the kernel answers with a reset.
        assert_eq!(attempt(open, &dial).await, Answer::Closed);
        assert_eq!(probe(open, None, t, 1, &pacer).await, PortState::Closed);
    }
}
