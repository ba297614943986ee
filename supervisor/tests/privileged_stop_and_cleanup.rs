//! The supervisor's phases against what issue 14 found, as root (see `privileged_phases.rs` for
//! the test host): a stop is never a failure but a crash is; `cleanup` finds a moved mount by its
//! tag; `prepare` waits for the instance lock; a missing game install says to install the game.
//! Run by `make test` (CI is root); fails loudly when not root.

mod common;

use std::time::{Duration, Instant};

use common::*;
use left4me_statedir::{Lock, Subject};

/// Waits for the last started `run` to exit; returns its exit code.
fn wait_run(host: &mut Host) -> Option<i32> {
    let mut run = host.children.pop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = run.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "run did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn privileged_a_game_killed_by_the_forwarded_stop_signal_is_a_clean_stop() {
    let mut host = Host::new("stopsig");
    let port = free_udp_port();
    host.write(
        "config/instances/s.toml",
        &format!("port = {port}\nargs = [\"-standin_die_on_stop\"]\n"),
    );
    for signal in ["-INT", "-TERM"] {
        let prepared = host.phase("prepare", "s");
        assert!(prepared.status.success(), "{}", stderr(&prepared));
        let notify = host.start_run("s");
        await_notify(&notify, "READY=1");
        kill(pid_of(&[SUPERVISOR, "run", "s"]), signal);
        assert_eq!(
            wait_run(&mut host),
            Some(0),
            "run exits 0 when the game dies by the forwarded {signal}"
        );
        let log =
            std::fs::read_to_string(host.state.join("runtime/s/upper/left4dead2/standin.log"))
                .unwrap();
        assert!(log.contains("die by SIG"), "{log}");
    }
}

#[test]
fn privileged_a_crash_still_fails() {
    let mut host = Host::new("crash");
    let port = free_udp_port();
    host.write(
        "config/instances/c.toml",
        &format!("port = {port}\nargs = [\"+standin_crash_after\", \"1\"]\n"),
    );
    let prepared = host.phase("prepare", "c");
    assert!(prepared.status.success(), "{}", stderr(&prepared));
    let notify = host.start_run("c");
    await_notify(&notify, "READY=1");
    assert_eq!(wait_run(&mut host), Some(128 + 11), "SIGSEGV is a failure");
}

#[test]
fn privileged_cleanup_finds_a_moved_mount_by_its_tag() {
    let host = Host::new("moved");
    host.write("config/instances/m.toml", "port = 27015\n");
    let prepared = host.phase("prepare", "m");
    assert!(prepared.status.success(), "{}", stderr(&prepared));
    // The old layout let the game user do this (runtime/ was its own); root simulates it.
    let moved = host.state.join("runtime.moved");
    std::fs::rename(host.state.join("runtime"), &moved).unwrap();
    let merged = moved.join("m/merged");
    assert_eq!(host.mounted_in_pid1(&merged), 1);

    let cleaned = host.phase("cleanup", "m");
    assert!(cleaned.status.success(), "{}", stderr(&cleaned));
    assert!(
        stderr(&cleaned).contains("found by its mount tag away from merged")
            && stderr(&cleaned).contains("runtime.moved/m/merged"),
        "cleanup must not say nothing was mounted: {}",
        stderr(&cleaned)
    );
    assert_eq!(host.mounted_in_pid1(&merged), 0, "the moved mount is gone");
}

#[test]
fn privileged_prepare_waits_for_the_instance_lock() {
    let host = Host::new("lock");
    host.write("config/instances/w.toml", "port = 27015\n");
    let lock = Lock::take(&host.admin().join("locks"), Subject::Instance("w"), false).unwrap();
    let mut prepare = host.supervisor("prepare", "w").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        prepare.try_wait().unwrap().is_none(),
        "prepare ran while the lock was held"
    );
    assert_eq!(host.mounted_in_pid1(&host.merged("w")), 0);
    drop(lock);
    let status = prepare.wait().unwrap();
    assert!(status.success(), "prepare after the lock was released");
    assert_eq!(host.mounted_in_pid1(&host.merged("w")), 1);
}

#[test]
fn privileged_missing_game_install_says_to_install_it() {
    let host = Host::new("nogame");
    host.write("config/instances/g.toml", "port = 27015\n");
    std::fs::remove_file(host.state.join("installation/srcds_run")).unwrap();
    let out = host.phase("prepare", "g");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the game is not installed") && stderr(&out).contains("installation"),
        "{}",
        stderr(&out)
    );
    assert_eq!(host.mounted_in_pid1(&host.merged("g")), 0);
}

#[test]
fn privileged_runtime_is_root_owned_and_the_game_user_cannot_move_it() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let host = Host::new("owner");
    host.write("config/instances/o.toml", "port = 27015\n");
    let prepared = host.phase("prepare", "o");
    assert!(prepared.status.success(), "{}", stderr(&prepared));
    for dir in ["runtime", "runtime/o"] {
        let meta = std::fs::metadata(host.state.join(dir)).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755), "{dir}");
    }
    let moved = std::process::Command::new("mv")
        .arg(host.state.join("runtime"))
        .arg(host.state.join("runtime.moved"))
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert!(!moved.status.success(), "the game user moved runtime/");
    let cleaned = host.phase("cleanup", "o");
    assert!(cleaned.status.success(), "{}", stderr(&cleaned));
    assert_eq!(host.mounted_in_pid1(&host.merged("o")), 0);
}

#[test]
fn privileged_a_state_dir_root_does_not_own_is_refused() {
    let host = Host::new("notroot");
    host.write("config/instances/n.toml", "port = 27015\n");
    std::os::unix::fs::chown(&host.state, Some(NOBODY), Some(NOBODY)).unwrap();
    for verb in ["prepare", "cleanup"] {
        let out = host.phase(verb, "n");
        assert!(
            !out.status.success(),
            "{verb} accepted a game-user-owned state dir"
        );
        assert!(
            stderr(&out).contains("systemd-tmpfiles"),
            "{verb}: {}",
            stderr(&out)
        );
    }
    assert_eq!(host.mounted_in_pid1(&host.merged("n")), 0);
    assert!(!host.state.join("runtime").exists(), "nothing created");
}
