//! Restarts and stops that wait for the players to leave, end to end in a booted systemd (needs
//! root; issue 11, DESIGN §10: "when empty" means the A2S player count is 0).
//!
//! Two instances of the stand-in game; players come and go through its control file
//! (`<game>/standin.control`, `players N`), written through the instance's mounted tree.
//! `players` and `list` show them; `restart --when-empty` waits while 2 players are on and
//! restarts once the last leaves (the delay from the control file's change to the unit leaving
//! `active` is reported, not asserted: no timing thresholds in tests); `--max-wait --or-skip`
//! leaves a busy instance running (exit 4); `stop --when-empty` stops once it is empty;
//! `restart --if-running` leaves a stopped instance alone.

mod booted_support;

use std::process::Stdio;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use booted_support::*;
use left4me_tests::{BootedSystem, require_root};

const INSTANCES: [(&str, u16); 2] = [("coop1", 27015), ("coop2", 27016)];

/// CLOCK_MONOTONIC now, in microseconds: the clock of systemd's `…TimestampMonotonic`
/// properties (the booted system has no time namespace of its own).
fn monotonic_us() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

/// Writes the stand-in's control file of `name`; returns the monotonic time of the write.
fn control(sys: &BootedSystem, name: &str, text: &str) -> Result<u64> {
    standin_control(sys, name, text)?;
    Ok(monotonic_us())
}

/// `players N`: N anonymous players.
fn set_players(sys: &BootedSystem, name: &str, players: u8) -> Result<u64> {
    control(sys, name, &format!("players {players}\n"))
}

/// When systemd last began to stop `name` (its `Stopping …` journal entry), CLOCK_MONOTONIC
/// microseconds. (A stopped and disabled instance's unit is unloaded, so its
/// `ActiveExitTimestampMonotonic` is gone.)
fn stopping_at(sys: &BootedSystem, name: &str) -> Result<u64> {
    let out = sys.run_stdout([
        "journalctl",
        "-u",
        &unit(name),
        "-o",
        "json",
        "--output-fields=MESSAGE",
    ])?;
    let mut last = None;
    for line in out.lines() {
        let entry: serde_json::Value = serde_json::from_str(line)?;
        if entry["MESSAGE"]
            .as_str()
            .is_some_and(|m| m.starts_with("Stopping "))
        {
            last = entry["__MONOTONIC_TIMESTAMP"].as_str().map(str::to_owned);
        }
    }
    Ok(last
        .with_context(|| format!("no `Stopping` entry in {name}'s journal"))?
        .parse()?)
}

/// Waits until `players NAME --json` lists `n` players (the stand-in reads its control file
/// every 200 ms).
fn await_players(sys: &BootedSystem, name: &str, n: usize) -> Result<()> {
    wait_for(
        sys,
        name,
        &format!("{name} to have {n} players"),
        Duration::from_secs(10),
        || {
            let out = ctl(sys, &["players", name, "--json"])?;
            let listed: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            // The stand-in has no bots unless told.
            let humans = listed.as_array().map_or(usize::MAX, Vec::len);
            Ok((humans == n).then_some(()))
        },
    )
}

#[test]
fn booted_restart_and_stop_wait_until_the_server_is_empty() -> Result<()> {
    require_root();
    let sys = boot(builder("when-empty"))?;
    for (name, port) in INSTANCES {
        ctl_ok(&sys, &["create", name, "--port", &port.to_string()])?;
    }
    ctl_ok(&sys, &["start", "coop1", "coop2"])?;

    // `players` and `list` see the stand-in's players.
    control(&sys, "coop1", "player Ellis 12\nplayer Francis the Fan\n")?;
    await_players(&sys, "coop1", 2)?;
    let out = ctl_ok(&sys, &["players", "coop1"])?;
    report(&format!("players:\n{}", out.trim_end()));
    ensure!(
        out.lines()
            .any(|l| l.starts_with("Ellis ") && l.contains(" 12 ") && l.contains(" 0:00:"))
            && out.lines().any(|l| l.starts_with("Francis the Fan "))
            && out.contains("2 human player(s), 0 bot(s), 8 max"),
        "players coop1:\n{out}"
    );
    let listed: serde_json::Value =
        serde_json::from_slice(&ctl(&sys, &["players", "coop1", "--json"])?.stdout)?;
    ensure!(
        listed[0]["name"] == "Ellis" && listed[0]["score"] == 12 && listed[0]["seconds"].is_u64(),
        "players --json: {listed}"
    );
    let list = ctl_ok(&sys, &["list"])?;
    ensure!(
        list.lines()
            .any(|l| l.starts_with("coop1") && l.contains(" 2/8 ")),
        "list does not show coop1's 2 of 8 players:\n{list}"
    );
    let rows: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(
        &ctl(&sys, &["list", "--json"])?.stdout,
    ))?;
    ensure!(
        rows[0]["players"] == 2 && rows[0]["max_players"] == 8 && rows[1]["players"] == 0,
        "list --json: {rows}"
    );

    // restart --when-empty waits while 2 players are on, restarts once the last leaves.
    let pid_before = prop(&sys, "coop1", "MainPID")?;
    let waiting = sys
        .command(["left4mectl", "restart", "coop1", "--when-empty"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    thread::sleep(Duration::from_secs(3));
    ensure!(
        prop(&sys, "coop1", "MainPID")? == pid_before && state(&sys, "coop1")? == "active/running",
        "coop1 was restarted with 2 players on it"
    );
    let left_at = set_players(&sys, "coop1", 0)?;
    let out = waiting.wait_with_output()?;
    ensure!(
        out.status.success(),
        "restart --when-empty failed ({}):\n{}",
        out.status,
        text(&out)
    );
    let stopped_at: u64 = prop(&sys, "coop1", "ActiveExitTimestampMonotonic")?
        .trim()
        .parse()?;
    ensure!(
        stopped_at > left_at,
        "coop1 left `active` at {stopped_at} µs, before its players left at {left_at} µs"
    );
    ensure!(
        prop(&sys, "coop1", "MainPID")? != pid_before,
        "coop1 was not restarted"
    );
    report(&format!(
        "restart --when-empty: the restart began {:.0} ms after the control file said 0 players \
         (the stand-in reads it every 200 ms); it printed:\n{}",
        (stopped_at - left_at) as f64 / 1000.0,
        text(&out).trim_end()
    ));
    ensure!(
        text(&out).contains("coop1: 2 players, waiting"),
        "restart --when-empty did not say it waited:\n{}",
        text(&out)
    );

    // --max-wait with --or-skip: still busy after it, left running, exit status 4.
    set_players(&sys, "coop1", 1)?;
    await_players(&sys, "coop1", 1)?;
    let pid_before = prop(&sys, "coop1", "MainPID")?;
    let out = ctl_status(
        &sys,
        &[
            "restart",
            "coop1",
            "--when-empty",
            "--max-wait",
            "2s",
            "--or-skip",
        ],
        4,
    )?;
    ensure!(
        out.contains("coop1: 1 player after --max-wait: not restarted (--or-skip)"),
        "{out}"
    );
    ensure!(
        prop(&sys, "coop1", "MainPID")? == pid_before,
        "--or-skip restarted coop1"
    );

    // --announce, and --max-wait then act anyway: said twice over RCON, exit status 3.
    let out = ctl_status(
        &sys,
        &[
            "restart",
            "coop1",
            "--when-empty",
            "--max-wait",
            "2s",
            "--announce",
            "Restart now; sorry",
        ],
        3,
    )?;
    ensure!(
        out.contains("coop1: announced\n")
            && out.contains("coop1: announced again\n")
            && out.contains("coop1: restarted after --max-wait although players were still on it"),
        "{out}"
    );
    // As srcds logs a console `say`; the `;` stayed inside the quoted text.
    let journal = sys.journal(Some(&unit("coop1")));
    let said = journal
        .matches(r#"<Console>" say "Restart now; sorry""#)
        .count();
    ensure!(
        said == 2,
        "the stand-in logged the announcement {said} times, not 2:\n{journal}"
    );

    // stop --when-empty: waits for coop2's player, then stops (and disables) it.
    set_players(&sys, "coop2", 1)?;
    await_players(&sys, "coop2", 1)?;
    let waiting = sys
        .command(["left4mectl", "stop", "coop2", "--when-empty"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    thread::sleep(Duration::from_secs(2));
    ensure!(
        state(&sys, "coop2")? == "active/running",
        "coop2 was stopped with a player on it"
    );
    let left_at = set_players(&sys, "coop2", 0)?;
    let out = waiting.wait_with_output()?;
    ensure!(
        out.status.success(),
        "stop --when-empty failed:\n{}",
        text(&out)
    );
    ensure!(
        state(&sys, "coop2")? == "inactive/dead",
        "coop2 is {}",
        state(&sys, "coop2")?
    );
    let stopped_at = stopping_at(&sys, "coop2")?;
    ensure!(stopped_at > left_at, "coop2 stopped before its player left");
    report(&format!(
        "stop --when-empty: the stop began {:.0} ms after the control file said 0 players",
        (stopped_at - left_at) as f64 / 1000.0
    ));

    // --if-running leaves the stopped coop2 alone.
    let out = ctl_ok(&sys, &["restart", "coop2", "--if-running", "--when-empty"])?;
    ensure!(
        out.contains("coop2 is not running: not restarted (--if-running)")
            && state(&sys, "coop2")? == "inactive/dead",
        "{out}"
    );
    // players of a stopped instance: a clear error, exit 1.
    let out = ctl_status(&sys, &["players", "coop2"], 1)?;
    ensure!(out.contains("coop2 is not running"), "{out}");

    finish(sys, &["coop1"])
}
