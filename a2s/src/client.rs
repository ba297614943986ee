//! The A2S client: one connected UDP socket per server, challenges answered, split replies
//! reassembled, every query within one deadline. The bytes are the wire module's business.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::wire::{
    Datagram, Info, Player, Query, Reassembly, Rule, S2C_CHALLENGE, WireError, decode_datagram,
    parse_challenge, parse_info, parse_players, parse_rules,
};

/// Receive buffer: Steam sends at most 1400 bytes of payload per datagram; the rest is slack.
const MAX_DATAGRAM: usize = 4096;
/// Datagrams one query reads at most (challenge, fragments, stale replies of earlier queries).
const MAX_READS: usize = 64;
/// Challenges answered per query before giving up.
const MAX_CHALLENGES: usize = 3;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum A2sError {
    /// The server did not complete its reply before the deadline.
    #[error("no A2S reply from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    /// The kernel reported ICMP port unreachable: nothing listens on the port.
    #[error("nothing listens on {addr} (port unreachable)")]
    Refused { addr: SocketAddr },
    /// A socket call failed.
    #[error("A2S {op} for {addr}: {source}")]
    Io {
        op: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The bytes received are not a reply this client understands.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The server answered every challenged request with yet another challenge.
    #[error("{addr} kept answering with a new challenge ({count} times)")]
    ChallengeLoop { addr: SocketAddr, count: usize },
    /// The server sent datagram after datagram without completing the reply.
    #[error("malformed A2S reply: {addr} sent {reads} datagrams without completing the reply")]
    Unfinished { addr: SocketAddr, reads: usize },
}

/// A query client for one server: one UDP socket, connected, reused for every query.
#[derive(Debug)]
pub struct A2sClient {
    socket: UdpSocket,
    addr: SocketAddr,
    timeout: Duration,
}

impl A2sClient {
    /// Open a socket for querying `addr`; each later query must complete within `timeout`.
    /// Sends nothing yet.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, A2sError> {
        let io_err = |op| move |source| A2sError::Io { op, addr, source };
        // Never bind(2), not even to port 0: under `SocketBindDeny=any` (the unit's hardening)
        // an explicit bind is refused, while connect(2) picks an ephemeral port by itself.
        let family = match addr {
            SocketAddr::V4(_) => rustix::net::AddressFamily::INET,
            SocketAddr::V6(_) => rustix::net::AddressFamily::INET6,
        };
        let fd = rustix::net::socket_with(
            family,
            rustix::net::SocketType::DGRAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| io_err("socket")(e.into()))?;
        // Connected: the kernel drops datagrams from anyone else and reports port unreachable.
        rustix::net::connect(&fd, &addr).map_err(|e| io_err("connect")(e.into()))?;
        let socket = UdpSocket::from(fd);
        Ok(Self {
            socket,
            addr,
            timeout: timeout.max(Duration::from_millis(1)),
        })
    }

    /// The server this client queries.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A2S_INFO: name, map, player counts and the rest.
    pub fn info(&self) -> Result<Info, A2sError> {
        Ok(parse_info(&self.query(Query::Info)?)?)
    }

    /// A2S_PLAYER: the players on the server.
    pub fn players(&self) -> Result<Vec<Player>, A2sError> {
        Ok(parse_players(&self.query(Query::Players)?)?)
    }

    /// A2S_RULES: the server's public cvars.
    pub fn rules(&self) -> Result<Vec<Rule>, A2sError> {
        Ok(parse_rules(&self.query(Query::Rules)?)?)
    }

    /// Send `query`, answer challenges, reassemble split replies; return the reply message.
    fn query(&self, query: Query) -> Result<Vec<u8>, A2sError> {
        let deadline = Instant::now() + self.timeout;
        self.discard_stale()?;
        self.send(&query.request(None))?;
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut reassembly = Reassembly::new();
        let mut challenges = 0;
        for _ in 0..MAX_READS {
            let len = self.recv(&mut buf, deadline)?;
            let message = match decode_datagram(&buf[..len])? {
                Datagram::Single(message) => message.to_vec(),
                Datagram::Fragment(fragment) => match reassembly.add(fragment)? {
                    Some(message) => message,
                    None => continue,
                },
            };
            match message.first() {
                Some(&S2C_CHALLENGE) => {
                    challenges += 1;
                    if challenges > MAX_CHALLENGES {
                        return Err(A2sError::ChallengeLoop {
                            addr: self.addr,
                            count: challenges,
                        });
                    }
                    let challenge = parse_challenge(&message)?;
                    self.send(&query.request(Some(challenge)))?;
                }
                Some(&kind) if kind == query.reply_type() => return Ok(message),
                // A late reply to an earlier query, or something else: not ours, keep reading.
                _ => {}
            }
        }
        Err(A2sError::Unfinished {
            addr: self.addr,
            reads: MAX_READS,
        })
    }

    fn send(&self, request: &[u8]) -> Result<(), A2sError> {
        match self.socket.send(request) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.io_error("send", e)),
        }
    }

    /// Receive one datagram before `deadline`.
    fn recv(&self, buf: &mut [u8], deadline: Instant) -> Result<usize, A2sError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(self.timeout_error());
        }
        self.socket
            .set_read_timeout(Some(remaining))
            .map_err(|e| self.io_error("set read timeout", e))?;
        self.socket.recv(buf).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timeout_error(),
            _ => self.io_error("receive", e),
        })
    }

    /// Drop replies that arrived after an earlier query gave up, and any pending port-unreachable
    /// report, so they are not taken for the answer to this query. Bounded like every read.
    fn discard_stale(&self) -> Result<(), A2sError> {
        self.socket
            .set_nonblocking(true)
            .map_err(|e| self.io_error("set non-blocking", e))?;
        let mut buf = [0u8; MAX_DATAGRAM];
        for _ in 0..MAX_READS {
            match self.socket.recv(&mut buf) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                // WouldBlock: nothing is left.
                Err(_) => break,
            }
        }
        self.socket
            .set_nonblocking(false)
            .map_err(|e| self.io_error("set blocking", e))
    }

    fn timeout_error(&self) -> A2sError {
        A2sError::Timeout {
            addr: self.addr,
            timeout: self.timeout,
        }
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> A2sError {
        if source.kind() == io::ErrorKind::ConnectionRefused {
            return A2sError::Refused { addr: self.addr };
        }
        A2sError::Io {
            op,
            addr: self.addr,
            source,
        }
    }
}

/// One-shot A2S_INFO query (opens and closes its own socket). A poll loop should keep an
/// [`A2sClient`] instead.
pub fn query_info(addr: SocketAddr, timeout: Duration) -> Result<Info, A2sError> {
    A2sClient::connect(addr, timeout)?.info()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::wire::info_request;

    fn loopback_server() -> (UdpSocket, SocketAddr) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = server.local_addr().unwrap();
        (server, addr)
    }

    #[test]
    fn answers_the_challenge_and_reassembles_over_loopback() {
        let (server, addr) = loopback_server();
        let serve = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let (len, peer) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], WIKI_INFO_REQUEST);
            // A stale reply of some earlier query first: the client must skip it.
            server.send_to(WIKI_PLAYERS, peer).unwrap();
            server.send_to(WIKI_CHALLENGE, peer).unwrap();
            let (len, peer) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], info_request(Some([0x4B, 0xA1, 0xD5, 0x22])));
            for datagram in split(9, single(WIKI_INFO_CSS), 50).iter().rev() {
                server.send_to(datagram, peer).unwrap();
            }
        });
        let client = A2sClient::connect(addr, Duration::from_secs(5)).unwrap();
        let info = client.info().unwrap();
        assert_eq!(info.name, "game2xs.com Counter-Strike Source #1");
        serve.join().unwrap();
    }

    #[test]
    fn times_out_when_nothing_answers() {
        let (_server, addr) = loopback_server();
        let client = A2sClient::connect(addr, Duration::from_millis(200)).unwrap();
        let started = Instant::now();
        match client.info() {
            Err(A2sError::Timeout { timeout, .. }) => {
                assert_eq!(timeout, Duration::from_millis(200))
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn gives_up_on_endless_challenges() {
        let (server, addr) = loopback_server();
        let serve = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            for _ in 0..=MAX_CHALLENGES {
                let (_, peer) = server.recv_from(&mut buf).unwrap();
                server.send_to(WIKI_CHALLENGE, peer).unwrap();
            }
        });
        let client = A2sClient::connect(addr, Duration::from_secs(5)).unwrap();
        match client.players() {
            Err(A2sError::ChallengeLoop { count, .. }) => assert_eq!(count, MAX_CHALLENGES + 1),
            other => panic!("expected ChallengeLoop, got {other:?}"),
        }
        serve.join().unwrap();
    }

    #[test]
    fn reports_a_closed_port_as_refused() {
        let (server, addr) = loopback_server();
        drop(server);
        let client = A2sClient::connect(addr, Duration::from_secs(2)).unwrap();
        match client.info() {
            Err(A2sError::Refused { addr: refused }) => assert_eq!(refused, addr),
            other => panic!("expected Refused, got {other:?}"),
        }
    }
}
