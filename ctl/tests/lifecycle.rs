//! The lifecycle verbs against a fake `systemctl`, `journalctl` and supervisor on PATH: which
//! calls they make (one `systemctl` call for many units), what they print, their exit statuses.
//! The real proof is the booted-systemd suite (`tests/tests/booted_*.rs`).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use common::{Fixture, Run};

/// `systemctl`: logs its arguments to `fake/calls`; `show` prints each unit's block from
/// `fake/<unit>` (default: inactive, disabled, with the generator's drop-in); `enable --now`
/// and `restart` copy `fake/after-start` over the unit's block, `disable --now` and `stop`
/// `fake/after-stop`; exits with the status in `fake/exit-VERB` (default 0).
const SYSTEMCTL: &str = r#"#!/bin/sh
echo "systemctl $*" >> "$FAKE/calls"
verb=$1
for arg; do
    case "$arg" in *.service) ;; *) continue ;; esac
    case "$verb" in
    show)
        case "$arg" in *'*'*)
            # A pattern shows the loaded units: those with a block in fake/.
            for f in "$FAKE"/left4me-server@*.service; do
                [ -f "$f" ] && { echo "Id=${f##*/}"; cat "$f"; echo; }
            done
            continue ;;
        esac
        echo "Id=$arg"
        if [ -f "$FAKE/$arg" ]; then cat "$FAKE/$arg"; else
            printf 'LoadState=loaded\nActiveState=inactive\nSubState=dead\nResult=success\n'
            printf 'UnitFileState=disabled\nStartLimitBurst=5\nStartLimitIntervalUSec=1min\n'
            printf 'DropInPaths=/run/systemd/generator/%s.d/50-left4me.conf\n' "$arg"
        fi
        echo ;;
    enable|restart) [ -f "$FAKE/after-start" ] && cp "$FAKE/after-start" "$FAKE/$arg" ;;
    disable|stop) [ -f "$FAKE/after-stop" ] && cp "$FAKE/after-stop" "$FAKE/$arg" ;;
    esac
done
[ -f "$FAKE/exit-$verb" ] && exit "$(cat "$FAKE/exit-$verb")"
exit 0
"#;

const JOURNALCTL: &str = r#"#!/bin/sh
echo "journalctl $*" >> "$FAKE/calls"
echo "2026-11-21T23:43:01+0000 host left4me-supervisor[278]: left4me-supervisor: srcds was killed by signal 11"
echo "2026-11-21T23:43:01+0000 host systemd[1]: left4me-server@coop1.service: Failed with result 'exit-code'."
"#;

const SUPERVISOR: &str = r#"#!/bin/sh
echo "supervisor $*" >> "$FAKE/calls"
echo "left4me-supervisor: $2: nothing mounted" >&2
"#;

const ACTIVE: &str = "LoadState=loaded\nActiveState=active\nSubState=running\nResult=success\n\
    StatusText=c2m1_highway, 0/4 players — Coop #1\nMainPID=187\nMemoryCurrent=974848\n\
    StateChangeTimestamp=@1795304571\nNRestarts=0\nUnitFileState=enabled\n\
    StartLimitBurst=5\nStartLimitIntervalUSec=1min\n\
    DropInPaths=/run/systemd/generator/x.d/50-left4me.conf\n";

const CRASHED: &str = "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\n\
    Result=exit-code\nStatusText=srcds was killed by signal 11\nMainPID=0\n\
    ExecMainExitTimestamp=@1795304581\nExecMainCode=1\nExecMainStatus=139\nNRestarts=1\n\
    UnitFileState=enabled\nStartLimitBurst=5\nStartLimitIntervalUSec=1min\n\
    DropInPaths=/run/systemd/generator/x.d/50-left4me.conf\n";

const STOPPED: &str = "LoadState=loaded\nActiveState=inactive\nSubState=dead\nResult=success\n\
    UnitFileState=disabled\nDropInPaths=/run/systemd/generator/x.d/50-left4me.conf\n";

/// The standard fixture with the fakes in `fake/` and on PATH.
struct Fakes {
    fx: Fixture,
}

impl Fakes {
    fn new() -> Self {
        let fx = Fixture::standard();
        fs::create_dir_all(fx.path("fake")).unwrap();
        for (name, body) in [
            ("systemctl", SYSTEMCTL),
            ("journalctl", JOURNALCTL),
            ("left4me-supervisor", SUPERVISOR),
        ] {
            let path = fx.path("fake").join(name);
            fs::write(&path, body).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fakes { fx }
    }

    fn fake(&self) -> PathBuf {
        self.fx.path("fake")
    }

    fn set(&self, file: &str, text: &str) {
        fs::write(self.fake().join(file), text).unwrap();
    }

    fn run(&self, args: &[&str]) -> Run {
        let path = format!(
            "{}:{}",
            self.fake().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = self
            .fx
            .command(args)
            .env("PATH", path)
            .env("FAKE", self.fake())
            .env("LEFT4ME_SUPERVISOR", self.fake().join("left4me-supervisor"))
            .output()
            .unwrap();
        Run::from(output, &self.fx)
    }

    /// The calls made, `systemctl show` shortened to `systemctl show UNITS`.
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.fake().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(|line| match line.split_once(" -p ") {
                Some((head, rest)) => {
                    format!("{head} -p …{}", rest.find(' ').map_or("", |i| &rest[i..]))
                }
                None => line.to_owned(),
            })
            .collect()
    }
}

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
fn delete_removes_runtime_and_spec() {
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
    let calls = f.calls();
    assert!(
        calls.contains(
            &"systemctl disable --now --no-reload left4me-server@coop1.service".to_owned()
        ) && calls.contains(&"supervisor cleanup coop1".to_owned()),
        "{calls:#?}"
    );
    let run = f.run(&["delete", "coop1", "--yes"]);
    run.assert_refused("no instance 'coop1'");
}

#[test]
fn reset_keeps_the_spec() {
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
    assert!(
        f.calls()
            .contains(&"systemctl stop left4me-server@coop1.service".to_owned())
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
