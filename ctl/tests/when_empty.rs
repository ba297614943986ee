//! `restart|stop --when-empty`, `restart --if-running` and `players` against the fake
//! `systemctl` and a game stand-in on the loopback address that answers A2S_INFO with the
//! player count the test sets: what they wait for, what they print, their exit statuses. The
//! real proof is `tests/tests/booted_when_empty.rs`.

mod common;
mod fakes;

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::net::UdpSocket;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fakes::{ACTIVE, Fakes};

/// An A2S_INFO answer (no challenge, as servers before December 2020) with `humans` players
/// and 1 bot, `maxplayers` 8 (Valve Developer Community wiki, "Server queries").
fn info_reply(humans: u8) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFF, 0xFF, 0xFF, b'I', 17];
    for text in ["Coop #1", "c2m1_highway", "left4dead2", "Left 4 Dead 2"] {
        out.extend_from_slice(text.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(&550u16.to_le_bytes());
    out.extend_from_slice(&[humans + 1, 8, 1, b'd', b'l', 0, 1]);
    out.extend_from_slice(b"2.2.4.3\0");
    out
}

/// A fake game on a free loopback port in the host's port range; answers A2S_INFO with the
/// count in `humans` until dropped.
struct Game {
    port: u16,
    humans: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// A free loopback UDP port in the host's port range, bound (so no other test takes it).
fn free_socket() -> UdpSocket {
    (27_500..27_999)
        .find_map(|port| UdpSocket::bind(("127.0.0.1", port)).ok())
        .expect("a free UDP port in 27500-27999")
}

impl Game {
    /// A game that never answers: its port stays bound, so no other test's game takes it.
    fn silent() -> Game {
        let socket = free_socket();
        let port = socket.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(20));
            }
            drop(socket);
        });
        Game {
            port,
            humans: Arc::new(AtomicU8::new(0)),
            stop,
            thread: Some(thread),
        }
    }

    fn start(humans: u8) -> Game {
        let socket = free_socket();
        let port = socket.local_addr().unwrap().port();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let count = Arc::new(AtomicU8::new(humans));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&count), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                if let Ok((len, peer)) = socket.recv_from(&mut buf)
                    && buf[..len].starts_with(b"\xFF\xFF\xFF\xFFTSource Engine Query\0")
                {
                    let _ = socket.send_to(&info_reply(c.load(Ordering::Relaxed)), peer);
                }
            }
        });
        Game {
            port,
            humans: count,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Game {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The fakes, with instance `coop1` active and its game on `game`'s port.
fn fakes_with(game: &Game) -> Fakes {
    let f = Fakes::new();
    f.fx.write(
        "etc/instances/coop1.toml",
        &format!("port = {}\nmap = \"c2m1_highway\"\n", game.port),
    );
    f.set("left4me-server@coop1.service", ACTIVE);
    f.set("after-start", ACTIVE);
    f
}

fn acted(f: &Fakes, verb: &str) -> bool {
    f.calls()
        .iter()
        .any(|c| c.starts_with(&format!("systemctl {verb} ")) && c.contains("coop1"))
}

#[test]
fn restart_when_empty_waits_for_the_players_to_leave() {
    let game = Game::start(2);
    let f = fakes_with(&game);
    let child = f
        .command(&["restart", "coop1", "--when-empty"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(1500));
    assert!(
        !acted(&f, "restart"),
        "restarted with 2 players on: {:?}",
        f.calls()
    );
    let left = Instant::now();
    game.humans.store(0, Ordering::Relaxed);
    let out = child.wait_with_output().unwrap();
    let reaction = left.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("coop1: 2 players, waiting\n"), "{stdout}");
    assert!(stdout.contains("restarted coop1 in "), "{stdout}");
    assert!(acted(&f, "restart"));
    eprintln!(
        "restarted {:.0} ms after the last player left",
        reaction.as_secs_f64() * 1e3
    );
}

#[test]
fn max_wait_forces_the_stop_or_with_or_skip_leaves_it() {
    let game = Game::start(3);
    let f = fakes_with(&game);
    let run = f.run(&[
        "stop",
        "coop1",
        "--when-empty",
        "--max-wait",
        "1s",
        "--or-skip",
    ]);
    assert_eq!(run.status, 4, "{run:#?}");
    assert!(
        run.stdout
            .contains("coop1: 3 players after --max-wait: not stopped (--or-skip)\n"),
        "{run:#?}"
    );
    assert!(!acted(&f, "disable"), "{:?}", f.calls());

    let run = f.run(&["stop", "coop1", "--when-empty", "--max-wait", "1s"]);
    assert_eq!(run.status, 3, "{run:#?}");
    assert!(
        run.stdout
            .contains("coop1: stopped after --max-wait although players were still on it\n"),
        "{run:#?}"
    );
    assert!(acted(&f, "disable"), "{:?}", f.calls());
}

#[test]
fn an_instance_that_does_not_answer_is_not_empty() {
    let game = Game::silent();
    let f = fakes_with(&game);
    let run = f.run(&[
        "restart",
        "coop1",
        "--when-empty",
        "--max-wait",
        "1s",
        "--or-skip",
    ]);
    assert_eq!(run.status, 4, "{run:#?}");
    assert!(
        run.stdout.contains("coop1: not answering queries, waiting"),
        "{run:#?}"
    );
    assert!(!acted(&f, "restart"), "{:?}", f.calls());
}

#[test]
fn a_stopped_instance_is_restarted_at_once_unless_if_running() {
    let game = Game::silent();
    let f = fakes_with(&game);
    f.set("left4me-server@coop1.service", fakes::STOPPED);
    let run = f.run(&["restart", "coop1", "--if-running"]);
    run.assert_ok();
    assert_eq!(
        run.stdout,
        "coop1 is not running: not restarted (--if-running)\n"
    );
    assert!(!acted(&f, "restart"), "{:?}", f.calls());

    let run = f.run(&["restart", "coop1", "--when-empty"]);
    run.assert_ok();
    assert!(run.stdout.contains("restarted coop1 in "), "{run:#?}");
}

#[test]
fn bad_options_are_usage_errors() {
    let f = Fakes::new();
    for (args, needle) in [
        (
            &["restart", "coop1", "--when-empty", "--or-skip"][..],
            "--max-wait",
        ),
        (
            &["restart", "coop1", "--max-wait", "1h"][..],
            "--when-empty",
        ),
        (
            &["stop", "coop1", "--when-empty", "--announce", "a\"; quit"][..],
            "may not contain",
        ),
        (
            &["restart", "coop1", "--when-empty", "--max-wait", "soon"][..],
            "--max-wait",
        ),
    ] {
        let run = f.run(args);
        assert_eq!(run.status, 2, "{args:?}: {run:#?}");
        assert!(run.stderr.contains(needle), "{args:?}: {run:#?}");
    }
    assert!(f.calls().iter().all(|c| !c.contains("restart")));
}

#[test]
fn players_of_a_game_that_does_not_answer_is_an_error() {
    let game = Game::silent();
    let f = fakes_with(&game);
    let run = f.run(&["players", "coop1"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(run.stderr.contains("coop1"), "{run:#?}");
}

#[test]
fn on_a_terminal_the_wait_is_one_redrawn_line() {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let game = Game::start(3);
    let f = fakes_with(&game);
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave_path = ptsname(&master, Vec::new()).unwrap();
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave_path.to_str().unwrap())
        .unwrap();
    let mut master = File::from(master);
    let out = f
        .command(&[
            "restart",
            "coop1",
            "--when-empty",
            "--max-wait",
            "2s",
            "--or-skip",
        ])
        .stderr(Stdio::from(slave))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    // The child has exited: the read ends with EIO once the terminal is drained.
    let mut screen = Vec::new();
    let _ = master.read_to_end(&mut screen);
    let screen = String::from_utf8_lossy(&screen);
    assert!(
        screen.contains("\rcoop1: 3 players, waiting (2s left)\x1b[K"),
        "{screen:?}"
    );
    assert!(
        screen.matches("\rcoop1: 3 players, waiting").count() > 1,
        "{screen:?}"
    );
    // stdout, not a terminal, has only the verdict: no progress lines.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "coop1: 3 players after --max-wait: not restarted (--or-skip)\n"
    );
}
