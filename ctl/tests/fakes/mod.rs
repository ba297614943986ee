//! A fake `systemctl`, `journalctl` and supervisor on PATH for the lifecycle verbs, recording
//! every call they get.

#![allow(dead_code)] // each test file uses a different part

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use crate::common::{Fixture, Run};

/// `systemctl`: logs its arguments to `fake/calls`; `show` prints each unit's block from
/// `fake/<unit>` (default: inactive, disabled, with the generator's drop-in); `enable --now`
/// and `restart` copy `fake/after-start` over the unit's block, `disable --now` and `stop`
/// `fake/after-stop`; exits with the status in `fake/exit-VERB` (default 0).
pub const SYSTEMCTL: &str = r#"#!/bin/sh
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

pub const JOURNALCTL: &str = r#"#!/bin/sh
echo "journalctl $*" >> "$FAKE/calls"
echo "2026-11-21T23:43:01+0000 host left4me-supervisor[278]: left4me-supervisor: srcds was killed by signal 11"
echo "2026-11-21T23:43:01+0000 host systemd[1]: left4me-server@coop1.service: Failed with result 'exit-code'."
"#;

pub const SUPERVISOR: &str = r#"#!/bin/sh
echo "supervisor $*" >> "$FAKE/calls"
echo "left4me-supervisor: $2: nothing mounted" >&2
"#;

pub const ACTIVE: &str = "LoadState=loaded\nActiveState=active\nSubState=running\nResult=success\n\
    StatusText=c2m1_highway, 0/4 players — Coop #1\nMainPID=187\nMemoryCurrent=974848\n\
    StateChangeTimestamp=@1795304571\nNRestarts=0\nUnitFileState=enabled\n\
    StartLimitBurst=5\nStartLimitIntervalUSec=1min\n\
    DropInPaths=/run/systemd/generator/x.d/50-left4me.conf\n";

pub const CRASHED: &str = "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\n\
    Result=exit-code\nStatusText=srcds was killed by signal 11\nMainPID=0\n\
    ExecMainExitTimestamp=@1795304581\nExecMainCode=1\nExecMainStatus=139\nNRestarts=1\n\
    UnitFileState=enabled\nStartLimitBurst=5\nStartLimitIntervalUSec=1min\n\
    DropInPaths=/run/systemd/generator/x.d/50-left4me.conf\n";

pub const STOPPED: &str = "LoadState=loaded\nActiveState=inactive\nSubState=dead\nResult=success\n\
    UnitFileState=disabled\nDropInPaths=/run/systemd/generator/x.d/50-left4me.conf\n";

/// The standard fixture with the fakes in `fake/` and on PATH.
pub struct Fakes {
    pub fx: Fixture,
}

impl Fakes {
    pub fn new() -> Self {
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

    pub fn fake(&self) -> PathBuf {
        self.fx.path("fake")
    }

    pub fn set(&self, file: &str, text: &str) {
        fs::write(self.fake().join(file), text).unwrap();
    }

    /// `left4mectl ARGS…` with the fakes on PATH.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let path = format!(
            "{}:{}",
            self.fake().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = self.fx.command(args);
        command
            .env("PATH", path)
            .env("FAKE", self.fake())
            .env("LEFT4ME_SUPERVISOR", self.fake().join("left4me-supervisor"));
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap(), &self.fx)
    }

    /// The calls made, `systemctl show` shortened to `systemctl show UNITS`.
    pub fn calls(&self) -> Vec<String> {
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
