//! Discovery: is anything listening on the port?

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use relayguard_core::scan::PortState;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;

use crate::pacing::Pacer;

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
/// the address and `dial` are borrowed (the caller keeps them; a `SocketAddr` is 32 bytes), and
/// what waits is only the socket and its timer (see [`start_connect`]). An `async` block rather
/// than an `async fn`, which would keep its arguments twice.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn's future keeps its arguments twice"
)]
pub fn attempt<'a>(ip: &'a IpAddr, port: u16, dial: &'a Dial) -> impl Future<Output = Answer> + 'a {
    async move {
        let mut local_waits = 0;
        loop {
            // Not bound to a name: a local would be kept across the await below.
            let failed = match start_connect(SocketAddr::new(*ip, port), dial.source) {
                Ok(stream) => {
                    let handshake = poll_fn(|cx| stream.poll_write_ready(cx));
                    match tokio::time::timeout(dial.timeout, handshake).await {
                        // Writable means the handshake ended; how, the socket's error tells.
                        Ok(Ok(())) => match stream.take_error() {
                            Ok(None) => return Answer::Open,
                            Ok(Some(e)) | Err(e) => e,
                        },
                        Ok(Err(e)) => e,
                        Err(_) => return Answer::Silent,
                    }
                }
                Err(e) => e,
            };
            return match failed.kind() {
                io::ErrorKind::ConnectionRefused => Answer::Closed,
                _ if is_local_shortage(&failed) && local_waits < LOCAL_RETRIES => {
                    local_waits += 1;
                    tracing::debug!(%ip, port, error = %failed, "local resource shortage; waiting");
                    // Boxed for the same reason: only this rare path needs a second timer.
                    Box::pin(tokio::time::sleep(Duration::from_millis(20))).await;
                    continue;
                }
                io::ErrorKind::TimedOut => Answer::Silent,
                // Unreachable (ICMP) and everything else: nothing answers there.
                _ => Answer::Unreachable,
            };
        }
    }
}

/// Sends the SYN to `addr` (from `source`, when given) and hands the socket to tokio without
/// waiting for the answer.
///
/// `TcpSocket::connect` does the same, but its future keeps the socket, the address and its
/// own stream across the wait: some 80 bytes more in each of thousands of attempts in flight.
fn start_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        // The handshake is under way: the normal case for a non-blocking socket.
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    TcpStream::from_std(socket.into())
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
        match attempt(&addr.ip(), addr.port(), &dial).await {
            Answer::Silent if silent_attempts < retries => silent_attempts += 1,
            answer => return answer.state(),
        }
        pacer.wait().await;
    }
}

/// EMFILE, ENFILE, EADDRNOTAVAIL, ENOBUFS: our own limits, not the target's answer.
fn is_local_shortage(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrNotAvailable || matches!(e.raw_os_error(), Some(23 | 24 | 105))
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
        assert_eq!(attempt(&open.ip(), open.port(), &dial).await, Answer::Open);
        assert_eq!(probe(open, None, t, 1, &pacer).await, PortState::Open);
        drop(listener);
        // Nothing listens there any more: the kernel answers with a reset.
        assert_eq!(
            attempt(&open.ip(), open.port(), &dial).await,
            Answer::Closed
        );
        assert_eq!(probe(open, None, t, 1, &pacer).await, PortState::Closed);
    }
}
