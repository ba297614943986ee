//! The server side of Source RCON, as srcds answers it: its own packet codec (independent of the
//! project's client on purpose, so one checks the other), several clients at once on the
//! nonblocking listener, auth, brute-force bans, and multi-packet replies.
//!
//! Every rule here is from the Source engine as published (`engine/sv_rcon.cpp`,
//! `sv_remoteaccess.cpp`, `sv_redirect.cpp`, `socketcreator.cpp` of nillerusr/source-engine) and
//! Valve Developer Community's *Source RCON Protocol*; README.md beside this crate lists what
//! the stand-in does and where the sources leave a choice:
//! - A packet is `size:i32le id:i32le type:i32le string1\0 string2\0`; `size` counts from `id`
//!   to the end. Sizes outside 10..=4106 close the connection.
//! - Each request is answered with its console output, like srcds's console redirect: the text
//!   printed while it ran, as SERVERDATA_RESPONSE_VALUE packets of at most 4095 bytes of text
//!   (the redirect buffer is 4096 bytes with its NUL; a print that does not fit flushes what is
//!   there first), with the request's id — one empty packet when nothing was printed. Replies the
//!   request itself makes (AUTH_RESPONSE, a value) follow it.
//! - Auth: the empty RESPONSE_VALUE, then AUTH_RESPONSE with the request's id, or -1 for a wrong
//!   password; both in one write. An empty `rcon_password` refuses every password.
//! - Before auth, a command is not run (logged `Bad Password`), only the empty RESPONSE_VALUE
//!   comes back; the connection stays open.
//! - Failed auths are counted per address: more than `sv_rcon_maxfailures` in all, or more than
//!   `sv_rcon_minfailures` within `sv_rcon_minfailuretime` seconds, bans the address for
//!   `sv_rcon_banpenalty` minutes (0: until restart); the failing connection is closed without a
//!   reply and new connections from the address are closed at accept.
//! - Writing `rcon_password` closes every RCON connection (the one that wrote it too).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::bans::Guard;

/// Request types (client to server).
pub const SERVERDATA_AUTH: i32 = 3;
pub const SERVERDATA_EXECCOMMAND: i32 = 2;
/// Type 0 as a request: "give me this value" (the empty-packet trick sends it with an empty name).
pub const SERVERDATA_REQUESTVALUE: i32 = 0;
pub const SERVERDATA_SETVALUE: i32 = 1;
/// Reply types (server to client).
pub const SERVERDATA_AUTH_RESPONSE: i32 = 2;
pub const SERVERDATA_RESPONSE_VALUE: i32 = 0;

/// Smallest `size`: id, type and two empty strings.
pub const MIN_SIZE: i32 = 10;
/// Largest `size` accepted: a 4096-byte body plus the 10 bytes around it.
pub const MAX_SIZE: i32 = 4096 + 10;
/// Most text in one RESPONSE_VALUE: srcds's 4096-byte redirect buffer less its NUL.
pub const MAX_CHUNK: usize = 4095;

/// Bytes read from one connection per wake-up, so one client cannot starve the others.
const READ_PER_WAKE: usize = 64 * 1024;
/// Requests handled per connection per wake-up.
const REQUESTS_PER_WAKE: usize = 64;
/// Connections accepted per wake-up.
const ACCEPTS_PER_WAKE: usize = 16;
/// Unsent reply bytes after which a connection is closed (srcds: too many outstanding sends).
const MAX_PENDING_OUTPUT: usize = 4 * 1024 * 1024;

/// One RCON packet on the wire.
pub fn encode(id: i32, kind: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(body.len() + 10);
    payload.extend_from_slice(&id.to_le_bytes());
    payload.extend_from_slice(&kind.to_le_bytes());
    payload.extend_from_slice(body);
    payload.extend_from_slice(&[0, 0]);
    framed(payload)
}

/// `payload` (id, type and what follows) with its size in front.
fn framed(payload: Vec<u8>) -> Vec<u8> {
    let size = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    [&size.to_le_bytes()[..], &payload].concat()
}

/// The reply to SERVERDATA_REQUESTVALUE, as srcds builds it: id, type 0, the name (NUL
/// terminated), the value's length (i32le) and the value with its NUL; an unknown name has the
/// value "" (length 1). For the empty name of the empty-packet trick that is the body
/// `00 01 00 00 00 00`.
pub fn encode_value(id: i32, name: &[u8], value: Option<&str>) -> Vec<u8> {
    let value = [value.unwrap_or("").as_bytes(), &[0]].concat();
    let mut payload = Vec::new();
    payload.extend_from_slice(&id.to_le_bytes());
    payload.extend_from_slice(&SERVERDATA_RESPONSE_VALUE.to_le_bytes());
    payload.extend_from_slice(name);
    payload.push(0);
    payload.extend_from_slice(&i32::try_from(value.len()).unwrap_or(0).to_le_bytes());
    payload.extend_from_slice(&value);
    framed(payload)
}

/// One request read from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: i32,
    pub kind: i32,
    /// The first string; `None` when it has no NUL inside the packet (srcds then ignores the
    /// request).
    pub string1: Option<Vec<u8>>,
    pub string2: Option<Vec<u8>>,
}

/// What the front of a connection's input holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole packet, and how many bytes it took.
    Packet(Request, usize),
    /// Not a whole packet yet.
    Incomplete,
    /// A size outside `MIN_SIZE..=max`: the connection is closed.
    BadSize(i32),
}

/// Cut the next packet off `input`; `max` is the largest size accepted.
pub fn next_frame(input: &[u8], max: i32) -> Frame {
    let Some(size) = input.first_chunk::<4>().map(|b| i32::from_le_bytes(*b)) else {
        return Frame::Incomplete;
    };
    if !(MIN_SIZE..=max).contains(&size) {
        return Frame::BadSize(size);
    }
    let end = 4 + size as usize;
    let Some(payload) = input.get(4..end) else {
        return Frame::Incomplete;
    };
    let int = |at: usize| i32::from_le_bytes(payload[at..at + 4].try_into().expect("4 bytes"));
    let rest = &payload[8..];
    let string = |from: &[u8]| {
        from.iter()
            .position(|&b| b == 0)
            .map(|nul| (from[..nul].to_vec(), nul + 1))
    };
    let string1 = string(rest);
    let string2 = string1
        .as_ref()
        .and_then(|(_, next)| string(&rest[*next..]).map(|(s, _)| s));
    Frame::Packet(
        Request {
            id: int(0),
            kind: int(4),
            string1: string1.map(|(s, _)| s),
            string2,
        },
        end,
    )
}

/// srcds's console redirect: pack the prints of one request into reply texts of at most
/// [`MAX_CHUNK`] bytes. A print that does not fit flushes the text so far first (so texts end
/// where a print ended); a print longer than a whole text is cut, as `Q_strncat` cuts it. There
/// is always at least one text (empty when nothing was printed).
pub fn chunks(prints: &[String]) -> Vec<Vec<u8>> {
    let mut texts = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for print in prints {
        let bytes = print.as_bytes();
        if bytes.len() + current.len() > MAX_CHUNK {
            texts.push(std::mem::take(&mut current));
        }
        let room = MAX_CHUNK - current.len();
        current.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
    texts.push(current);
    texts
}

/// The console settings RCON obeys, read from the cvars at each request.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `rcon_password`; empty refuses every auth.
    pub password: String,
    /// `sv_rcon_maxfailures` (1..=20, default 10).
    pub max_failures: u32,
    /// `sv_rcon_minfailures` (1..=20, default 5).
    pub min_failures: u32,
    /// `sv_rcon_minfailuretime` (seconds, at least 1, default 30).
    pub min_failure_time: Duration,
    /// `sv_rcon_banpenalty` (minutes, default 0 = until the server restarts).
    pub ban_minutes: u32,
    /// `sv_rcon_whitelist_address`: an IP that is never banned.
    pub whitelist: String,
    /// `sv_rcon_maxpacketsize`: 0 (the stand-in's default) or a smaller limit than [`MAX_SIZE`].
    pub max_packet_size: i32,
    /// `sv_rcon_maxpacketbans`: a packet over `sv_rcon_maxpacketsize` counts as a failed auth.
    pub max_packet_bans: bool,
}

/// What the game does for RCON: its cvars and console.
pub trait Host {
    fn settings(&self) -> Settings;
    /// Run a console line; returns what it printed (one string per print) and whether it wrote
    /// `rcon_password`.
    fn execute(&mut self, line: &str) -> Executed;
    /// The value of a cvar (or one of srcds's special names), for SERVERDATA_REQUESTVALUE.
    fn value(&self, name: &str) -> Option<String>;
    fn log(&mut self, line: &str);
}

/// What one console line did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Executed {
    pub prints: Vec<String>,
    pub password_written: bool,
}

/// One accepted RCON connection.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    input: Vec<u8>,
    output: Vec<u8>,
    authed: bool,
    closed: bool,
}

impl Connection {
    /// Write what is pending, as far as the socket takes it; a hard error closes.
    fn flush(&mut self) {
        while !self.output.is_empty() && !self.closed {
            match self.stream.write(&self.output) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
        if self.output.len() > MAX_PENDING_OUTPUT {
            self.closed = true;
        }
    }

    /// Read what has arrived, up to [`READ_PER_WAKE`]; end of stream or an error closes.
    fn fill(&mut self) {
        let mut buf = [0u8; 8192];
        let mut taken = 0;
        while taken < READ_PER_WAKE && !self.closed {
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    taken += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }
}

/// What handling a request asks of the whole server.
enum After {
    Nothing,
    /// `rcon_password` was written: close every connection.
    CloseAll,
}

/// The RCON listener and its connections.
#[derive(Debug)]
pub struct RconServer {
    listener: TcpListener,
    connections: Vec<Connection>,
    guard: Guard,
}

impl RconServer {
    pub fn new(listener: TcpListener) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            connections: Vec::new(),
            guard: Guard::default(),
        })
    }

    /// The descriptors to poll: the listener, then each connection with whether it waits to
    /// write.
    pub fn poll_fds(&self) -> Vec<(RawFd, bool)> {
        std::iter::once((self.listener.as_raw_fd(), false))
            .chain(
                self.connections
                    .iter()
                    .map(|c| (c.stream.as_raw_fd(), !c.output.is_empty())),
            )
            .collect()
    }

    /// How many clients are connected.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Whether a connection holds a whole request not handled yet (more than one wake-up's
    /// worth arrived): the caller must serve again without waiting for the socket.
    pub fn has_pending(&self) -> bool {
        self.connections
            .iter()
            .any(|c| next_frame(&c.input, MAX_SIZE) != Frame::Incomplete)
    }

    /// Accept, read, answer and write whatever is ready, without blocking.
    pub fn service(&mut self, host: &mut dyn Host, now: Instant) {
        self.accept(host, now);
        let mut close_all = false;
        for conn in &mut self.connections {
            conn.flush();
            if conn.output.len() < READ_PER_WAKE {
                conn.fill();
            }
            for _ in 0..REQUESTS_PER_WAKE {
                if conn.closed || close_all {
                    break;
                }
                let settings = host.settings();
                let max = match settings.max_packet_size {
                    limit if limit > 0 => limit.min(MAX_SIZE),
                    _ => MAX_SIZE,
                };
                match next_frame(&conn.input, max) {
                    Frame::Incomplete => break,
                    Frame::BadSize(size) => {
                        host.log(&format!(
                            "rcon: closing {} after a packet of size {size}",
                            conn.peer
                        ));
                        conn.closed = true;
                        let oversized = settings.max_packet_size > 0
                            && size > settings.max_packet_size
                            && size <= MAX_SIZE;
                        if oversized && settings.max_packet_bans {
                            let (lines, _) = self.guard.failed(conn.peer.ip(), &settings, now);
                            lines.iter().for_each(|l| host.log(l));
                        }
                    }
                    Frame::Packet(request, used) => {
                        conn.input.drain(..used);
                        if let After::CloseAll =
                            handle(conn, &request, &mut self.guard, host, &settings, now)
                        {
                            close_all = true;
                        }
                    }
                }
            }
            conn.flush();
        }
        if close_all {
            host.log("rcon_password changed: closing every RCON connection");
            self.connections.clear();
        }
        self.connections.retain(|c| !c.closed);
    }

    fn accept(&mut self, host: &mut dyn Host, now: Instant) {
        for _ in 0..ACCEPTS_PER_WAKE {
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    host.log(&format!("Socket ProcessAccept Error: {e}"));
                    return;
                }
            };
            if self.guard.is_banned(peer.ip(), now) {
                host.log(&format!("rcon: refused {peer} (banned)"));
                continue;
            }
            // As srcds configures accepted sockets: no Nagle, nonblocking.
            if stream.set_nodelay(true).is_err() || stream.set_nonblocking(true).is_err() {
                continue;
            }
            host.log(&format!("rcon: connection from {peer}"));
            self.connections.push(Connection {
                stream,
                peer,
                input: Vec::new(),
                output: Vec::new(),
                authed: false,
                closed: false,
            });
        }
    }
}

/// Answer one request on `conn`, as `CServerRemoteAccess::WriteDataRequest` and the console
/// redirect around it do.
fn handle(
    conn: &mut Connection,
    request: &Request,
    guard: &mut Guard,
    host: &mut dyn Host,
    settings: &Settings,
    now: Instant,
) -> After {
    let text = |bytes: &Option<Vec<u8>>| {
        bytes
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let id = request.id;
    let mut prints = Vec::new();
    let mut replies: Vec<Vec<u8>> = Vec::new();
    let peer = conn.peer;
    match (request.kind, text(&request.string1)) {
        (_, None) => {}
        (SERVERDATA_AUTH, Some(password)) => {
            if !settings.password.is_empty() && password == settings.password {
                conn.authed = true;
                host.log(&format!("rcon from \"{peer}\": authenticated"));
                replies.push(encode(id, SERVERDATA_AUTH_RESPONSE, b""));
            } else {
                conn.authed = false;
                host.log(&format!("rcon from \"{peer}\": wrong password"));
                let (lines, banned) = guard.failed(peer.ip(), settings, now);
                lines.iter().for_each(|l| host.log(l));
                if banned {
                    conn.closed = true;
                    return After::Nothing;
                }
                replies.push(encode(-1, SERVERDATA_AUTH_RESPONSE, b""));
            }
        }
        (SERVERDATA_EXECCOMMAND, Some(command)) if conn.authed => {
            // srcds logs every command (when its logging is on); the stand-in's log also goes to
            // stdout and so to the journal, where a password must never appear.
            let shown = if command.to_ascii_lowercase().contains("rcon_password") {
                "(writes rcon_password; not logged)"
            } else {
                &command
            };
            host.log(&format!("rcon from \"{peer}\": command \"{shown}\""));
            let executed = host.execute(&command);
            if executed.password_written {
                return After::CloseAll;
            }
            prints = executed.prints;
        }
        (SERVERDATA_EXECCOMMAND, Some(_)) => {
            host.log(&format!("rcon from \"{peer}\": Bad Password"));
        }
        (SERVERDATA_REQUESTVALUE, Some(name)) if conn.authed => {
            let value = host.value(&name);
            replies.push(encode_value(id, name.as_bytes(), value.as_deref()));
        }
        (SERVERDATA_SETVALUE, Some(name)) if conn.authed => {
            let value = text(&request.string2).unwrap_or_default();
            let line = if name.eq_ignore_ascii_case("map") {
                format!("changelevel {value}")
            } else {
                format!("{name} \"{value}\"")
            };
            let executed = host.execute(&line);
            if executed.password_written {
                return After::CloseAll;
            }
        }
        _ => {}
    }
    for chunk in chunks(&prints) {
        conn.output
            .extend(encode(id, SERVERDATA_RESPONSE_VALUE, &chunk));
    }
    for reply in replies {
        conn.output.extend(reply);
    }
    After::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_frames_packets() {
        let packet = encode(7, SERVERDATA_EXECCOMMAND, b"status");
        assert_eq!(&packet[..4], &16i32.to_le_bytes());
        let doubled = [&packet[..], &packet[..3]].concat();
        let Frame::Packet(request, used) = next_frame(&doubled, MAX_SIZE) else {
            panic!("no packet");
        };
        assert_eq!(used, packet.len());
        assert_eq!(request.id, 7);
        assert_eq!(request.kind, SERVERDATA_EXECCOMMAND);
        assert_eq!(request.string1.as_deref(), Some(&b"status"[..]));
        assert_eq!(request.string2.as_deref(), Some(&b""[..]));
        assert_eq!(next_frame(&doubled[used..], MAX_SIZE), Frame::Incomplete);
        assert_eq!(next_frame(&9i32.to_le_bytes(), MAX_SIZE), Frame::BadSize(9));
        assert_eq!(
            next_frame(&4107i32.to_le_bytes(), MAX_SIZE),
            Frame::BadSize(4107)
        );
        assert_eq!(
            next_frame(&(-1i32).to_le_bytes(), MAX_SIZE),
            Frame::BadSize(-1)
        );
        // No NUL in the body: srcds ignores the request but still answers its id.
        let bad = framed([&1i32.to_le_bytes()[..], &2i32.to_le_bytes(), b"ab"].concat());
        let Frame::Packet(request, _) = next_frame(&bad, MAX_SIZE) else {
            panic!("no packet");
        };
        assert_eq!(request.string1, None);
    }

    #[test]
    fn encodes_the_value_reply_of_the_empty_packet_trick() {
        let reply = encode_value(5, b"", None);
        assert_eq!(
            reply,
            [
                &14i32.to_le_bytes()[..],
                &5i32.to_le_bytes(),
                &0i32.to_le_bytes(),
                &[0, 1, 0, 0, 0, 0]
            ]
            .concat()
        );
    }

    #[test]
    fn chunks_like_the_redirect_buffer() {
        assert_eq!(chunks(&[]), vec![Vec::<u8>::new()]);
        let line = format!("{}\n", "x".repeat(99));
        let prints = vec![line.clone(); 100];
        let texts = chunks(&prints);
        assert_eq!(texts.len(), 3);
        assert_eq!(texts[0].len(), 4000, "40 whole lines fit in 4095 bytes");
        assert_eq!(texts.concat(), prints.concat().into_bytes());
        let long = chunks(&["y".repeat(5000)]);
        assert_eq!(
            long.iter().map(Vec::len).collect::<Vec<_>>(),
            [0, MAX_CHUNK]
        );
    }
}
