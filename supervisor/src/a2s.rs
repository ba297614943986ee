//! A2S server queries (Valve's "Server queries" UDP protocol), std only.
//!
//! [`A2sClient`] owns one UDP socket connected to one game server and is meant to be kept for the
//! whole poll loop: a query costs one request datagram (two when the server asks for a challenge,
//! as Valve servers have since December 2020) and a bounded number of reads, all within one
//! deadline. The byte-level work lives in pure functions — [`decode_datagram`], [`Reassembly`],
//! [`parse_challenge`], [`parse_info`], [`parse_players`], [`parse_rules`] and the request
//! builders — so it is unit-tested on bytes, including the examples of the Valve developer wiki.
//!
//! Scope: Source engine servers as Left 4 Dead 2 runs them. Split replies carry the Source header
//! with the `size` field (Orange Box engine and later); a bzip2-compressed split reply (which L4D2
//! never sends) is reported as [`A2sError::Compressed`]. GoldSource replies (`m`) and The Ship's
//! extra fields (app 2400) are not parsed.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Header of a reply that fits one datagram (-1 as a little-endian long).
const SINGLE_HEADER: [u8; 4] = [0xFF, 0xFF, 0xFF, 0xFF];
/// Header of one datagram of a split reply (-2 as a little-endian long).
const SPLIT_HEADER: [u8; 4] = [0xFE, 0xFF, 0xFF, 0xFF];
/// Bit of the split id that says the reply was bzip2-compressed before being cut.
const COMPRESSED_BIT: u32 = 0x8000_0000;

const S2C_CHALLENGE: u8 = 0x41;
const A2S_INFO: u8 = 0x54;
const S2A_INFO: u8 = 0x49;
const A2S_PLAYER: u8 = 0x55;
const S2A_PLAYER: u8 = 0x44;
const A2S_RULES: u8 = 0x56;
const S2A_RULES: u8 = 0x45;
const INFO_PAYLOAD: &[u8] = b"Source Engine Query\0";
/// What A2S_PLAYER and A2S_RULES send before they have a challenge.
const NO_CHALLENGE: [u8; 4] = [0xFF, 0xFF, 0xFF, 0xFF];

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
    #[error("malformed A2S reply: {reason}")]
    Malformed { reason: String },
    /// The split reply was bzip2-compressed; Left 4 Dead 2 never does that.
    #[error(
        "A2S reply is bzip2-compressed (split id {id:#010x}); compressed replies are not \
         supported (Left 4 Dead 2 never sends them)"
    )]
    Compressed { id: u32 },
    /// The server answered every challenged request with yet another challenge.
    #[error("{addr} kept answering with a new challenge ({count} times)")]
    ChallengeLoop { addr: SocketAddr, count: usize },
}

fn malformed(reason: impl Into<String>) -> A2sError {
    A2sError::Malformed {
        reason: reason.into(),
    }
}

/// `server type` byte of an A2S_INFO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerType {
    /// `d`
    Dedicated,
    /// `l`
    NonDedicated,
    /// `p`: a SourceTV relay.
    SourceTv,
    /// Any other byte, kept as sent.
    Other(u8),
}

impl From<u8> for ServerType {
    fn from(byte: u8) -> Self {
        match byte.to_ascii_lowercase() {
            b'd' => Self::Dedicated,
            b'l' => Self::NonDedicated,
            b'p' => Self::SourceTv,
            _ => Self::Other(byte),
        }
    }
}

/// `environment` byte of an A2S_INFO reply: the server's operating system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `l`
    Linux,
    /// `w`
    Windows,
    /// `m` or the older `o`
    Mac,
    /// Any other byte, kept as sent.
    Other(u8),
}

impl From<u8> for Environment {
    fn from(byte: u8) -> Self {
        match byte.to_ascii_lowercase() {
            b'l' => Self::Linux,
            b'w' => Self::Windows,
            b'm' | b'o' => Self::Mac,
            _ => Self::Other(byte),
        }
    }
}

/// `visibility` byte of an A2S_INFO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// 0: no password.
    Public,
    /// 1 (or anything else): a password is needed to join.
    Private,
}

/// The SourceTV part of the extra data (EDF bit 0x40).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTv {
    pub port: u16,
    pub name: String,
}

/// A parsed A2S_INFO (0x49) reply. Strings are decoded as UTF-8, invalid bytes replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub protocol: u8,
    pub name: String,
    pub map: String,
    /// The game directory, `left4dead2` for L4D2.
    pub folder: String,
    pub game: String,
    /// Steam app id (550 for L4D2); the low 16 bits only, see `game_id` for the full one.
    pub app_id: u16,
    /// Players on the server, bots included.
    pub players: u8,
    pub max_players: u8,
    pub bots: u8,
    pub server_type: ServerType,
    pub environment: Environment,
    pub visibility: Visibility,
    /// The server is VAC secured.
    pub vac: bool,
    pub version: String,
    /// EDF 0x80: the game port.
    pub port: Option<u16>,
    /// EDF 0x10: the server's SteamID.
    pub steam_id: Option<u64>,
    /// EDF 0x40: SourceTV port and name.
    pub source_tv: Option<SourceTv>,
    /// EDF 0x20: the tags (`sv_tags`).
    pub keywords: Option<String>,
    /// EDF 0x01: the 64-bit game id (its low 24 bits are the app id).
    pub game_id: Option<u64>,
}

/// One entry of an A2S_PLAYER (0x44) reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Player {
    /// Slot index as sent (Source servers often send 0 for everyone).
    pub index: u8,
    pub name: String,
    pub score: i32,
    /// Seconds connected.
    pub duration: f32,
}

/// One entry of an A2S_RULES (0x45) reply: a public cvar and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub value: String,
}

/// One received datagram, header decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A whole reply: the message, starting with its type byte.
    Single(&'a [u8]),
    /// One piece of a split reply.
    Fragment(Fragment<'a>),
}

/// One datagram of a Source split reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Same for every piece of one reply.
    pub id: u32,
    /// Number of pieces in the reply.
    pub total: u8,
    /// This piece's place, from 0.
    pub number: u8,
    /// The server's split size (1248 by default).
    pub size: u16,
    pub payload: &'a [u8],
}

/// Decode the header of one datagram as a Source server sends it.
pub fn decode_datagram(datagram: &[u8]) -> Result<Datagram<'_>, A2sError> {
    let Some((header, rest)) = datagram.split_first_chunk::<4>() else {
        return Err(malformed(format!(
            "datagram of {} bytes is shorter than its 4-byte header",
            datagram.len()
        )));
    };
    match *header {
        SINGLE_HEADER => Ok(Datagram::Single(rest)),
        SPLIT_HEADER => {
            let mut reader = Reader::new("split reply header", rest);
            let id = reader.u32("id")?;
            if id & COMPRESSED_BIT != 0 {
                return Err(A2sError::Compressed { id });
            }
            let total = reader.u8("total")?;
            let number = reader.u8("number")?;
            let size = reader.u16("size")?;
            if total == 0 || number >= total {
                return Err(malformed(format!(
                    "split reply piece {number} of {total} is out of range"
                )));
            }
            Ok(Datagram::Fragment(Fragment {
                id,
                total,
                number,
                size,
                payload: reader.rest(),
            }))
        }
        other => Err(malformed(format!(
            "unknown datagram header {other:02X?} (expected FF FF FF FF or FE FF FF FF)"
        ))),
    }
}

/// Collects the pieces of one split reply, in any order.
#[derive(Debug, Default)]
pub struct Reassembly {
    id: u32,
    pieces: Vec<Option<Vec<u8>>>,
}

impl Reassembly {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one piece. Returns the whole message (starting with its type byte) once every piece is
    /// in. A piece of another reply (an older one arriving late, or a newer one) discards what was
    /// collected and starts over with that reply.
    pub fn add(&mut self, fragment: Fragment<'_>) -> Result<Option<Vec<u8>>, A2sError> {
        if self.pieces.is_empty() || fragment.id != self.id {
            self.id = fragment.id;
            self.pieces = vec![None; usize::from(fragment.total)];
        }
        if self.pieces.len() != usize::from(fragment.total) {
            return Err(malformed(format!(
                "split reply {:#x} changed its piece count from {} to {}",
                fragment.id,
                self.pieces.len(),
                fragment.total
            )));
        }
        self.pieces[usize::from(fragment.number)] = Some(fragment.payload.to_vec());
        if self.pieces.iter().any(Option::is_none) {
            return Ok(None);
        }
        let mut message: Vec<u8> = std::mem::take(&mut self.pieces)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        // Source servers put the single-reply header at the start of the joined payload.
        if message.starts_with(&SINGLE_HEADER) {
            message.drain(..SINGLE_HEADER.len());
        }
        Ok(Some(message))
    }
}

/// The A2S_INFO request, with the challenge appended when the server asked for one.
pub fn info_request(challenge: Option<[u8; 4]>) -> Vec<u8> {
    let mut request = [&SINGLE_HEADER[..], &[A2S_INFO], INFO_PAYLOAD].concat();
    if let Some(challenge) = challenge {
        request.extend_from_slice(&challenge);
    }
    request
}

/// The A2S_PLAYER request; without a challenge it asks for one (FF FF FF FF).
pub fn players_request(challenge: Option<[u8; 4]>) -> Vec<u8> {
    [
        &SINGLE_HEADER[..],
        &[A2S_PLAYER],
        &challenge.unwrap_or(NO_CHALLENGE),
    ]
    .concat()
}

/// The A2S_RULES request; without a challenge it asks for one (FF FF FF FF).
pub fn rules_request(challenge: Option<[u8; 4]>) -> Vec<u8> {
    [
        &SINGLE_HEADER[..],
        &[A2S_RULES],
        &challenge.unwrap_or(NO_CHALLENGE),
    ]
    .concat()
}

/// The 4 challenge bytes of an S2C_CHALLENGE (0x41) message, to be echoed as they are.
pub fn parse_challenge(message: &[u8]) -> Result<[u8; 4], A2sError> {
    let mut reader = Reader::new("S2C_CHALLENGE", message);
    reader.expect_type(S2C_CHALLENGE)?;
    let bytes = reader.bytes("challenge", 4)?;
    Ok([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Parse an A2S_INFO reply message (from its 0x49 type byte on), extra data included.
pub fn parse_info(message: &[u8]) -> Result<Info, A2sError> {
    let mut r = Reader::new("A2S_INFO reply", message);
    r.expect_type(S2A_INFO)?;
    let mut info = Info {
        protocol: r.u8("protocol")?,
        name: r.string("name")?,
        map: r.string("map")?,
        folder: r.string("folder")?,
        game: r.string("game")?,
        app_id: r.u16("app id")?,
        players: r.u8("players")?,
        max_players: r.u8("max players")?,
        bots: r.u8("bots")?,
        server_type: r.u8("server type")?.into(),
        environment: r.u8("environment")?.into(),
        visibility: match r.u8("visibility")? {
            0 => Visibility::Public,
            _ => Visibility::Private,
        },
        vac: r.u8("vac")? != 0,
        version: r.string("version")?,
        port: None,
        steam_id: None,
        source_tv: None,
        keywords: None,
        game_id: None,
    };
    if r.is_empty() {
        return Ok(info);
    }
    let edf = r.u8("extra data flag")?;
    if edf & 0x80 != 0 {
        info.port = Some(r.u16("EDF port")?);
    }
    if edf & 0x10 != 0 {
        info.steam_id = Some(r.u64("EDF steam id")?);
    }
    if edf & 0x40 != 0 {
        info.source_tv = Some(SourceTv {
            port: r.u16("EDF SourceTV port")?,
            name: r.string("EDF SourceTV name")?,
        });
    }
    if edf & 0x20 != 0 {
        info.keywords = Some(r.string("EDF keywords")?);
    }
    if edf & 0x01 != 0 {
        info.game_id = Some(r.u64("EDF game id")?);
    }
    Ok(info)
}

/// Parse an A2S_PLAYER reply message (from its 0x44 type byte on).
pub fn parse_players(message: &[u8]) -> Result<Vec<Player>, A2sError> {
    let mut r = Reader::new("A2S_PLAYER reply", message);
    r.expect_type(S2A_PLAYER)?;
    let count = r.u8("player count")?;
    (0..count)
        .map(|_| {
            Ok(Player {
                index: r.u8("player index")?,
                name: r.string("player name")?,
                score: r.i32("player score")?,
                duration: r.f32("player duration")?,
            })
        })
        .collect()
}

/// Parse an A2S_RULES reply message (from its 0x45 type byte on), in the server's order.
pub fn parse_rules(message: &[u8]) -> Result<Vec<Rule>, A2sError> {
    let mut r = Reader::new("A2S_RULES reply", message);
    r.expect_type(S2A_RULES)?;
    let count = r.u16("rule count")?;
    (0..count)
        .map(|_| {
            Ok(Rule {
                name: r.string("rule name")?,
                value: r.string("rule value")?,
            })
        })
        .collect()
}

/// Reads little-endian fields; errors name the message and the field.
struct Reader<'a> {
    what: &'static str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Self {
            what,
            bytes,
            pos: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        rest
    }

    fn bytes(&mut self, field: &str, len: usize) -> Result<&'a [u8], A2sError> {
        let end = self.pos + len;
        let Some(bytes) = self.bytes.get(self.pos..end) else {
            return Err(malformed(format!(
                "{}: ends at byte {} while reading {field} ({len} bytes at byte {})",
                self.what,
                self.bytes.len(),
                self.pos
            )));
        };
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], A2sError> {
        let mut array = [0; N];
        array.copy_from_slice(self.bytes(field, N)?);
        Ok(array)
    }

    fn expect_type(&mut self, expected: u8) -> Result<(), A2sError> {
        let found = self.u8("type")?;
        if found != expected {
            return Err(malformed(format!(
                "{}: type byte is {found:#04x}, expected {expected:#04x}",
                self.what
            )));
        }
        Ok(())
    }

    fn u8(&mut self, field: &str) -> Result<u8, A2sError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, A2sError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &str) -> Result<u32, A2sError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn i32(&mut self, field: &str) -> Result<i32, A2sError> {
        self.array(field).map(i32::from_le_bytes)
    }

    fn u64(&mut self, field: &str) -> Result<u64, A2sError> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn f32(&mut self, field: &str) -> Result<f32, A2sError> {
        self.array(field).map(f32::from_le_bytes)
    }

    fn string(&mut self, field: &str) -> Result<String, A2sError> {
        let rest = &self.bytes[self.pos.min(self.bytes.len())..];
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            return Err(malformed(format!(
                "{}: {field} at byte {} has no terminating NUL",
                self.what, self.pos
            )));
        };
        self.pos += len + 1;
        Ok(String::from_utf8_lossy(&rest[..len]).into_owned())
    }
}

/// The three queries, with what each sends and expects back.
#[derive(Debug, Clone, Copy)]
enum Query {
    Info,
    Players,
    Rules,
}

impl Query {
    fn request(self, challenge: Option<[u8; 4]>) -> Vec<u8> {
        match self {
            Self::Info => info_request(challenge),
            Self::Players => players_request(challenge),
            Self::Rules => rules_request(challenge),
        }
    }

    fn reply_type(self) -> u8 {
        match self {
            Self::Info => S2A_INFO,
            Self::Players => S2A_PLAYER,
            Self::Rules => S2A_RULES,
        }
    }
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
        parse_info(&self.query(Query::Info)?)
    }

    /// A2S_PLAYER: the players on the server.
    pub fn players(&self) -> Result<Vec<Player>, A2sError> {
        parse_players(&self.query(Query::Players)?)
    }

    /// A2S_RULES: the server's public cvars.
    pub fn rules(&self) -> Result<Vec<Rule>, A2sError> {
        parse_rules(&self.query(Query::Rules)?)
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
        Err(malformed(format!(
            "{} sent {MAX_READS} datagrams without completing the reply",
            self.addr
        )))
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

    /// A2S_INFO request, from the Valve developer wiki, "Server queries", A2S_INFO "Request
    /// Format" example (https://developer.valvesoftware.com/wiki/Server_queries#A2S_INFO).
    const WIKI_INFO_REQUEST: &[u8] = &[
        0xFF, 0xFF, 0xFF, 0xFF, 0x54, 0x53, 0x6F, 0x75, 0x72, 0x63, 0x65, 0x20, 0x45, 0x6E, 0x67,
        0x69, 0x6E, 0x65, 0x20, 0x51, 0x75, 0x65, 0x72, 0x79, 0x00,
    ];

    /// S2C_CHALLENGE, from the same wiki page: "Example challenge response".
    const WIKI_CHALLENGE: &[u8] = &[0xFF, 0xFF, 0xFF, 0xFF, 0x41, 0x4B, 0xA1, 0xD5, 0x22];

    /// A2S_INFO reply, from the same wiki page, A2S_INFO "Example response" for
    /// Counter-Strike: Source (no extra data).
    const WIKI_INFO_CSS: &[u8] = &[
        0xFF, 0xFF, 0xFF, 0xFF, 0x49, 0x02, 0x67, 0x61, 0x6D, 0x65, 0x32, 0x78, 0x73, 0x2E, 0x63,
        0x6F, 0x6D, 0x20, 0x43, 0x6F, 0x75, 0x6E, 0x74, 0x65, 0x72, 0x2D, 0x53, 0x74, 0x72, 0x69,
        0x6B, 0x65, 0x20, 0x53, 0x6F, 0x75, 0x72, 0x63, 0x65, 0x20, 0x23, 0x31, 0x00, 0x64, 0x65,
        0x5F, 0x64, 0x75, 0x73, 0x74, 0x00, 0x63, 0x73, 0x74, 0x72, 0x69, 0x6B, 0x65, 0x00, 0x43,
        0x6F, 0x75, 0x6E, 0x74, 0x65, 0x72, 0x2D, 0x53, 0x74, 0x72, 0x69, 0x6B, 0x65, 0x3A, 0x20,
        0x53, 0x6F, 0x75, 0x72, 0x63, 0x65, 0x00, 0xF0, 0x00, 0x05, 0x10, 0x04, 0x64, 0x6C, 0x00,
        0x00, 0x31, 0x2E, 0x30, 0x2E, 0x30, 0x2E, 0x32, 0x32, 0x00,
    ];

    /// A2S_PLAYER reply, from the same wiki page, A2S_PLAYER "Example response".
    const WIKI_PLAYERS: &[u8] = &[
        0xFF, 0xFF, 0xFF, 0xFF, 0x44, 0x02, 0x01, 0x5B, 0x44, 0x5D, 0x2D, 0x2D, 0x2D, 0x2D, 0x3E,
        0x54, 0x2E, 0x4E, 0x2E, 0x57, 0x3C, 0x2D, 0x2D, 0x2D, 0x2D, 0x00, 0x0E, 0x00, 0x00, 0x00,
        0xB4, 0x97, 0x00, 0x44, 0x02, 0x4B, 0x69, 0x6C, 0x6C, 0x65, 0x72, 0x20, 0x21, 0x21, 0x21,
        0x00, 0x05, 0x00, 0x00, 0x00, 0x69, 0x24, 0xD9, 0x43,
    ];

    fn single(datagram: &[u8]) -> &[u8] {
        match decode_datagram(datagram).unwrap() {
            Datagram::Single(message) => message,
            other => panic!("expected a single datagram, got {other:?}"),
        }
    }

    /// Cut `message` (header included) into Source split datagrams of `chunk` bytes.
    fn split(id: u32, message: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let payload = [&SINGLE_HEADER[..], message].concat();
        let pieces: Vec<&[u8]> = payload.chunks(chunk).collect();
        let total = pieces.len() as u8;
        pieces
            .iter()
            .enumerate()
            .map(|(number, piece)| {
                let mut datagram = SPLIT_HEADER.to_vec();
                datagram.extend_from_slice(&id.to_le_bytes());
                datagram.extend_from_slice(&[total, number as u8]);
                datagram.extend_from_slice(&1248u16.to_le_bytes());
                datagram.extend_from_slice(piece);
                datagram
            })
            .collect()
    }

    fn malformed_reason(result: Result<impl std::fmt::Debug, A2sError>) -> String {
        match result {
            Err(A2sError::Malformed { reason }) => reason,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn builds_the_wiki_requests() {
        assert_eq!(info_request(None), WIKI_INFO_REQUEST);
        let challenge = parse_challenge(single(WIKI_CHALLENGE)).unwrap();
        assert_eq!(challenge, [0x4B, 0xA1, 0xD5, 0x22]);
        // Wiki: "Example A2S_INFO request with the received challenge number".
        assert_eq!(
            info_request(Some(challenge)),
            [WIKI_INFO_REQUEST, &[0x4B, 0xA1, 0xD5, 0x22]].concat()
        );
        // Wiki, A2S_PLAYER: "Example challenge request" and the request with the challenge.
        assert_eq!(
            players_request(None),
            [0xFF, 0xFF, 0xFF, 0xFF, 0x55, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            players_request(Some(challenge)),
            [0xFF, 0xFF, 0xFF, 0xFF, 0x55, 0x4B, 0xA1, 0xD5, 0x22]
        );
        // Wiki, A2S_RULES: same shape with 0x56.
        assert_eq!(
            rules_request(Some(challenge)),
            [0xFF, 0xFF, 0xFF, 0xFF, 0x56, 0x4B, 0xA1, 0xD5, 0x22]
        );
    }

    #[test]
    fn parses_the_wiki_info_example() {
        let info = parse_info(single(WIKI_INFO_CSS)).unwrap();
        assert_eq!(
            info,
            Info {
                protocol: 2,
                name: "game2xs.com Counter-Strike Source #1".into(),
                map: "de_dust".into(),
                folder: "cstrike".into(),
                game: "Counter-Strike: Source".into(),
                app_id: 240,
                players: 5,
                max_players: 16,
                bots: 4,
                server_type: ServerType::Dedicated,
                environment: Environment::Linux,
                visibility: Visibility::Public,
                vac: false,
                version: "1.0.0.22".into(),
                port: None,
                steam_id: None,
                source_tv: None,
                keywords: None,
                game_id: None,
            }
        );
    }

    #[test]
    fn parses_every_extra_data_field() {
        let mut message = single(WIKI_INFO_CSS).to_vec();
        message.push(0x80 | 0x10 | 0x40 | 0x20 | 0x01);
        message.extend_from_slice(&27015u16.to_le_bytes());
        message.extend_from_slice(&90_071_996_842_377_216u64.to_le_bytes());
        message.extend_from_slice(&27020u16.to_le_bytes());
        message.extend_from_slice(b"SourceTV\0");
        message.extend_from_slice(b"coop,versus\0");
        message.extend_from_slice(&550u64.to_le_bytes());
        let info = parse_info(&message).unwrap();
        assert_eq!(info.port, Some(27015));
        assert_eq!(info.steam_id, Some(90_071_996_842_377_216));
        assert_eq!(
            info.source_tv,
            Some(SourceTv {
                port: 27020,
                name: "SourceTV".into()
            })
        );
        assert_eq!(info.keywords.as_deref(), Some("coop,versus"));
        assert_eq!(info.game_id, Some(550));

        // Only some bits: the others stay None and the order of the present ones holds.
        let mut message = single(WIKI_INFO_CSS).to_vec();
        message.push(0x80 | 0x20);
        message.extend_from_slice(&27016u16.to_le_bytes());
        message.extend_from_slice(b"empty\0");
        let info = parse_info(&message).unwrap();
        assert_eq!((info.port, info.steam_id), (Some(27016), None));
        assert_eq!(info.keywords.as_deref(), Some("empty"));
    }

    #[test]
    fn reports_truncated_and_mistyped_info() {
        let message = single(WIKI_INFO_CSS);
        let reason = malformed_reason(parse_info(&message[..message.len() - 3]));
        assert!(reason.contains("version"), "{reason}");
        let reason = malformed_reason(parse_info(&message[..60]));
        assert!(
            reason.contains("app id") || reason.contains("game"),
            "{reason}"
        );
        let mut edf_short = message.to_vec();
        edf_short.extend_from_slice(&[0x80, 0x87]);
        let reason = malformed_reason(parse_info(&edf_short));
        assert!(reason.contains("EDF port"), "{reason}");
        let reason = malformed_reason(parse_info(single(WIKI_PLAYERS)));
        assert!(
            reason.contains("0x44") && reason.contains("0x49"),
            "{reason}"
        );
        let reason = malformed_reason(parse_info(&[]));
        assert!(reason.contains("type"), "{reason}");
    }

    #[test]
    fn parses_the_wiki_players_example() {
        let players = parse_players(single(WIKI_PLAYERS)).unwrap();
        assert_eq!(players.len(), 2);
        assert_eq!(players[0].index, 1);
        assert_eq!(players[0].name, "[D]---->T.N.W<----");
        assert_eq!(players[0].score, 14);
        assert!((players[0].duration - 514.370_36).abs() < 1e-3);
        assert_eq!(players[1].index, 2);
        assert_eq!(players[1].name, "Killer !!!");
        assert_eq!(players[1].score, 5);
        assert!((players[1].duration - 434.284_45).abs() < 1e-3);
        let truncated = &single(WIKI_PLAYERS)[..30];
        let reason = malformed_reason(parse_players(truncated));
        assert!(reason.contains("player"), "{reason}");
    }

    #[test]
    fn parses_rules_in_order() {
        let mut message = vec![S2A_RULES];
        message.extend_from_slice(&2u16.to_le_bytes());
        message.extend_from_slice(b"sv_tags\0coop\0standin_cfg_order\0a.cfg,server.cfg\0");
        let rules = parse_rules(&message).unwrap();
        assert_eq!(
            rules,
            vec![
                Rule {
                    name: "sv_tags".into(),
                    value: "coop".into()
                },
                Rule {
                    name: "standin_cfg_order".into(),
                    value: "a.cfg,server.cfg".into()
                },
            ]
        );
        let reason = malformed_reason(parse_rules(&message[..message.len() - 1]));
        assert!(reason.contains("rule value"), "{reason}");
    }

    #[test]
    fn reassembles_split_replies_in_any_order() {
        let message = single(WIKI_INFO_CSS);
        let mut datagrams = split(7, message, 30);
        assert_eq!(datagrams.len(), 4);
        datagrams.reverse();
        let mut reassembly = Reassembly::new();
        let mut whole = None;
        for datagram in &datagrams {
            let Datagram::Fragment(fragment) = decode_datagram(datagram).unwrap() else {
                panic!("expected a fragment");
            };
            assert_eq!((fragment.id, fragment.total, fragment.size), (7, 4, 1248));
            assert!(whole.is_none(), "complete before the last piece");
            whole = reassembly.add(fragment).unwrap();
        }
        assert_eq!(whole.as_deref(), Some(message));
        assert_eq!(parse_info(&whole.unwrap()).unwrap().map, "de_dust");
    }

    fn fragment(datagram: &[u8]) -> Fragment<'_> {
        match decode_datagram(datagram).unwrap() {
            Datagram::Fragment(fragment) => fragment,
            other => panic!("expected a fragment, got {other:?}"),
        }
    }

    #[test]
    fn a_piece_of_another_reply_starts_over() {
        let old = split(1, single(WIKI_INFO_CSS), 40);
        let new = split(2, single(WIKI_PLAYERS), 40);
        let mut reassembly = Reassembly::new();
        assert_eq!(reassembly.add(fragment(&old[0])).unwrap(), None);
        assert_eq!(reassembly.add(fragment(&new[1])).unwrap(), None);
        assert_eq!(reassembly.add(fragment(&old[1])).unwrap(), None);
        assert_eq!(reassembly.add(fragment(&new[1])).unwrap(), None);
        let whole = reassembly.add(fragment(&new[0])).unwrap().unwrap();
        assert_eq!(whole, single(WIKI_PLAYERS));
    }

    #[test]
    fn rejects_compressed_and_bad_headers() {
        let mut compressed = split(5, single(WIKI_INFO_CSS), 60).remove(0);
        compressed[7] |= 0x80; // most significant bit of the little-endian id
        match decode_datagram(&compressed) {
            Err(A2sError::Compressed { id }) => assert_eq!(id, 0x8000_0005),
            other => panic!("expected Compressed, got {other:?}"),
        }
        let message = A2sError::Compressed { id: 0x8000_0005 }.to_string();
        assert!(message.contains("bzip2") && message.contains("not supported"));

        let mut out_of_range = split(5, single(WIKI_INFO_CSS), 60).remove(0);
        out_of_range[9] = 2; // number 2 of total 2
        let reason = malformed_reason(decode_datagram(&out_of_range));
        assert!(reason.contains("out of range"), "{reason}");

        let reason = malformed_reason(decode_datagram(&[0xFD, 0xFF, 0xFF, 0xFF, 0x49]));
        assert!(reason.contains("unknown datagram header"), "{reason}");
        let reason = malformed_reason(decode_datagram(&[0xFF, 0xFF]));
        assert!(reason.contains("shorter"), "{reason}");
        let reason = malformed_reason(decode_datagram(&[0xFE, 0xFF, 0xFF, 0xFF, 1, 0, 0]));
        assert!(reason.contains("split reply header"), "{reason}");
    }

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
