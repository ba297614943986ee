//! The RCON client: one TCP connection, authenticated once, then one command at a time.
//!
//! A command's output may come in several `SERVERDATA_RESPONSE_VALUE` packets, and nothing in
//! them says which is the last. The client therefore sends, right behind each command, an empty
//! `SERVERDATA_RESPONSE_VALUE` packet with an id of its own: srcds handles packets in order and
//! mirrors that one back, so the output is complete when the mirror arrives (the wiki's
//! "multiple-packet responses"). srcds follows the mirror with one more packet of the same id;
//! packets with ids of earlier commands are skipped, so that one does no harm.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::wire::{
    AUTH_FAILED_ID, Decoder, MAX_COMMAND, Packet, SERVERDATA_AUTH, SERVERDATA_AUTH_RESPONSE,
    SERVERDATA_EXECCOMMAND, SERVERDATA_RESPONSE_VALUE, WireError,
};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8192;

/// Why an RCON exchange failed. Each message names the address and says what to check.
#[derive(Debug, thiserror::Error)]
pub enum RconError {
    #[error("cannot connect to RCON on {addr}: {source} (is the instance running?)")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{addr} refused the RCON password")]
    WrongPassword { addr: SocketAddr },
    #[error("no RCON {waiting_for} from {addr} within {timeout:?}")]
    Timeout {
        addr: SocketAddr,
        waiting_for: &'static str,
        timeout: Duration,
    },
    #[error(
        "{addr} closed the RCON connection while we waited for its {waiting_for} (srcds also \
         closes it for an address it banned after failed passwords: sv_rcon_banpenalty)"
    )]
    Closed {
        addr: SocketAddr,
        waiting_for: &'static str,
    },
    #[error("RCON connection to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{addr}: {source}")]
    Protocol {
        addr: SocketAddr,
        #[source]
        source: WireError,
    },
    #[error("the RCON command is {len} bytes; at most {MAX_COMMAND} fit in a packet")]
    CommandTooLong { len: usize },
    #[error("an RCON command cannot contain a NUL byte")]
    NulInCommand,
}

/// An authenticated RCON connection to one server.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    addr: SocketAddr,
    timeout: Duration,
    decoder: Decoder,
    last_id: i32,
}

impl Client {
    /// Connects to `addr` and authenticates with `password`. `timeout` bounds the connect and
    /// every later wait for the server.
    pub fn connect(addr: SocketAddr, password: &str, timeout: Duration) -> Result<Self, RconError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|source| RconError::Connect { addr, source })?;
        let io = |source| RconError::Io { addr, source };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        // Each command is one small write; do not let Nagle hold it back.
        stream.set_nodelay(true).map_err(io)?;
        let mut client = Self {
            stream,
            addr,
            timeout,
            decoder: Decoder::new(),
            last_id: 0,
        };
        client.authenticate(password)?;
        Ok(client)
    }

    /// The server this client talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs `command` on the server's console and returns its whole output.
    pub fn exec(&mut self, command: &str) -> Result<String, RconError> {
        check_command(command)?;
        let id = self.next_id();
        let end = self.next_id();
        let mut request = Packet::new(id, SERVERDATA_EXECCOMMAND, command).encode();
        request.extend(Packet::new(end, SERVERDATA_RESPONSE_VALUE, "").encode());
        self.send(&request)?;
        let mut output = Vec::new();
        loop {
            let packet = self.read_packet("reply")?;
            if packet.id == end {
                // Decoded as a whole, so a character split over two packets stays whole.
                return Ok(String::from_utf8_lossy(&output).into_owned());
            }
            if packet.id == id && packet.kind == SERVERDATA_RESPONSE_VALUE {
                output.extend_from_slice(&packet.body);
            }
        }
    }

    fn authenticate(&mut self, password: &str) -> Result<(), RconError> {
        check_command(password)?;
        let id = self.next_id();
        self.send(&Packet::new(id, SERVERDATA_AUTH, password).encode())?;
        // srcds first sends an empty SERVERDATA_RESPONSE_VALUE, then the verdict, usually in
        // the same TCP segment: the decoder keeps whatever the read brought beyond the first.
        loop {
            let packet = self.read_packet("answer to the password")?;
            if packet.kind != SERVERDATA_AUTH_RESPONSE {
                continue;
            }
            match packet.id {
                AUTH_FAILED_ID => return Err(RconError::WrongPassword { addr: self.addr }),
                got if got == id => return Ok(()),
                _ => continue,
            }
        }
    }

    fn next_id(&mut self) -> i32 {
        // Positive ids only: -1 is the server's "wrong password".
        self.last_id = self.last_id.checked_add(1).unwrap_or(1);
        self.last_id
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), RconError> {
        self.stream
            .write_all(bytes)
            .map_err(|source| match source.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => RconError::Closed {
                    addr: self.addr,
                    waiting_for: "request",
                },
                _ => RconError::Io {
                    addr: self.addr,
                    source,
                },
            })
    }

    fn read_packet(&mut self, waiting_for: &'static str) -> Result<Packet, RconError> {
        let addr = self.addr;
        let mut buf = [0u8; READ_CHUNK];
        loop {
            let next = self.decoder.next_packet();
            if let Some(packet) = next.map_err(|source| RconError::Protocol { addr, source })? {
                return Ok(packet);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(RconError::Closed { addr, waiting_for }),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(RconError::Timeout {
                        addr,
                        waiting_for,
                        timeout: self.timeout,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(RconError::Closed { addr, waiting_for });
                }
                Err(source) => return Err(RconError::Io { addr, source }),
            }
        }
    }
}

fn check_command(text: &str) -> Result<(), RconError> {
    if text.len() > MAX_COMMAND {
        return Err(RconError::CommandTooLong { len: text.len() });
    }
    if text.contains('\0') {
        return Err(RconError::NulInCommand);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
