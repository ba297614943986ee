//! End to end in a booted systemd (needs root): what happens when things break. A killed
//! supervisor or game is restarted by systemd with one overlay mount, not two; a hung game is
//! killed by the watchdog and restarted; a game that crashes on every start is given up on
//! after the start limit, and `left4mectl status` says so.

mod booted_support;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use booted_support::*;
use left4me_tests::{BootedSystem, require_root};

/// Waits until instance `name` is active again after its `restarts`-th automatic restart.
fn wait_restarted(sys: &BootedSystem, name: &str, restarts: u32) -> Result<()> {
    wait_for(
        sys,
        name,
        &format!("{name} active after restart {restarts}"),
        Duration::from_secs(30),
        || {
            let n: u32 = prop(sys, name, "NRestarts")?.parse()?;
            Ok((n >= restarts && state(sys, name)? == "active/running").then_some(()))
        },
    )
}

fn one_mount(sys: &BootedSystem, name: &str) -> Result<()> {
    let mounts = merged_mounts(sys, name)?;
    ensure!(
        mounts.len() == 1,
        "{name}: {} overlay mounts at merged: {mounts:?}",
        mounts.len()
    );
    Ok(())
}

#[test]
fn booted_killed_supervisor_or_game_is_restarted_with_one_mount() -> Result<()> {
    require_root();
    // The unit's own RestartSec=5.
    let sys = boot(builder("e2e-kill"))?;
    ctl_ok(&sys, &["create", "k1", "--port", "27030"])?;
    ctl_ok(&sys, &["start", "k1"])?;
    one_mount(&sys, "k1")?;

    // kill -9 of the supervisor (`run`, the main process): its game goes with the cgroup,
    // cleanup unmounts, systemd restarts after RestartSec.
    let supervisor = prop(&sys, "k1", "MainPID")?;
    let game = game_pid(&sys, "k1")?;
    let killed = Instant::now();
    sys.run_ok(["kill", "-KILL", &supervisor])?;
    wait_restarted(&sys, "k1", 1)?;
    let back = killed.elapsed();
    report(&format!(
        "kill -9 of the supervisor: active again after {back:.1?} (RestartSec=5)"
    ));
    ensure!(
        back >= Duration::from_secs(5),
        "restarted after {back:?}, before RestartSec=5"
    );
    ensure!(prop(&sys, "k1", "MainPID")? != supervisor);
    let old_game = sys.run(["cat", &format!("/proc/{game}/cmdline")])?;
    ensure!(
        !old_game.status.success() || game_pid(&sys, "k1")? == game,
        "the old game {game} outlived its supervisor"
    );
    one_mount(&sys, "k1")?;
    // The old mount was removed by cleanup and a new one made (mount ids are reused, so ask
    // the journal).
    let journal = sys.journal(Some(&unit("k1")));
    for needle in [
        "Main process exited, code=killed, status=9/KILL",
        "k1: unmounted /var/lib/left4me/runtime/k1/merged (1 mount)",
    ] {
        ensure!(journal.contains(needle), "no {needle:?} in:\n{journal}");
    }
    ensure!(
        journal.matches("k1: mounted ").count() == 2,
        "not mounted twice:\n{journal}"
    );

    // kill -9 of the game: the supervisor exits with 128+9, systemd restarts the unit.
    let game = game_pid(&sys, "k1")?;
    sys.run_ok(["kill", "-KILL", &game])?;
    wait_restarted(&sys, "k1", 2)?;
    eprintln!("k1 active again after kill -9 of the game {game}");
    one_mount(&sys, "k1")?;
    let journal = sys.journal(Some(&unit("k1")));
    ensure!(
        journal.contains("srcds was killed by signal 9"),
        "{journal}"
    );
    let status = ctl_ok(&sys, &["status", "k1"])?;
    ensure!(status.contains("restarts   2\n"), "{status}");

    finish(sys, &["k1"])
}

#[test]
fn booted_watchdog_restarts_a_hung_game_and_the_start_limit_ends_a_crash_loop() -> Result<()> {
    require_root();
    let (path, text) = FAST_RESTART;
    let sys = boot(builder("e2e-faults").with_file(path, text))?;

    // A game that stops answering queries 2 s after it started: the supervisor stops feeding
    // the 3 s watchdog, systemd kills and restarts the unit.
    ctl_ok(&sys, &["create", "hung", "--port", "27040"])?;
    ctl_ok(
        &sys,
        &[
            "set",
            "hung",
            r#"args=["+standin_hang_after", "2"]"#,
            "health.watchdog=3s",
        ],
    )?;
    ctl_ok(&sys, &["start", "hung"])?;
    ensure!(prop(&sys, "hung", "WatchdogUSec")? == "3s");
    let started = Instant::now();
    wait_restarted(&sys, "hung", 1)?;
    report(&format!(
        "hung game (hangs 2 s after start, WatchdogSec=3s): active again after {:.1?}",
        started.elapsed()
    ));
    let journal = sys.journal(Some(&unit("hung")));
    for needle in [
        "srcds stopped answering queries",
        "Watchdog timeout",
        "Failed with result 'watchdog'",
    ] {
        ensure!(journal.contains(needle), "no {needle:?} in:\n{journal}");
    }
    one_mount(&sys, "hung")?;
    ctl_ok(&sys, &["stop", "hung"])?;

    // A game that crashes 0.2 s into every start, before it ever answers: `start` fails and
    // says why; systemd retries until the start limit (5 starts in 60 s) stops it.
    ctl_ok(&sys, &["create", "crashy", "--port", "27041"])?;
    ctl_ok(
        &sys,
        &[
            "set",
            "crashy",
            r#"args=["+standin_start_delay", "1", "+standin_crash_after", "0.2"]"#,
        ],
    )?;
    let out = ctl_status(&sys, &["start", "crashy"], 1)?;
    eprintln!("{out}");
    for needle in [
        "crashy did not start: activating (auto-restart)",
        "status: srcds was killed by signal 11",
        "main process: exited with status 139",
        "crash: raising SIGSEGV",
        "error: 1 of 1 instances did not start",
    ] {
        ensure!(out.contains(needle), "no {needle:?} in:\n{out}");
    }
    wait_for(
        &sys,
        "crashy",
        "crashy given up on",
        Duration::from_secs(40),
        || Ok((state(&sys, "crashy")? == "failed/failed").then_some(())),
    )?;
    let status = ctl_ok(&sys, &["status", "crashy"])?;
    eprintln!("{status}");
    ensure!(
        status.contains("state      failed (exit-code)")
            && status
                .contains("result     start-limit-hit: systemd gave up after 5 starts within 1min")
            && status.contains("last exit  exited with status 139"),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ctl_ok(&sys, &["status", "crashy", "--json"])?)?;
    ensure!(
        json["start_limit_hit"] == true && json["active_state"] == "failed",
        "{json}"
    );
    ensure!(merged_mounts(&sys, "crashy")?.is_empty());

    // An explicit start is a fresh try (and fails the same way).
    let again = ctl_status(&sys, &["start", "crashy"], 1)?;
    ensure!(again.contains("crashy did not start"), "{again}");

    finish(sys, &["crashy"])
}
