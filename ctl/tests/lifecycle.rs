//! The lifecycle verbs against a fake `systemctl`, `journalctl` and supervisor on PATH: which
//! calls they make (one `systemctl` call for many units), what they print, their exit statuses.
//! The real proof is the booted-systemd suite (`tests/tests/booted_*.rs`).

mod common;
mod fakes;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use fakes::{ACTIVE, CRASHED, Fakes, STOPPED};

#[test]
fn start_enables_waits_and_reports_the_status() {
    let f = Fakes::new();
    f.set("after-start", ACTIVE);
    let run = f.run(&["start", "coop1"]);
    run.assert_ok();
    assert!(
        run.stdout.starts_with("started coop1 in ")
            && run
                .stdout
                .contains("s: c2m1_highway, 0/4 players — Coop #1\n")
            && run.stdout.ends_with("enabled coop1: it starts at boot\n"),
        "{run:#?}"
    );
    assert_eq!(
        f.calls(),
        [
            "systemctl show --timestamp=unix -p … left4me-server@coop1.service",
            "systemctl enable --now --no-reload left4me-server@coop1.service",
            "systemctl show --timestamp=unix -p … left4me-server@coop1.service",
        ]
    );
}

#[test]
fn start_of_many_is_one_systemctl_call() {
    let f = Fakes::new();
    f.set("after-start", ACTIVE);
    f.run(&["start", "coop1", "vs1"]).assert_ok();
    let calls = f.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(
        calls[1],
        "systemctl enable --now --no-reload left4me-server@coop1.service left4me-server@vs1.service"
    );
}

#[test]
fn a_failed_start_says_why_and_exits_1() {
    let f = Fakes::new();
    f.set("after-start", CRASHED);
    f.set("exit-enable", "1");
    let run = f.run(&["start", "coop1"]);
    assert_eq!(run.status, 1, "{run:#?}");
    for needle in [
        "coop1 did not start: activating (auto-restart)\n",
        "  status: srcds was killed by signal 11\n",
        "  main process: exited with status 139\n",
        "  systemd restarts it by itself (that was start 2 of at most 5 within 1min)\n",
        "left4me-supervisor: srcds was killed by signal 11\n",
        "error: 1 of 1 instances did not start (see above)\n",
    ] {
        assert!(run.stderr.contains(needle), "want {needle:?}: {run:#?}");
    }
    assert!(
        f.calls()
            .iter()
            .any(|c| c.starts_with("journalctl --no-pager --quiet --output=short-iso -u left4me-server@coop1.service --since @")),
        "{:#?}",
        f.calls()
    );
}

#[test]
fn start_refuses_an_invalid_spec_without_calling_systemd() {
    let f = Fakes::new();
    f.fx.write("etc/instances/dup.toml", "port = 27015\n");
    let run = f.run(&["start", "dup"]);
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(
        run.stderr.contains("not starting dup: its spec is invalid")
            && run
                .stderr
                .contains("27015 is already used by instance 'coop1'"),
        "{run:#?}"
    );
    let run = f.run(&["start", "coop1", "nosuch", "dup"]);
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("2 of the instances cannot be started, so none was"),
        "{run:#?}"
    );
    assert!(f.calls().is_empty(), "{:#?}", f.calls());
}

#[test]
fn start_reloads_systemd_when_it_has_not_read_the_spec() {
    let f = Fakes::new();
    f.set(
        "left4me-server@coop1.service",
        "LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nDropInPaths=\n",
    );
    f.set("after-start", ACTIVE);
    let run = f.run(&["start", "coop1"]);
    run.assert_ok();
    assert!(
        run.stderr.contains(
            "reloaded systemd (systemctl daemon-reload): it had not read the current spec of coop1"
        ),
        "{run:#?}"
    );
    let calls = f.calls();
    assert_eq!(calls[1], "systemctl daemon-reload", "{calls:#?}");
    assert_eq!(
        calls[2],
        "systemctl reset-failed left4me-server@coop1.service"
    );
    assert_eq!(
        calls[3],
        "systemctl enable --now --no-reload left4me-server@coop1.service"
    );
}

#[test]
fn stop_disables_all_in_one_call() {
    let f = Fakes::new();
    f.set("left4me-server@coop1.service", ACTIVE);
    f.set("after-stop", STOPPED);
    let run = f.run(&["stop", "coop1", "vs1"]);
    run.assert_ok();
    assert_eq!(
        run.stdout,
        "stopped coop1; disabled: it no longer starts at boot\nvs1 was not running\n"
    );
    assert_eq!(
        f.calls()[1],
        "systemctl disable --now --no-reload left4me-server@coop1.service left4me-server@vs1.service"
    );
}

#[test]
fn delete_needs_a_terminal_or_yes() {
    let f = Fakes::new();
    let before = f.fx.tree();
    let run = f.run(&["delete", "coop1"]);
    run.assert_refused(
        "not deleting coop1 without confirmation: stdin is not a terminal; pass --yes",
    );
    assert_eq!(f.fx.tree(), before);
    assert!(f.calls().is_empty());
}

#[test]
fn privileged_delete_removes_runtime_and_spec() {
    common::require_root();
    let f = Fakes::new();
    f.set("left4me-server@coop1.service", ACTIVE);
    f.set("after-stop", STOPPED);
    f.fx.write("state/runtime/coop1/upper/left4dead2/standin.log", "log\n");
    let run = f.run(&["delete", "coop1", "--yes"]);
    run.assert_ok();
    assert_eq!(
        run.stdout,
        "deleted coop1: stopped, disabled, nothing mounted, removed [ROOT]/state/runtime/coop1, \
         removed [ROOT]/etc/instances/coop1.toml\n\
         not reloading systemd (--no-reload); run `systemctl daemon-reload` to apply the change\n"
    );
    assert!(!f.fx.path("state/runtime/coop1").exists());
    assert!(!f.fx.path("etc/instances/coop1.toml").exists());
    assert!(f.fx.path("etc/instances/vs1.toml").exists());
    assert_eq!(
        removal_calls(&f),
        [
            "systemctl disable --no-reload left4me-server@coop1.service",
            "systemctl stop left4me-server@coop1.service",
            "systemctl mask --runtime left4me-server@coop1.service",
            "systemctl stop left4me-server@coop1.service",
            "supervisor cleanup coop1",
            "systemctl unmask --runtime left4me-server@coop1.service",
        ]
    );
    let run = f.run(&["delete", "coop1", "--yes"]);
    run.assert_refused("no instance 'coop1'");
}

#[test]
fn privileged_reset_keeps_the_spec() {
    common::require_root();
    let f = Fakes::new();
    f.fx.write("state/runtime/coop1/upper/left4dead2/standin.log", "log\n");
    let run = f.run(&["reset", "coop1"]);
    run.assert_ok();
    assert_eq!(
        run.stdout,
        "reset coop1: nothing mounted, removed [ROOT]/state/runtime/coop1\n\
         the spec is kept; `left4mectl start coop1` starts it from scratch\n"
    );
    assert!(!f.fx.path("state/runtime/coop1").exists());
    assert!(f.fx.path("etc/instances/coop1.toml").exists());
    assert_eq!(removal_calls(&f), RESET_CALLS);
}

/// What `reset coop1` asks for: the unit's own stop, starts blocked, a second stop for a start
/// that came in between, the unmount, starts allowed again (also after a failure).
const RESET_CALLS: [&str; 5] = [
    "systemctl stop left4me-server@coop1.service",
    "systemctl mask --runtime left4me-server@coop1.service",
    "systemctl stop left4me-server@coop1.service",
    "supervisor cleanup coop1",
    "systemctl unmask --runtime left4me-server@coop1.service",
];

/// The calls that change something, in order (without `systemctl show`).
fn removal_calls(f: &Fakes) -> Vec<String> {
    f.calls()
        .into_iter()
        .filter(|c| !c.starts_with("systemctl show"))
        .collect()
}

#[test]
fn privileged_a_failed_reset_lets_the_unit_start_again() {
    common::require_root();
    let f = Fakes::new();
    f.fx.write("state/runtime/coop1/upper/left4dead2/standin.log", "log\n");
    // A state dir others may write breaks the ownership rule: reset refuses to work in it.
    fs::set_permissions(f.fx.path("state"), fs::Permissions::from_mode(0o777)).unwrap();
    let run = f.run(&["reset", "coop1"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(
        run.stderr.contains("not removing [ROOT]/state/runtime/coop1: [ROOT]/state is writable by group or others (mode 0777)"),
        "{run:#?}"
    );
    assert!(f.fx.path("state/runtime/coop1/upper").is_dir());
    assert_eq!(removal_calls(&f), RESET_CALLS);
}

#[test]
fn privileged_reset_leaves_a_unit_masked_by_the_operator_masked() {
    common::require_root();
    let f = Fakes::new();
    f.set(
        "left4me-server@coop1.service",
        "LoadState=masked\nActiveState=inactive\nSubState=dead\nResult=success\n\
         UnitFileState=masked-runtime\n",
    );
    f.run(&["reset", "coop1"]).assert_ok();
    assert_eq!(
        removal_calls(&f),
        [
            "systemctl stop left4me-server@coop1.service",
            "systemctl stop left4me-server@coop1.service",
            "supervisor cleanup coop1"
        ]
    );
}

#[test]
fn status_shows_the_live_state() {
    let f = Fakes::new();
    f.set("left4me-server@coop1.service", ACTIVE);
    let run = f.run(&["status", "coop1"]);
    run.assert_ok();
    for needle in [
        "instance   coop1 ([ROOT]/etc/instances/coop1.toml)\n",
        "spec       ok\n",
        "unit       left4me-server@coop1.service, enabled (starts at boot)\n",
        "state      active (running) since 2026-11-21 23:42:51 UTC (",
        "status     c2m1_highway, 0/4 players — Coop #1\n",
        "main pid   187\n",
        "memory     952.0K\n",
        "result     success\n",
        "journal (last 10 lines; all of it: `left4mectl logs coop1`):\n",
    ] {
        assert!(run.stdout.contains(needle), "want {needle:?}: {run:#?}");
    }
    let run = f.run(&["status", "coop1", "--json"]);
    run.assert_ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["active_state"], "active");
    assert_eq!(json["state"], "active (running)");
    assert_eq!(json["status_text"], "c2m1_highway, 0/4 players — Coop #1");
    assert_eq!(json["main_pid"], 187);
    assert_eq!(json["enabled"], true);
    assert_eq!(json["start_limit_hit"], false);
    assert_eq!(json["spec_ok"], true);
    assert_eq!(json["journal"].as_array().unwrap().len(), 2);
}

#[test]
fn status_of_a_bad_spec_says_what_is_wrong() {
    let f = Fakes::new();
    f.fx.write("etc/instances/dup.toml", "port = 27015\n");
    let run = f.run(&["status", "dup"]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("spec       error: key 'port': 27015 is already used"),
        "{run:#?}"
    );
    f.run(&["status", "nosuch"])
        .assert_refused("no instance 'nosuch'");
    f.run(&["status", "Bad"]).assert_refused("instance name");
}

#[test]
fn logs_is_journalctl() {
    let f = Fakes::new();
    let run = f.run(&["logs", "coop1", "-n", "5"]);
    run.assert_ok();
    assert_eq!(
        f.calls(),
        ["journalctl -u left4me-server@coop1.service --lines=5"]
    );
}

#[test]
fn privileged_reset_waits_for_the_instance_lock_that_prepare_holds() {
    common::require_root();
    let f = Fakes::new();
    f.fx.write("state/runtime/coop1/upper/left4dead2/standin.log", "log\n");
    // A prepare of coop1 holds the lock.
    let prepare = left4me_statedir::Lock::take(
        &f.fx.path("admin/locks"),
        left4me_statedir::Subject::Instance("coop1"),
        false,
    )
    .unwrap();
    let reset = f
        .command(&["reset", "coop1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        f.fx.path("state/runtime/coop1/upper").is_dir(),
        "reset removed the runtime dir while prepare held the instance lock"
    );
    drop(prepare);
    let run = common::Run::from(reset.wait_with_output().unwrap(), &f.fx);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("waiting for instance coop1: another left4me process is working on it"),
        "{run:#?}"
    );
    assert!(!f.fx.path("state/runtime/coop1").exists());
}

/// A published game version 100 (by hand, as `left4mectl game install` leaves it).
fn publish_version(f: &Fakes, id: &str) {
    f.fx.write(
        &format!("state/game/versions/{id}/version.toml"),
        "build_id = 100\nbranch = \"public\"\ncreated = 1795304571\nbytes = 3\nhow = \"install\"\n",
    );
    fs::create_dir_all(f.fx.path(&format!("state/game/versions/{id}/tree"))).unwrap();
    f.fx.write("state/game/current", &format!("{id}\n"));
}

#[test]
fn status_and_list_show_the_game_version_and_a_pending_update() {
    let f = Fakes::new();
    f.set("left4me-server@coop1.service", ACTIVE);
    // Running on installation/ (nothing of it mounted here), a version now current: a restart
    // moves it.
    publish_version(&f, "100");
    let run = f.run(&["status", "coop1"]);
    run.assert_ok();
    assert!(
        run.stdout.contains(
            "game       installation/; update pending: a restart moves it to game version 100 \
             (`left4mectl restart coop1`)\n"
        ),
        "{run:#?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&f.run(&["status", "coop1", "--json"]).stdout).unwrap();
    assert_eq!(json["game_version"], serde_json::Value::Null);
    assert_eq!(json["game_version_next"], "100");
    assert_eq!(json["update_pending"], true);

    // Stopped: nothing is pending; the line says what a start mounts.
    f.set("left4me-server@coop1.service", STOPPED);
    let run = f.run(&["status", "coop1"]);
    assert!(
        run.stdout
            .contains("game       - (not running; a start mounts game version 100)\n"),
        "{run:#?}"
    );
    let rows: serde_json::Value = serde_json::from_str(&f.run(&["list", "--json"]).stdout).unwrap();
    let coop1 = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "coop1")
        .unwrap();
    assert_eq!(coop1["game_version_next"], "100");
    assert_eq!(coop1["update_pending"], false);

    // A pin naming no version is shown as the error it will be at start.
    f.run(&["set", "coop1", "game_version=999"]).assert_ok();
    let run = f.run(&["status", "coop1"]);
    assert!(
        run.stdout
            .contains("game       error: game version 999 does not exist"),
        "{run:#?}"
    );
    let run = f.run(&["render", "coop1"]);
    run.assert_ok();
    assert!(
        run.stdout.contains(
            "=== overlay lowerdir stack, topmost first; game: error: game version 999 does not exist"
        ),
        "{run:#?}"
    );
}

#[test]
fn render_stacks_the_current_or_pinned_version() {
    let f = Fakes::new();
    publish_version(&f, "100");
    let run = f.run(&["render", "vs1"]);
    run.assert_ok();
    assert!(
        run.stdout.contains(
            "=== overlay lowerdir stack, topmost first; game: game version 100 (current) ===\n\
             [ROOT]/state/game/versions/100/tree\n"
        ),
        "{run:#?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&f.run(&["render", "vs1", "--json"]).stdout).unwrap();
    assert_eq!(json["game_version"], "100");
    assert_eq!(json["game_version_pinned"], false);
    let run = f.run(&["set", "vs1", "game_version=100"]);
    run.assert_ok();
    let run = f.run(&["show", "vs1"]);
    assert!(run.stdout.contains("game_version   100\n"), "{run:#?}");
    let run = f.run(&["render", "vs1"]);
    assert!(
        run.stdout
            .contains("game: game version 100, pinned by game_version ==="),
        "{run:#?}"
    );
}
