//! srcds-standin, run as `srcds_run` from a temporary game tree and queried over loopback with
//! the supervisor's A2S client and with the independent python-a2s (`pip install python-a2s`).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use left4me_a2s::{A2sError, Environment, ServerType, Visibility};

mod common;

use common::{GameTree, Server, free_port};

fn rule(rules: &[left4me_a2s::Rule], name: &str) -> Option<String> {
    rules
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.value.clone())
}

/// A cfg chain like the toolkit composes: overlay cfgs exec'd first, then the instance config.
fn tree_with_cfg_chain(name: &str) -> GameTree {
    let tree = GameTree::new(name);
    tree.cfg(
        "server.cfg",
        "exec server_overlay_base\nexec server_overlay_tickrate\n\
         hostname \"Coop #1\" // instance config\nsv_tags coop\n",
    )
    .cfg(
        "server_overlay_base.cfg",
        "exec sourcemod/base\nsv_consistency 0\n",
    )
    .cfg("sourcemod/base.cfg", "sm_base 1\n")
    .cfg(
        "server_overlay_tickrate.cfg",
        "hostname Overridden\nsv_tags tick\n",
    );
    tree
}

const CHAIN_ORDER: &str =
    "sourcemod/base.cfg,server_overlay_base.cfg,server_overlay_tickrate.cfg,server.cfg";

#[test]
fn answers_our_client_with_the_cfg_chain_applied() {
    let tree = tree_with_cfg_chain("ours");
    let mut server = Server::start(&tree, &["+standin_bots", "2", "-tickrate", "60"]);
    let info = server.wait_ready(Duration::from_secs(10));
    assert_eq!(info.name, "Coop #1");
    assert_eq!(info.map, "c1m1_hotel");
    assert_eq!(info.folder, "left4dead2");
    assert_eq!(info.game, "Left 4 Dead 2");
    assert_eq!((info.app_id, info.game_id), (550, Some(550)));
    assert_eq!((info.players, info.max_players, info.bots), (2, 8, 2));
    assert_eq!(info.server_type, ServerType::Dedicated);
    assert_eq!(info.environment, Environment::Linux);
    assert_eq!(info.visibility, Visibility::Public);
    assert!(info.vac);
    assert_eq!(info.port, Some(server.addr.port()));
    assert_eq!(info.keywords.as_deref(), Some("coop"));

    let client = server.client();
    let players = client.players().unwrap();
    let names: Vec<_> = players.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Coach", "Ellis"]);
    let rules = client.rules().unwrap();
    assert_eq!(
        rule(&rules, "standin_cfg_order").as_deref(),
        Some(CHAIN_ORDER)
    );
    assert_eq!(rule(&rules, "sv_consistency").as_deref(), Some("0"));
    assert_eq!(rule(&rules, "sm_base").as_deref(), Some("1"));

    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
    let log = tree.log();
    let root = tree.root.display();
    for expected in [
        format!("argv=[\"{root}/srcds_run\", \"-game\", \"left4dead2\""),
        format!("cwd={root}/left4dead2\n"),
        format!("root={root}\n"),
        "HOME=/nonexistent/standin-home\n".to_owned(),
        "status Uid: ".to_owned(),
        "status Gid: ".to_owned(),
        "status CapEff: ".to_owned(),
        "status CapPrm: ".to_owned(),
        "status CapBnd: ".to_owned(),
        "kept arguments: -tickrate 60\n".to_owned(),
        format!("cfg order: {CHAIN_ORDER}\n"),
        "quit on SIGTERM\n".to_owned(),
    ] {
        assert!(log.contains(&expected), "log lacks {expected:?}:\n{log}");
    }
}

/// Query with python-a2s (an independent client) and print JSON; the module must be installed.
fn python_a2s(addr: SocketAddr) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, sys
try:
    import a2s
except ImportError as e:
    sys.exit("python-a2s is missing (%s): run `pip install python-a2s`" % e)
address = (sys.argv[1], int(sys.argv[2]))
info = a2s.info(address, timeout=3)
players = a2s.players(address, timeout=3)
rules = a2s.rules(address, timeout=3)
print(json.dumps({
    "name": info.server_name, "map": info.map_name, "folder": info.folder, "game": info.game,
    "app_id": info.app_id, "players": info.player_count, "max_players": info.max_players,
    "bots": info.bot_count, "server_type": info.server_type, "platform": info.platform,
    "password": info.password_protected, "vac": info.vac_enabled, "port": info.port,
    "keywords": info.keywords, "game_id": info.game_id,
    "player_names": [p.name for p in players], "rules": rules,
}))
"#;
    let output = Command::new("python3")
        .args([
            "-c",
            SCRIPT,
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install python3, then `pip install python-a2s`")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python-a2s query failed ({}); if the module is missing run `pip install python-a2s`:\n{stderr}",
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn check_with_python(extra: &[&str]) {
    let tree = tree_with_cfg_chain("python");
    let mut server = Server::start(&tree, extra);
    server.wait_ready(Duration::from_secs(10));
    let seen = python_a2s(server.addr);
    let expected = serde_json::json!({
        "name": "Coop #1", "map": "c1m1_hotel", "folder": "left4dead2", "game": "Left 4 Dead 2",
        "app_id": 550, "players": 3, "max_players": 4, "bots": 1, "server_type": "d",
        "platform": "l", "password": false, "vac": true, "port": server.addr.port(),
        "keywords": "coop", "game_id": 550, "player_names": ["Player 1", "Player 2", "Coach"],
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&seen[key], value, "python-a2s saw {key} = {}", seen[key]);
    }
    assert_eq!(seen["rules"]["standin_cfg_order"], CHAIN_ORDER);
    assert_eq!(seen["rules"]["sv_consistency"], "0");
}

#[test]
fn answers_python_a2s() {
    check_with_python(&[
        "+maxplayers",
        "4",
        "+standin_bots",
        "1",
        "+standin_players",
        "2",
    ]);
}

#[test]
fn answers_python_a2s_with_split_replies() {
    check_with_python(&[
        "+maxplayers",
        "4",
        "+standin_bots",
        "1",
        "+standin_players",
        "2",
        "-standin_split",
    ]);
}

/// Send one raw datagram and return the first reply datagram.
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.send_to(request, addr).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = socket.recv_from(&mut buf).unwrap();
    buf[..len].to_vec()
}

const INFO_REQUEST: &[u8] = b"\xFF\xFF\xFF\xFFTSource Engine Query\0";

#[test]
fn challenges_info_unless_told_not_to() {
    let tree = GameTree::new("challenge");
    let mut server = Server::start(&tree, &[]);
    server.wait_ready(Duration::from_secs(10));
    let reply = raw_exchange(server.addr, INFO_REQUEST);
    assert_eq!(reply[..5], [0xFF, 0xFF, 0xFF, 0xFF, 0x41], "{reply:02X?}");
    assert_eq!(reply.len(), 9);
    drop(server);

    let mut server = Server::start(&tree, &["-standin_nochallenge"]);
    let info = server.wait_ready(Duration::from_secs(10));
    assert_eq!(
        info.name, "Left 4 Dead 2",
        "default hostname without server.cfg"
    );
    let reply = raw_exchange(server.addr, INFO_REQUEST);
    assert_eq!(reply[..5], [0xFF, 0xFF, 0xFF, 0xFF, 0x49], "{reply:02X?}");
    // A2S_PLAYER and A2S_RULES are always challenged, as on every Source server.
    let reply = raw_exchange(server.addr, b"\xFF\xFF\xFF\xFFV\xFF\xFF\xFF\xFF");
    assert_eq!(reply[4], 0x41, "{reply:02X?}");
    assert!(
        tree.log()
            .contains("'server.cfg' not present; not executing.")
    );
}

#[test]
fn sends_split_replies_that_our_client_reassembles() {
    let tree = GameTree::new("split");
    // Enough cvars that A2S_RULES needs several pieces even unforced.
    let many: String = (0..150)
        .map(|n| format!("standin_filler_{n:03} value_{n:03}\n"))
        .collect();
    tree.cfg("server.cfg", &many);
    let mut server = Server::start(&tree, &["-standin_split", "-standin_nochallenge"]);
    let info = server.wait_ready(Duration::from_secs(10));
    assert_eq!(info.map, "c1m1_hotel");
    let reply = raw_exchange(server.addr, INFO_REQUEST);
    assert_eq!(
        reply[..4],
        [0xFE, 0xFF, 0xFF, 0xFF],
        "forced split: {reply:02X?}"
    );
    assert_eq!(reply[8], 2, "two pieces");
    let rules = server.client().rules().unwrap();
    assert_eq!(rules.len(), 151);
    assert_eq!(
        rule(&rules, "standin_filler_149").as_deref(),
        Some("value_149")
    );
    assert_eq!(server.client().players().unwrap(), vec![]);
}

#[test]
fn waits_out_the_start_delay() {
    let tree = GameTree::new("delay");
    let started = Instant::now();
    let mut server = Server::start(&tree, &["+standin_start_delay", "1.5"]);
    // The port is bound during the delay (like a loading map) but nothing answers.
    sleep(Duration::from_millis(300));
    match server.client().info() {
        Err(A2sError::Timeout { .. }) => {}
        other => panic!("expected a timeout while loading, got {other:?}"),
    }
    server.wait_ready(Duration::from_secs(10));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(tree.log().contains("loading: not answering queries yet\n"));
}

#[test]
fn hangs_and_recovers_through_the_control_file() {
    let tree = GameTree::new("hang");
    let mut server = Server::start(&tree, &[]);
    server.wait_ready(Duration::from_secs(10));
    tree.control("hang\n");
    server.wait_silent(Duration::from_secs(3));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "a hung server keeps running"
    );
    tree.control("");
    server.wait_ready(Duration::from_secs(3));
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert!(tree.log().contains("hang: not answering queries\n"));
}

#[test]
fn hangs_after_the_given_time() {
    let tree = GameTree::new("hang-after");
    let mut server = Server::start(&tree, &["+standin_hang_after", "1"]);
    server.wait_ready(Duration::from_secs(10));
    server.wait_silent(Duration::from_secs(5));
    // Still quits cleanly on SIGINT while hung.
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn crashes_by_sigsegv_through_the_control_file() {
    let tree = GameTree::new("crash");
    let mut server = Server::start(&tree, &[]);
    server.wait_ready(Duration::from_secs(10));
    tree.control("crash\n");
    let status = server.wait_exit(Duration::from_secs(3));
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{status}");
    assert!(tree.log().contains("crash: raising SIGSEGV\n"));
}

#[test]
fn crashes_after_the_given_time() {
    let tree = GameTree::new("crash-after");
    let mut server = Server::start(&tree, &["+standin_crash_after", "0.5"]);
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{status}");
}

#[test]
fn quits_with_status_0_on_sigint_even_while_loading() {
    let tree = GameTree::new("sigint");
    let mut server = Server::start(&tree, &["+standin_start_delay", "60"]);
    sleep(Duration::from_millis(300));
    server.signal(libc::SIGINT);
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(tree.log().ends_with("quit on SIGINT\n"), "{}", tree.log());
}

#[test]
fn a_wedged_server_ignores_sigterm_until_killed() {
    let tree = GameTree::new("wedge");
    let mut server = Server::start(&tree, &[]);
    server.wait_ready(Duration::from_secs(10));
    tree.control("wedge\n");
    server.wait_silent(Duration::from_secs(3));
    server.signal(libc::SIGTERM);
    sleep(Duration::from_millis(500));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "wedged server quit on SIGTERM"
    );
    server.signal(libc::SIGKILL);
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
}

fn run_with(root: &Path, args: &[&str]) -> (ExitStatus, String) {
    let output = Command::new(root.join("srcds_run"))
        .args(args)
        .current_dir(root)
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn exits_2_on_a_bad_command_line() {
    let tree = GameTree::new("usage");
    for (args, message) in [
        (
            &["-game", "left4dead2", "-norestart", "+map", "c1m1_hotel"][..],
            "missing -port",
        ),
        (
            &["-game", "left4dead2", "-port", "27015", "+map", "m"],
            "missing -norestart",
        ),
        (
            &[
                "-game",
                "left4dead2",
                "-norestart",
                "-port",
                "x",
                "+map",
                "m",
            ],
            "invalid -port",
        ),
        (
            &["-game", "left4dead2", "-norestart", "-port", "27015"],
            "missing +map",
        ),
    ] {
        let (status, stderr) = run_with(&tree.root, args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: srcds_run"), "{stderr}");
    }
    let (status, stderr) = run_with(
        &tree.root,
        &[
            "-game",
            "nogame",
            "-norestart",
            "-port",
            "27015",
            "+map",
            "m",
        ],
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nogame does not exist"), "{stderr}");
}

#[test]
fn players_come_and_go_through_the_control_file() {
    let tree = GameTree::new("players");
    let mut server = Server::start(&tree, &["+standin_players", "1", "+standin_bots", "2"]);
    server.wait_ready(Duration::from_secs(10));
    let humans = |server: &Server| {
        let info = server.client().info().unwrap();
        info.players - info.bots
    };
    assert_eq!(humans(&server), 1);
    tree.control("players 2\n");
    sleep(Duration::from_millis(600));
    assert_eq!(humans(&server), 2);
    assert_eq!(server.client().players().unwrap().len(), 4);
    tree.control("players 0\n");
    sleep(Duration::from_millis(600));
    assert_eq!(humans(&server), 0);
    // Without the word, the command line's count is back.
    tree.control("");
    sleep(Duration::from_millis(600));
    assert_eq!(humans(&server), 1);
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert!(tree.log().contains("players: 2\n"));
}

/// Starts the stand-in with `args` after `-game left4dead2 -norestart +ip 127.0.0.1 +map m`,
/// as `uid` (through setpriv) when given; returns the child.
fn spawn_as(tree: &GameTree, uid: Option<u32>, args: &[String]) -> Child {
    let mut command = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".into(),
                "--".into(),
            ]);
            c.arg(tree.root.join("srcds_run"));
            c
        }
        None => Command::new(tree.root.join("srcds_run")),
    };
    command
        .args([
            "-game",
            "left4dead2",
            "-norestart",
            "+ip",
            "127.0.0.1",
            "+map",
            "m",
        ])
        .args(args)
        .current_dir(tree.game())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `path` (the stand-in's log) contains `text`; panics after 10 s.
fn wait_for_log(tree: &GameTree, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = tree.log();
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {text:?} in the log:\n{log}");
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn binds_every_port_a_real_server_binds() {
    let tree = GameTree::new("ports");
    let (game, client, tv) = (free_port(), free_port(), free_port());
    let mut child = spawn_as(
        &tree,
        None,
        &[
            "-strictportbind".into(),
            "-port".into(),
            game.to_string(),
            "+clientport".into(),
            client.to_string(),
            "+tv_port".into(),
            tv.to_string(),
        ],
    );
    let log = wait_for_log(&tree, "listening on udp 127.0.0.1:");
    assert!(
        log.contains(&format!(
            "Network: IP 127.0.0.1, mode MP, dedicated Yes, ports {game} SV / {client} CL"
        )),
        "{log}"
    );
    for port in [game, client, tv] {
        let err = UdpSocket::bind(("127.0.0.1", port)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "udp {port}");
    }
    let err = TcpListener::bind(("127.0.0.1", game)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "tcp {game}");
    assert!(
        log.contains(&format!("hltv socket on udp 127.0.0.1:{tv}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("RCON listening on tcp 127.0.0.1:{game}")),
        "{log}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_taken_rcon_port_is_a_warning_as_in_the_engine() {
    let tree = GameTree::new("rcon");
    let game = free_port();
    let _holder = TcpListener::bind(("127.0.0.1", game)).unwrap();
    let mut child = spawn_as(
        &tree,
        None,
        &[
            "-port".into(),
            game.to_string(),
            "+clientport".into(),
            free_port().to_string(),
            "-nohltv".into(),
        ],
    );
    let log = wait_for_log(&tree, "listening on udp");
    assert!(
        log.contains("Socket bind failed (Address already in use)"),
        "{log}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server runs on without RCON"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A refused bind (here `EACCES`: an unprivileged user and a port below
/// `ip_unprivileged_port_start`; under an enforcing `SocketBindDeny=` it is `EPERM`, the same
/// path) fails as the engine fails: fatal for the server and SourceTV sockets, a fallback to a
/// kernel-chosen port for the client socket.
#[test]
fn privileged_refused_binds_fail_like_the_engine() {
    assert!(
        is_root(),
        "needs root (to run the stand-in as nobody): run `make test` as root"
    );
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        start > 82,
        "ip_unprivileged_port_start is {start}: ports 80-82 are not privileged here"
    );
    let nobody = Some(65534);
    let open_up = |tree: &GameTree| {
        use std::os::unix::fs::PermissionsExt;
        for dir in [tree.root.clone(), tree.game()] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
    };

    let tree = GameTree::new("refused-game");
    open_up(&tree);
    let out = spawn_as(
        &tree,
        nobody,
        &["-port".into(), "80".into(), "-nohltv".into()],
    )
    .wait_with_output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Couldn't allocate any server IP port"),
        "{stderr}"
    );
    assert!(
        tree.log()
            .contains("WARNING: NNET_OpenSocket: bind: Permission denied"),
        "{}",
        tree.log()
    );

    let tree = GameTree::new("refused-tv");
    open_up(&tree);
    let out = spawn_as(
        &tree,
        nobody,
        &[
            "-port".into(),
            free_port().to_string(),
            "+clientport".into(),
            free_port().to_string(),
            "+tv_port".into(),
            "82".into(),
        ],
    )
    .wait_with_output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Couldn't allocate any hltv IP port"),
        "{stderr}"
    );

    let tree = GameTree::new("refused-client");
    open_up(&tree);
    let mut child = spawn_as(
        &tree,
        nobody,
        &[
            "-port".into(),
            free_port().to_string(),
            "+clientport".into(),
            "81".into(),
            "-nohltv".into(),
        ],
    );
    let log = wait_for_log(&tree, "listening on udp");
    assert!(
        log.contains("WARNING: NNET_OpenSocket: bind: Permission denied"),
        "{log}"
    );
    assert!(log.contains("client socket on udp 127.0.0.1:"), "{log}");
    assert!(
        !log.contains("client socket on udp 127.0.0.1:81\n"),
        "{log}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
