//! The sockets a real srcds opens, opened the way the Source engine opens them.
//!
//! From the engine's `net_ws.cpp` (`NET_OpenSocket`, `NET_OpenSockets`, `NET_Config`) and
//! `sv_rcon.cpp`/`socketcreator.cpp` (sources in docs/ports.md):
//! - UDP **server** socket on `-port` (default 27015); **client** socket on `+clientport`
//!   (default 27005); **SourceTV** socket on `+tv_port` (default 27020) unless `-nohltv`.
//! - Each bind that fails with `EADDRINUSE` is retried on the next port, up to 10 ports; with
//!   `-strictportbind` a move to another port is fatal instead. Any other error (`EPERM` from
//!   `SocketBindDeny=`, `EACCES`) ends the attempt at once.
//! - A server or SourceTV socket that cannot be opened is fatal ("Couldn't allocate any server
//!   IP port"). The client socket falls back to port 0 (a kernel-chosen port) and is fatal
//!   only when that fails too.
//! - Then, on a dedicated server, the RCON listener: TCP on the server socket's port. A failed
//!   bind there is a warning and the server runs without RCON.

use std::io;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

use crate::args::Args;

/// How many ports upwards a bind is tried when the port is in use (`PORT_TRY_MAX`).
pub const PORT_TRY_MAX: u16 = 10;
/// The engine's `clientport` default.
pub const DEFAULT_CLIENT_PORT: u16 = 27005;
/// The engine's `tv_port` default.
pub const DEFAULT_TV_PORT: u16 = 27020;

/// Why the server cannot start: the engine's own fatal messages.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    #[error("Couldn't allocate any {socket} IP port")]
    NoPort { socket: &'static str },
    #[error(
        "ERROR: Port {port} was unavailable - quitting due to \"-strictportbind\" command-line flag!"
    )]
    StrictPortBind { port: u16 },
}

/// The open sockets; dropping them closes them.
#[derive(Debug)]
pub struct Sockets {
    /// Players and A2S queries.
    pub server: UdpSocket,
    pub client: UdpSocket,
    /// `None` with `-nohltv`.
    pub sourcetv: Option<UdpSocket>,
    /// `None` when the bind failed (the engine warns and goes on).
    pub rcon: Option<TcpListener>,
}

/// Opens every socket `args` asks for, logging each step with `log`.
pub fn open(args: &Args, log: &mut dyn FnMut(&str)) -> Result<Sockets, NetError> {
    let strict = args.strict_port_bind;
    let server = open_udp(args.ip, args.port, "server", false, strict, log)?;
    let client = open_udp(args.ip, args.client_port, "client", true, strict, log)?;
    let sourcetv = if args.sourcetv {
        Some(open_udp(args.ip, args.tv_port, "hltv", false, strict, log)?)
    } else {
        log("SourceTV disabled (-nohltv): no SourceTV socket");
        None
    };
    let port = |socket: &UdpSocket| socket.local_addr().map_or(0, |a| a.port());
    log(&format!(
        "Network: IP {}, mode MP, dedicated Yes, ports {} SV / {} CL",
        args.ip,
        port(&server),
        port(&client)
    ));
    let rcon_port = port(&server);
    let rcon = match TcpListener::bind((args.ip, rcon_port)) {
        Ok(listener) => {
            log(&format!("RCON listening on tcp {}:{rcon_port}", args.ip));
            Some(listener)
        }
        Err(err) => {
            log(&format!("Socket bind failed ({})", strerror(&err)));
            None
        }
    };
    Ok(Sockets {
        server,
        client,
        sourcetv,
        rcon,
    })
}

/// `OpenSocketInternal`: the socket `name` on `port`, or (`try_any`) on port 0.
fn open_udp(
    ip: Ipv4Addr,
    port: u16,
    name: &'static str,
    try_any: bool,
    strict: bool,
    log: &mut dyn FnMut(&str),
) -> Result<UdpSocket, NetError> {
    let mut socket = bind_udp(ip, port, strict, log)?;
    if socket.is_none() && try_any {
        socket = bind_udp(ip, 0, strict, log)?;
    }
    let socket = socket.ok_or(NetError::NoPort { socket: name })?;
    if let Ok(addr) = socket.local_addr() {
        log(&format!("{name} socket on udp {addr}"));
    }
    Ok(socket)
}

/// `NET_OpenSocket` for UDP: `None` when the engine gives up on this port.
fn bind_udp(
    ip: Ipv4Addr,
    port: u16,
    strict: bool,
    log: &mut dyn FnMut(&str),
) -> Result<Option<UdpSocket>, NetError> {
    let tries = if port == 0 { 1 } else { PORT_TRY_MAX };
    for offset in 0..tries {
        let Some(candidate) = port.checked_add(offset) else {
            break;
        };
        match UdpSocket::bind((ip, candidate)) {
            Ok(socket) => {
                if offset > 0 {
                    if strict {
                        return Err(NetError::StrictPortBind { port });
                    }
                    log(&format!(
                        "WARNING: Port {port} was unavailable - bound to port {candidate} instead"
                    ));
                }
                return Ok(Some(socket));
            }
            Err(err) if port != 0 && err.kind() == io::ErrorKind::AddrInUse => continue,
            Err(err) => {
                log(&format!(
                    "WARNING: NNET_OpenSocket: bind: {}",
                    strerror(&err)
                ));
                return Ok(None);
            }
        }
    }
    if strict {
        return Err(NetError::StrictPortBind { port });
    }
    log("WARNING: UDP_OpenSocket: unable to bind socket");
    Ok(None)
}

/// The C library's text for an I/O error, as the engine prints it (`Operation not permitted`).
fn strerror(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Args {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        crate::args::parse(&words).unwrap()
    }

    fn free_udp() -> u16 {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A port free for UDP and for TCP (the RCON listener binds the game port too): other
    /// tests running at the same time hold TCP ports of their own.
    fn free_udp_and_tcp() -> u16 {
        loop {
            let port = free_udp();
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }

    #[test]
    fn opens_every_socket_the_arguments_ask_for() {
        let (game, client, tv) = (free_udp_and_tcp(), free_udp(), free_udp());
        let mut lines = Vec::new();
        let sockets = open(
            &args(&format!(
                "-game g -norestart -port {game} +clientport {client} +tv_port {tv} +ip 127.0.0.1 +map m"
            )),
            &mut |line: &str| lines.push(line.to_owned()),
        )
        .unwrap();
        let port = |s: &UdpSocket| s.local_addr().unwrap().port();
        assert_eq!(port(&sockets.server), game);
        assert_eq!(port(&sockets.client), client);
        assert_eq!(port(sockets.sourcetv.as_ref().unwrap()), tv);
        assert_eq!(
            sockets.rcon.unwrap().local_addr().unwrap().port(),
            game,
            "{lines:?}"
        );
    }

    #[test]
    fn a_taken_port_moves_up_unless_strict() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let line = format!("-game g -norestart -port {port} -nohltv +ip 127.0.0.1 +map m");
        let mut lines = Vec::new();
        let sockets = open(&args(&line), &mut |l: &str| lines.push(l.to_owned())).unwrap();
        assert_ne!(sockets.server.local_addr().unwrap().port(), port);
        assert!(sockets.sourcetv.is_none());
        assert!(
            lines
                .iter()
                .any(|l| l.contains("was unavailable - bound to")),
            "{lines:?}"
        );
        let err = open(&args(&format!("{line} -strictportbind")), &mut |_: &str| {}).unwrap_err();
        assert_eq!(err, NetError::StrictPortBind { port });
    }
}
