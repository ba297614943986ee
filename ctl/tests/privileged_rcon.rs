//! `left4mectl create`/`delete` and the RCON password, `rcon-password`, and `rcon` against the
//! stand-in game server (which answers RCON as srcds does) started by hand on a loopback port.
//! Root only: the passwords live in a root-only dir that is refused when it is not root's.
//! The booted suite (`tests/tests/booted_rcon.rs`) runs the same verbs against an instance
//! started by systemd.

mod common;
mod fakes;

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, Run, require_root};
use fakes::{Fakes, STOPPED};

/// The stand-in game server, built by the workspace next to this test's binary.
fn standin_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("srcds-standin");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p left4me-standin` (make test does)",
        path.display()
    );
    path
}

/// A port free for both UDP (the game) and TCP (RCON) on loopback.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        // port + 100 is the instance's client port, which must be a port too.
        if port < 65000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// The stand-in running a game tree in the fixture whose cfg sets `password`, like a server
/// prepared by the supervisor; killed when dropped.
struct Game {
    child: Child,
    log: PathBuf,
}

impl Game {
    fn start(fx: &Fixture, port: u16, password: &str) -> Game {
        let root = fx.path("game");
        fs::create_dir_all(root.join("left4dead2/cfg")).unwrap();
        std::os::unix::fs::symlink(standin_binary(), root.join("srcds_run")).unwrap();
        fs::write(
            root.join("left4dead2/cfg/left4me_rcon.cfg"),
            format!("rcon_password \"{password}\"\n"),
        )
        .unwrap();
        fs::write(
            root.join("left4dead2/cfg/server.cfg"),
            "exec left4me_rcon\nhostname \"Coop #1\"\n",
        )
        .unwrap();
        let port_text = port.to_string();
        let client_port = free_port().to_string();
        let child = Command::new(root.join("srcds_run"))
            .args(["-game", "left4dead2", "-norestart", "-nohltv", "-port"])
            .args([port_text.as_str(), "+clientport", client_port.as_str()])
            .args(["+ip", "127.0.0.1", "+map", "c1m1_hotel"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let game = Game {
            child,
            log: root.join("left4dead2/standin.log"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = fs::read_to_string(&game.log).unwrap_or_default();
            if log.contains("RCON listening") && log.contains("cfg order:") {
                return game;
            }
            assert!(
                Instant::now() < deadline,
                "the stand-in did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Game {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixture whose instance `coop1` listens on `port`, with its password made by `create`.
fn fixture_on(port: u16) -> (Fixture, String) {
    let fx = Fixture::empty();
    fx.write("etc/host.toml", "port_range = [1024, 65535]\n");
    fx.run(&["create", "coop1", "--port", &port.to_string()])
        .assert_ok();
    let password = fx.read("admin/rcon/coop1").trim_end().to_owned();
    (fx, password)
}

fn run_with_stdin(fx: &Fixture, args: &[&str], stdin: &str) -> Run {
    let mut child = fx
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Run::from(child.wait_with_output().unwrap(), fx)
}

#[test]
fn privileged_create_makes_the_password_rcon_password_prints_it_delete_removes_it() {
    require_root();
    let port = free_port();
    let (fx, password) = fixture_on(port);
    assert_eq!(password.len(), 32);
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));
    let meta = fs::metadata(fx.path("admin/rcon/coop1")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600));
    let dir = fs::metadata(fx.path("admin/rcon")).unwrap();
    assert_eq!(dir.mode() & 0o7777, 0o700);

    let run = fx.run(&["rcon-password", "coop1"]);
    run.assert_ok();
    assert_eq!(run.stdout, format!("{password}\n"));

    // Never in the spec or what the spec turns into.
    assert!(!fx.read("etc/instances/coop1.toml").contains(&password));
    for args in [
        &["render", "coop1"][..],
        &["render", "coop1", "--json"],
        &["show", "coop1", "--json"],
    ] {
        let run = fx.run(args);
        run.assert_ok();
        assert!(
            !run.stdout.contains(&password),
            "{args:?} shows the password"
        );
        assert!(!run.stderr.contains(&password));
    }
    let render = fx.run(&["render", "coop1"]);
    assert!(
        render.stdout.contains("\nexec left4me_rcon\n"),
        "{render:#?}"
    );

    // Rotating a stopped instance just keeps a new one.
    let run = fx.run(&["rcon-password", "coop1", "--rotate"]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("it is not running: its next start stages the new one"),
        "{run:#?}"
    );
    let rotated = fx.read("admin/rcon/coop1").trim_end().to_owned();
    assert_ne!(rotated, password);
    assert!(!run.stdout.contains(&rotated));

    // A spec written by hand has none until its first start (or a rotate).
    fx.write("etc/instances/vs1.toml", "port = 27020\n");
    let run = fx.run(&["rcon-password", "vs1"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains("no RCON password for instance vs1 ([ROOT]/admin/rcon/vs1 is missing)"),
        "{run:#?}"
    );
    let run = fx.run(&["rcon-password", "vs1", "--rotate"]);
    run.assert_ok();
    assert!(
        run.stdout.starts_with("made the RCON password of vs1"),
        "{run:#?}"
    );

    // delete removes it (systemd faked, as in the lifecycle tests).
    let f = Fakes::new();
    f.set("after-stop", STOPPED);
    f.fx.write("admin/rcon/coop1", "x\n");
    // Root's alone, as systemd-tmpfiles makes it: the spec history lives there too.
    fs::set_permissions(f.fx.path("admin"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(f.fx.path("admin/rcon"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(
        f.fx.path("admin/rcon/coop1"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let run = f.run(&["delete", "coop1", "--yes"]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains(", removed its RCON password [ROOT]/admin/rcon/coop1\n"),
        "{run:#?}"
    );
    assert!(!f.fx.path("admin/rcon/coop1").exists());
}

#[test]
fn privileged_rcon_runs_one_command_stdin_lines_and_says_why_it_cannot() {
    require_root();
    let port = free_port();
    let (fx, password) = fixture_on(port);

    // Not running: nothing listens.
    let run = fx.run(&["rcon", "coop1", "status"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(
        run.stderr
            .starts_with("error: instance coop1 is not running")
            && run.stderr.contains("left4mectl start coop1"),
        "{run:#?}"
    );

    let game = Game::start(&fx, port, &password);
    let run = fx.run(&["rcon", "coop1", "status"]);
    run.assert_ok();
    assert!(run.stdout.starts_with("hostname: Coop #1\n"), "{run:#?}");
    assert!(run.stdout.contains("map     : c1m1_hotel"), "{run:#?}");

    // Words are joined by spaces; options after the name belong to the command.
    let run = fx.run(&["rcon", "coop1", "say", "hello", "there"]);
    run.assert_ok();
    assert_eq!(run.stdout, "Console: hello there\n");
    assert!(game.log().contains("say \"hello there\""));

    // A long reply spans several packets and comes back whole.
    let run = fx.run(&["rcon", "coop1", "cvarlist"]);
    run.assert_ok();
    assert!(run.stdout.len() > 4096, "{} bytes", run.stdout.len());
    assert!(run.stdout.contains("total convars/concommands"), "{run:#?}");

    // Without a command and without a terminal: each line of stdin.
    let run = run_with_stdin(&fx, &["rcon", "coop1"], "echo one\n\necho two\n");
    run.assert_ok();
    assert_eq!(run.stdout, "one\ntwo\n");

    // The password is in no output and not on the game's log.
    assert!(!game.log().contains(&password));

    // A wrong kept password: a clear error, exit 1.
    fs::write(fx.path("admin/rcon/coop1"), "WrongPassword1\n").unwrap();
    let run = fx.run(&["rcon", "coop1", "status"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(
        run.stderr
            .starts_with("error: instance coop1 refused its RCON password")
            && run.stderr.contains("left4mectl restart coop1"),
        "{run:#?}"
    );
    drop(game);

    // A server that accepts the connection and never answers: timed out.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    let started = Instant::now();
    let run = fx.run(&["rcon", "--timeout", "300ms", "coop1", "status"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(
        run.stderr.starts_with("error: instance coop1 timed out")
            && run.stderr.contains("--timeout"),
        "{run:#?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(silent);
}

#[test]
fn privileged_rotate_sets_the_new_password_on_the_running_server() {
    require_root();
    let port = free_port();
    let (fx, password) = fixture_on(port);
    let game = Game::start(&fx, port, &password);
    let run = fx.run(&["rcon-password", "coop1", "--rotate"]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("and set it on the running server (checked: the new one authenticates)"),
        "{run:#?}"
    );
    let rotated = fx.read("admin/rcon/coop1").trim_end().to_owned();
    assert_ne!(rotated, password);
    fx.run(&["rcon", "coop1", "echo", "still", "here"])
        .assert_ok();
    let log = game.log();
    assert!(!log.contains(&rotated) && !log.contains(&password), "{log}");
}

#[test]
fn privileged_rcon_as_an_ordinary_user_says_run_as_root() {
    require_root();
    let (fx, _) = fixture_on(free_port());
    // A copy the ordinary user can run, in the fixture's dir (in the system's temp dir): the
    // checkout may lie below a directory only root may enter (a `mktemp -d`).
    let bin = fx.path("bin/left4mectl");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    for dir in [&fx.root, &fx.path("bin")] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::copy(common::BIN, &bin).unwrap();
    for args in [
        &["rcon", "coop1", "status"][..],
        &["rcon-password", "coop1"],
    ] {
        let output = fx
            .command_of(&bin, args)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let run = Run::from(output, &fx);
        run.assert_refused("run it as root (sudo)");
    }
}

#[test]
fn rcon_refuses_a_bad_name_and_a_bad_timeout() {
    let fx = Fixture::empty();
    fx.run(&["rcon", "Coop", "status"])
        .assert_refused("instance name 'Coop' is not a valid name");
    let run = fx.run(&["rcon", "--timeout", "0", "coop1"]);
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(
        run.stderr.contains("the timeout must be more than 0"),
        "{run:#?}"
    );
}
