//! srcds-standin's RCON, checked with a raw codec written here (independent of the stand-in's
//! and of the project's client) and with the independent python `rcon` 2.4.9
//! (`pip install rcon==2.4.9`, `from rcon.source import Client`).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

mod common;

use common::{GameTree, Server};

const PASSWORD: &str = "s3cret pass";
const AUTH: i32 = 3;
const EXEC: i32 = 2;
const AUTH_RESPONSE: i32 = 2;
const RESPONSE_VALUE: i32 = 0;

/// `size id type body \0 \0`, little-endian.
fn packet(id: i32, kind: i32, body: &[u8]) -> Vec<u8> {
    let size = (body.len() + 10) as i32;
    [
        &size.to_le_bytes()[..],
        &id.to_le_bytes(),
        &kind.to_le_bytes(),
        body,
        &[0, 0],
    ]
    .concat()
}

/// A game tree whose server.cfg execs the file that sets the RCON password, as the toolkit
/// stages it; `extra` is more cfg text.
fn tree(name: &str, extra: &str) -> GameTree {
    let tree = GameTree::new(name);
    tree.cfg(
        "server.cfg",
        &format!("exec left4me_rcon\nhostname \"Coop #1\"\n{extra}"),
    )
    .cfg(
        "left4me_rcon.cfg",
        &format!("rcon_password \"{PASSWORD}\"\n"),
    );
    tree
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// One `read` call: what arrived in one burst.
fn read_once(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let n = stream.read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Read until `expected` bytes have arrived.
fn read_exactly(stream: &mut TcpStream, expected: usize) -> Vec<u8> {
    let mut buf = vec![0u8; expected];
    stream.read_exact(&mut buf).unwrap();
    buf
}

/// Whether the server closed the connection (end of stream or reset), within 5 s.
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(e) => matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        Ok(_) => false,
    }
}

fn start(tree: &GameTree, extra: &[&str]) -> Server {
    let mut server = Server::start(tree, extra);
    server.wait_ready(Duration::from_secs(10));
    server
}

#[test]
fn answers_auth_with_two_packets_in_one_burst() {
    let tree = tree("burst", "");
    let server = start(&tree, &[]);

    let mut stream = connect(server.addr);
    stream
        .write_all(&packet(41, AUTH, PASSWORD.as_bytes()))
        .unwrap();
    let burst = read_once(&mut stream);
    let expected = [
        packet(41, RESPONSE_VALUE, b""),
        packet(41, AUTH_RESPONSE, b""),
    ]
    .concat();
    assert_eq!(burst, expected, "both auth replies in one read");

    let mut wrong = connect(server.addr);
    wrong.write_all(&packet(42, AUTH, b"nope")).unwrap();
    let burst = read_once(&mut wrong);
    let expected = [
        packet(42, RESPONSE_VALUE, b""),
        packet(-1, AUTH_RESPONSE, b""),
    ]
    .concat();
    assert_eq!(burst, expected, "wrong password: id -1");
    assert!(tree.log().contains("\": wrong password\n"));
}

#[test]
fn runs_commands_only_after_auth_and_mirrors_the_empty_packet() {
    let tree = tree("session", "");
    let server = start(&tree, &[]);
    let mut stream = connect(server.addr);

    // Before auth: not run, only the console redirect's empty reply; the connection stays.
    stream.write_all(&packet(5, EXEC, b"status")).unwrap();
    let empty = packet(5, RESPONSE_VALUE, b"");
    assert_eq!(read_exactly(&mut stream, empty.len()), empty);
    assert!(tree.log().contains("\": Bad Password\n"));

    stream
        .write_all(&packet(6, AUTH, PASSWORD.as_bytes()))
        .unwrap();
    read_exactly(&mut stream, 28);

    // A command, then the empty RESPONSE_VALUE clients send to find the end of its reply.
    let mut requests = packet(7, EXEC, b"echo hi");
    requests.extend(packet(8, RESPONSE_VALUE, b""));
    stream.write_all(&requests).unwrap();
    let reply = packet(7, RESPONSE_VALUE, b"hi\n");
    let mirror = packet(8, RESPONSE_VALUE, b"");
    // srcds's answer to the empty value request: body 00 01 00 00 00 00 (size 14).
    let value = [
        &14i32.to_le_bytes()[..],
        &8i32.to_le_bytes(),
        &0i32.to_le_bytes(),
        &[0, 1, 0, 0, 0, 0],
    ]
    .concat();
    let expected = [reply, mirror, value].concat();
    assert_eq!(read_exactly(&mut stream, expected.len()), expected);

    stream.write_all(&packet(9, EXEC, b"hostname")).unwrap();
    let text = b"\"hostname\" = \"Coop #1\" ( def. \"Left 4 Dead 2\" )\n - Hostname for server.\n";
    let reply = packet(9, RESPONSE_VALUE, text);
    assert_eq!(read_exactly(&mut stream, reply.len()), reply);

    stream.write_all(&packet(10, EXEC, b"x_nosuch 1")).unwrap();
    let reply = packet(10, RESPONSE_VALUE, b"Unknown command \"x_nosuch\"\n");
    assert_eq!(read_exactly(&mut stream, reply.len()), reply);

    // A cvar set over RCON is what A2S reports at once.
    stream
        .write_all(&packet(20, EXEC, b"hostname \"Renamed #1\""))
        .unwrap();
    assert_eq!(
        read_exactly(&mut stream, 14),
        packet(20, RESPONSE_VALUE, b"")
    );
    assert_eq!(server.client().info().unwrap().name, "Renamed #1");

    // Writing rcon_password closes every RCON connection, the writer's too, with no reply.
    let mut other = connect(server.addr);
    other
        .write_all(&packet(1, AUTH, PASSWORD.as_bytes()))
        .unwrap();
    read_exactly(&mut other, 28);
    stream
        .write_all(&packet(11, EXEC, b"rcon_password newpass"))
        .unwrap();
    assert!(closed(&mut stream), "the writer's connection is closed");
    assert!(closed(&mut other), "every connection is closed");
    let mut again = connect(server.addr);
    again
        .write_all(&packet(12, AUTH, PASSWORD.as_bytes()))
        .unwrap();
    let burst = read_exactly(&mut again, 28);
    assert_eq!(
        &burst[18..22],
        &(-1i32).to_le_bytes(),
        "old password refused"
    );
    again.write_all(&packet(13, AUTH, b"newpass")).unwrap();
    let burst = read_exactly(&mut again, 28);
    assert_eq!(&burst[18..22], &13i32.to_le_bytes(), "new password taken");

    // A size outside 10..=4106 closes the connection.
    again.write_all(&9i32.to_le_bytes()).unwrap();
    assert!(closed(&mut again));
    let mut big = connect(server.addr);
    big.write_all(&4107i32.to_le_bytes()).unwrap();
    assert!(closed(&mut big));
}

#[test]
fn quits_on_the_console_quit_command() {
    let tree = tree("quit", "");
    let mut server = start(&tree, &[]);
    let mut stream = connect(server.addr);
    stream
        .write_all(&packet(1, AUTH, PASSWORD.as_bytes()))
        .unwrap();
    read_exactly(&mut stream, 28);
    stream.write_all(&packet(2, EXEC, b"quit")).unwrap();
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert!(tree.log().contains("quit on console quit\n"));
}

#[test]
fn refuses_every_password_when_none_is_set() {
    let tree = GameTree::new("nopassword");
    let server = start(&tree, &[]);
    let mut stream = connect(server.addr);
    stream.write_all(&packet(3, AUTH, b"")).unwrap();
    let burst = read_exactly(&mut stream, 28);
    assert_eq!(&burst[18..22], &(-1i32).to_le_bytes());
}

#[test]
fn bans_an_address_after_too_many_failures() {
    let tree = tree(
        "ban",
        "sv_rcon_minfailures 2\nsv_rcon_minfailuretime 60\nsv_rcon_banpenalty 1\n",
    );
    let mut server = start(&tree, &[]);
    let mut stream = connect(server.addr);
    for id in 1..=2 {
        stream.write_all(&packet(id, AUTH, b"guess")).unwrap();
        let burst = read_exactly(&mut stream, 28);
        assert_eq!(&burst[18..22], &(-1i32).to_le_bytes(), "failure {id}");
    }
    // The third failure within the minute is more than sv_rcon_minfailures: banned, closed.
    stream.write_all(&packet(3, AUTH, b"guess")).unwrap();
    assert!(closed(&mut stream), "the failing connection is closed");
    assert!(
        tree.log()
            .contains("Banning 127.0.0.1 for rcon hacking attempts\n")
    );
    // New connections from the address are closed at once, even with the right password.
    let mut again = connect(server.addr);
    let _ = again.write_all(&packet(4, AUTH, PASSWORD.as_bytes()));
    assert!(closed(&mut again), "a banned address is refused");
    assert!(tree.log().contains("rcon: refused 127.0.0.1:"));
    // The game itself goes on answering queries.
    server.wait_ready(Duration::from_secs(2));
}

#[test]
fn serves_several_clients_without_blocking_queries() {
    let tree = tree("several", "");
    let mut server = start(&tree, &[]);
    // One client sends half a packet and stalls; another is served meanwhile.
    let mut stalled = connect(server.addr);
    stalled
        .write_all(&packet(1, AUTH, PASSWORD.as_bytes())[..7])
        .unwrap();
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(server.addr)).collect();
    for (n, client) in clients.iter_mut().enumerate() {
        client
            .write_all(&packet(n as i32, AUTH, PASSWORD.as_bytes()))
            .unwrap();
    }
    for (n, client) in clients.iter_mut().enumerate() {
        let burst = read_exactly(client, 28);
        assert_eq!(&burst[18..22], &(n as i32).to_le_bytes());
        client.write_all(&packet(100, EXEC, b"echo one")).unwrap();
        assert_eq!(
            read_exactly(client, 18),
            packet(100, RESPONSE_VALUE, b"one\n")
        );
    }
    server.wait_ready(Duration::from_secs(1));
    stalled
        .write_all(&packet(1, AUTH, PASSWORD.as_bytes())[7..])
        .unwrap();
    assert_eq!(read_exactly(&mut stalled, 28)[18..22], 1i32.to_le_bytes());
}

#[test]
fn answers_every_request_of_a_long_pipeline_in_order() {
    let tree = tree("pipeline", "");
    let server = start(&tree, &[]);
    let mut stream = connect(server.addr);
    let mut requests = packet(0, AUTH, PASSWORD.as_bytes());
    for id in 1..=200 {
        requests.extend(packet(id, EXEC, format!("echo {id:03}").as_bytes()));
    }
    stream.write_all(&requests).unwrap();
    let mut expected = vec![
        packet(0, RESPONSE_VALUE, b""),
        packet(0, AUTH_RESPONSE, b""),
    ];
    for id in 1..=200 {
        expected.push(packet(id, RESPONSE_VALUE, format!("{id:03}\n").as_bytes()));
    }
    let expected = expected.concat();
    assert_eq!(read_exactly(&mut stream, expected.len()), expected);
}

/// Run the independent python `rcon` client (and python-a2s) against `addr`; prints JSON.
fn python_rcon(addr: SocketAddr) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, socket, sys
try:
    import a2s
    from rcon.source import Client
    from rcon.exceptions import WrongPassword
except ImportError as e:
    sys.exit("python rcon or python-a2s is missing (%s): run `pip install rcon==2.4.9 python-a2s`" % e)

host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Kept:
    def __init__(self, reader): self.reader = reader
    def __enter__(self): return self.reader
    def __exit__(self, *exc): return False

class OneReader:
    """The client's socket, except that every makefile('rb') is one buffered reader.

    rcon 2.4.9 reads each packet through a fresh buffered file, so a second packet that came in
    the same burst (srcds's AUTH_RESPONSE right after the empty RESPONSE_VALUE) is lost with the
    discarded buffer. A TCP stream has to be read through one buffer; that is all this changes.
    """
    def __init__(self, sock):
        self._sock, self._reader = sock, None
    def makefile(self, mode="r", *args, **kwargs):
        if "r" in mode:
            if self._reader is None:
                self._reader = self._sock.makefile("rb")
            return Kept(self._reader)
        return self._sock.makefile(mode, *args, **kwargs)
    def __getattr__(self, name):
        return getattr(self._sock, name)

def session(passwd, **kwargs):
    client = Client(host, port, timeout=5, **kwargs)
    client._socket = OneReader(client._socket)
    client.connect()
    client.login(passwd)
    return client

result = {}
# The unchanged client loses the AUTH_RESPONSE that came in the same burst: it times out.
plain = Client(host, port, timeout=1)
plain.connect()
try:
    plain.login(password)
    result["plain_login"] = "ok"
except (socket.timeout, TimeoutError):
    result["plain_login"] = "timeout"
plain.close()

try:
    session("wrong password").close()
    result["wrong_password"] = "accepted"
except WrongPassword:
    result["wrong_password"] = "refused"

client = session(password)
result["status"] = client.run("status")
result["say"] = client.run("say", "hello", "all")
result["changelevel_unknown"] = client.run("changelevel", "c9m9_nowhere")
result["changelevel"] = client.run("changelevel", "c2m1_highway")
client.close()
result["a2s_map"] = a2s.info((host, port), timeout=3).map_name

# srcds cuts long output at print boundaries into texts of at most 4095 bytes; the client's
# threshold for "this reply may go on" must be below that.
client = session(password, frag_threshold=2048)
result["cvarlist"] = client.run("cvarlist")
client.close()
print(json.dumps(result))
"#;
    let output = Command::new("python3")
        .args([
            "-c",
            SCRIPT,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            PASSWORD,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install python3, then `pip install rcon==2.4.9`")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python rcon failed ({}); if the module is missing run `pip install rcon==2.4.9`:\n{stderr}",
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn answers_python_rcon() {
    let tree = tree("python", "");
    tree.control("player Alice 5\nplayer Bob Smith\n");
    let server = start(&tree, &["+standin_bots", "1"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.client().players().map_or(0, |p| p.len()) < 3 {
        assert!(Instant::now() < deadline, "the players never joined");
        sleep(Duration::from_millis(50));
    }

    let seen = python_rcon(server.addr);
    assert_eq!(
        seen["plain_login"], "timeout",
        "auth replies came in one burst"
    );
    assert_eq!(seen["wrong_password"], "refused");
    let status = seen["status"].as_str().unwrap();
    let port = server.addr.port();
    for line in [
        "hostname: Coop #1\n".to_owned(),
        format!("udp/ip  : 127.0.0.1:{port} [ public 127.0.0.1:{port} ]\n"),
        "map     : c1m1_hotel\n".to_owned(),
        "players : 2 humans, 1 bots (8 max) (not hibernating) (unreserved)\n".to_owned(),
        "# userid name uniqueid connected ping loss state rate adr\n".to_owned(),
        "#  3 1 \"Alice\" STEAM_1:1:1000003 00:".to_owned(),
        "#  4 2 \"Bob Smith\" STEAM_1:0:1000004 00:".to_owned(),
        "# 2 \"Coach\" BOT active\n#end\n".to_owned(),
    ] {
        assert!(status.contains(&line), "status lacks {line:?}:\n{status}");
    }
    assert_eq!(seen["say"], "Console: hello all\n");
    assert!(
        tree.log()
            .contains("\"Console<0><Console><Console>\" say \"hello all\"")
    );
    assert_eq!(
        seen["changelevel_unknown"],
        "changelevel failed: c9m9_nowhere not found\n"
    );
    assert_eq!(seen["changelevel"], "");
    assert_eq!(seen["a2s_map"], "c2m1_highway");
    let cvarlist = seen["cvarlist"].as_str().unwrap();
    assert!(cvarlist.starts_with("cvar list\n--------------\n"));
    assert!(
        cvarlist.len() > 3 * 4095,
        "needs several packets: {} bytes",
        cvarlist.len()
    );
    assert!(
        cvarlist.ends_with(" total convars/concommands\n"),
        "reassembled to the end: {}",
        &cvarlist[cvarlist.len() - 200..]
    );
    assert!(
        cvarlist.contains("\nz_witch_health "),
        "the last cvars arrived"
    );

    // A2S_PLAYER lists the named players with their scores, then the bot.
    let players = server.client().players().unwrap();
    let rows: Vec<_> = players.iter().map(|p| (p.name.as_str(), p.score)).collect();
    assert_eq!(rows, [("Alice", 5), ("Bob Smith", 0), ("Coach", 0)]);
    tree.control("player Bob Smith\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.client().players().map_or(0, |p| p.len()) != 2 {
        assert!(Instant::now() < deadline, "Alice never left");
        sleep(Duration::from_millis(50));
    }
    assert!(tree.log().contains("player left: \"Alice\" (userid 3)"));
}
