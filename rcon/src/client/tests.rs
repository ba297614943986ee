//! The client against a scripted peer on the loopback address that answers the way the wiki
//! describes srcds: the auth reply as two packets in one write, long output split over several
//! packets, the empty packet mirrored and followed by its trailer. The stand-in game server
//! (tests/standin) is the full peer the booted suites use.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::thread;

use super::*;

/// What the peer does after reading the auth packet.
#[derive(Clone, Copy)]
enum Peer {
    /// Accepts `secret`; answers commands as srcds does, output split into `chunk`-byte packets.
    Srcds { chunk: usize },
    /// Reads the auth packet and never answers.
    Silent,
    /// Closes the connection after the auth packet.
    Hangup,
}

const SECRET: &str = "s3cret";

fn serve(peer: Peer) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut decoder = Decoder::new();
        let mut next = || read_one(&mut stream, &mut decoder);
        let Some((auth, mut stream)) = next() else {
            return;
        };
        let chunk = match peer {
            Peer::Silent => return thread::park(),
            Peer::Hangup => return,
            Peer::Srcds { chunk } => chunk,
        };
        let id = if auth.body == SECRET.as_bytes() {
            auth.id
        } else {
            AUTH_FAILED_ID
        };
        let mut burst = Packet::new(auth.id, SERVERDATA_RESPONSE_VALUE, "").encode();
        burst.extend(Packet::new(id, SERVERDATA_AUTH_RESPONSE, "").encode());
        stream.write_all(&burst).unwrap();
        let mut decoder = Decoder::new();
        while let Some((packet, mut stream)) = read_one(&mut stream, &mut decoder) {
            if packet.kind == SERVERDATA_RESPONSE_VALUE {
                let mut out = Packet::new(packet.id, SERVERDATA_RESPONSE_VALUE, "").encode();
                out.extend(Packet::new(packet.id, 0, [0, 1, 0, 0]).encode());
                stream.write_all(&out).unwrap();
                continue;
            }
            let output = answer(&packet.body);
            for part in output.chunks(chunk) {
                let reply = Packet::new(packet.id, SERVERDATA_RESPONSE_VALUE, part);
                stream.write_all(&reply.encode()).unwrap();
            }
        }
    });
    addr
}

fn answer(command: &[u8]) -> Vec<u8> {
    match command {
        b"cvarlist" => (0..400)
            .flat_map(|i| format!("cvar_{i:03} : 1 : , \"sv\" : a cvar — ünïcode\n").into_bytes())
            .collect(),
        b"quiet" => Vec::new(),
        other => [b"echo: ".as_slice(), other].concat(),
    }
}

/// Reads one packet; `None` when the connection is closed. Returns a clone of the stream so the
/// caller can answer on it.
fn read_one(stream: &mut TcpStream, decoder: &mut Decoder) -> Option<(Packet, TcpStream)> {
    let mut buf = [0u8; 512];
    loop {
        if let Some(packet) = decoder.next_packet().unwrap() {
            return Some((packet, stream.try_clone().unwrap()));
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => decoder.push(&buf[..n]),
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn runs_commands_and_reassembles_long_output() {
    let addr = serve(Peer::Srcds { chunk: 4096 });
    let mut client = Client::connect(addr, SECRET, TIMEOUT).unwrap();
    assert_eq!(client.exec("status").unwrap(), "echo: status");
    let cvars = client.exec("cvarlist").unwrap();
    assert_eq!(
        cvars.lines().count(),
        400,
        "every packet of the reply is kept"
    );
    assert!(cvars.len() > 3 * 4096, "the reply needs several packets");
    assert!(cvars.ends_with("cvar_399 : 1 : , \"sv\" : a cvar — ünïcode\n"));
    // The trailer of the previous command's mirror is skipped, not taken as output.
    assert_eq!(client.exec("quiet").unwrap(), "");
    assert_eq!(client.exec("again").unwrap(), "echo: again");
}

#[test]
fn keeps_characters_split_between_packets_whole() {
    // 7-byte packets cut the two-byte characters of the cvarlist lines in half.
    let addr = serve(Peer::Srcds { chunk: 7 });
    let mut client = Client::connect(addr, SECRET, TIMEOUT).unwrap();
    let cvars = client.exec("cvarlist").unwrap();
    assert!(!cvars.contains('\u{fffd}'), "no replacement characters");
    assert_eq!(cvars.lines().count(), 400);
}

#[test]
fn wrong_password_is_its_own_error() {
    let addr = serve(Peer::Srcds { chunk: 4096 });
    let err = Client::connect(addr, "wrong", TIMEOUT).unwrap_err();
    assert!(matches!(err, RconError::WrongPassword { .. }), "{err}");
}

#[test]
fn a_silent_server_times_out_and_a_closed_one_says_so() {
    let addr = serve(Peer::Silent);
    let err = Client::connect(addr, SECRET, Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, RconError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("answer to the password"), "{err}");

    let addr = serve(Peer::Hangup);
    let err = Client::connect(addr, SECRET, TIMEOUT).unwrap_err();
    assert!(matches!(err, RconError::Closed { .. }), "{err}");
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = Client::connect(addr, SECRET, TIMEOUT).unwrap_err();
    assert!(matches!(err, RconError::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains("is the instance running?"),
        "{err}"
    );
}

#[test]
fn refuses_commands_that_do_not_fit_a_packet() {
    let addr = serve(Peer::Srcds { chunk: 4096 });
    let mut client = Client::connect(addr, SECRET, TIMEOUT).unwrap();
    let long = "x".repeat(MAX_COMMAND + 1);
    assert!(matches!(
        client.exec(&long),
        Err(RconError::CommandTooLong { .. })
    ));
    assert!(matches!(client.exec("a\0b"), Err(RconError::NulInCommand)));
    assert_eq!(
        client.exec(&"y".repeat(MAX_COMMAND)).unwrap().len(),
        6 + MAX_COMMAND
    );
}
