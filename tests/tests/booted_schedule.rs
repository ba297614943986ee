//! End to end in a booted systemd (needs root): `[schedule]` becomes a timer. After `left4mectl
//! set` (which reloads systemd) the instance's `left4me-restart@NAME.timer` is in `systemctl
//! list-timers` with the next elapse its calendar expression says; an instance without the table
//! has no timer; the timer comes back at boot through the generator's `timers.target.wants/`
//! link; removing the table stops and removes the timer at the next reload. A schedule a few
//! seconds ahead fires: its service waits while a player is on (and says so to them over RCON),
//! then restarts the running instance once the player leaves.

mod booted_support;

use std::time::Duration;

use anyhow::{Result, ensure};
use booted_support::*;
use left4me_tests::{BootedSystem, require_root};

const GENERATOR_DIR: &str = "/run/systemd/generator";

/// The `systemctl list-timers` line of instance `name`'s restart timer, if listed.
fn timer_line(sys: &BootedSystem, name: &str) -> Result<Option<String>> {
    let timer = format!("left4me-restart@{name}.timer");
    let out = sys.run_stdout(["systemctl", "list-timers", "--no-pager", "--no-legend"])?;
    Ok(out.lines().find(|l| l.contains(&timer)).map(str::to_owned))
}

/// What `systemd-analyze calendar` inside the system says is the next elapse of `expr`.
fn next_elapse(sys: &BootedSystem, expr: &str) -> Result<String> {
    let out = sys.run_stdout(["systemd-analyze", "calendar", expr])?;
    let next = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Next elapse: "))
        .map(str::to_owned);
    next.ok_or_else(|| anyhow::anyhow!("no next elapse for {expr:?}:\n{out}"))
}

/// Whether the generator linked instance `name`'s timer into `timers.target.wants/` (looked at
/// inside: `/run` is the system's own tmpfs).
fn linked(sys: &BootedSystem, name: &str) -> Result<bool> {
    let link = format!("{GENERATOR_DIR}/timers.target.wants/left4me-restart@{name}.timer");
    Ok(sys.run(["test", "-L", &link])?.status.success())
}

#[test]
fn booted_schedule_timer_follows_the_spec() -> Result<()> {
    require_root();
    let mut sys = boot(builder("e2e-schedule"))?;
    ctl_ok(&sys, &["create", "sched1", "--port", "27070"])?;
    ctl_ok(&sys, &["create", "plain1", "--port", "27071"])?;

    // A fixed date: its next elapse is known without looking at the clock.
    let fixed = "2099-06-01 05:00:00 UTC";
    ctl_ok(
        &sys,
        &["set", "sched1", &format!("schedule.restart={fixed}")],
    )?;
    ensure!(linked(&sys, "sched1")? && !linked(&sys, "plain1")?);
    let line = timer_line(&sys, "sched1")?;
    report(&format!("after set: {line:?}"));
    ensure!(
        line.as_deref()
            .is_some_and(|l| l.starts_with("Mon 2099-06-01 05:00:00 UTC")
                && l.contains("left4me-restart@sched1.service")),
        "list-timers: {line:?}"
    );
    ensure!(timer_line(&sys, "plain1")?.is_none());

    // A daily one: the next elapse is what systemd-analyze computes for the expression.
    let daily = "*-*-* 05:00:00 UTC";
    ctl_ok(
        &sys,
        &["set", "sched1", &format!("schedule.restart={daily}")],
    )?;
    let expected = next_elapse(&sys, daily)?;
    let line = timer_line(&sys, "sched1")?;
    report(&format!("daily: {line:?}, systemd-analyze: {expected}"));
    ensure!(
        line.as_deref().is_some_and(|l| l.starts_with(&expected)),
        "list-timers: {line:?}, expected next elapse {expected}"
    );
    let exec = sys.run_stdout([
        "systemctl",
        "show",
        "-p",
        "ExecStart",
        "--value",
        "left4me-restart@sched1.service",
    ])?;
    ensure!(
        exec.contains(
            "argv[]=/usr/bin/left4mectl restart --if-running --when-empty --max-wait 2h \
             --announce Scheduled restart: this server restarts when the last player leaves, or \
             when its waiting time is up. sched1 ;"
        ),
        "ExecStart: {exec}"
    );

    // At boot the generator's link brings it back.
    sys.reboot()?;
    let line = timer_line(&sys, "sched1")?;
    report(&format!("after reboot: {line:?}"));
    ensure!(
        line.as_deref()
            .is_some_and(|l| l.starts_with(&next_elapse(&sys, daily).unwrap_or_default())),
        "after reboot: {line:?}"
    );

    // A calendar with no elapse left (valid for systemd, and so for left4me) leaves the timer
    // active (elapsed); Upholds= does not start it over and over.
    ctl_ok(
        &sys,
        &["set", "sched1", "schedule.restart=2000-01-01 00:00:00 UTC"],
    )?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    let state = sys.run_stdout([
        "systemctl",
        "show",
        "-p",
        "ActiveState,SubState",
        "left4me-restart@sched1.timer",
    ])?;
    let starts = sys
        .journal(Some("left4me-restart@sched1.timer"))
        .matches("Started left4me-restart@sched1.timer")
        .count();
    report(&format!("past date: {state:?}, {starts} starts"));
    ensure!(
        state.contains("ActiveState=active") && starts < 5,
        "past date: {state}, started {starts} times"
    );

    // Removing the table removes the link, and the timer stops (StopWhenUnneeded=: nothing
    // upholds or wants it any more).
    ctl_ok(&sys, &["set", "sched1", "--unset", "schedule.restart"])?;
    ensure!(!linked(&sys, "sched1")?, "the link outlived the table");
    let line = timer_line(&sys, "sched1")?;
    ensure!(line.is_none(), "still listed: {line:?}");
    let active = sys.run_stdout([
        "systemctl",
        "show",
        "-p",
        "ActiveState",
        "--value",
        "left4me-restart@sched1.timer",
    ])?;
    ensure!(active.trim() == "inactive", "the timer is {active}");
    finish(sys, &[])
}

/// `systemctl show -p PROP --value UNIT` inside the system.
fn unit_prop(sys: &BootedSystem, unit: &str, property: &str) -> Result<String> {
    let out = sys.run_stdout(["systemctl", "show", "-p", property, "--value", unit])?;
    Ok(out.trim().to_owned())
}

#[test]
fn booted_scheduled_restart_fires_and_waits_for_the_last_player() -> Result<()> {
    require_root();
    let sys = boot(builder("e2e-schedule-fire"))?;
    let service = "left4me-restart@night1.service";
    ctl_ok(&sys, &["create", "night1", "--port", "27072"])?;
    ctl_ok(&sys, &["start", "night1"])?;
    standin_control(&sys, "night1", "player Zoey 3\n")?;
    let pid_before = prop(&sys, "night1", "MainPID")?;

    // A calendar 5 s ahead on the system's clock (UTC); the wait is bounded, but far beyond
    // this test.
    let at = sys.run_stdout(["date", "-u", "-d", "+5 seconds", "+%Y-%m-%d %H:%M:%S UTC"])?;
    let at = at.trim();
    ctl_ok(
        &sys,
        &[
            "set",
            "night1",
            &format!("schedule.restart={at}"),
            "schedule.max_wait=1h",
        ],
    )?;
    report(&format!("scheduled at {at}"));

    // The timer fires; the service runs and waits: the player is still on.
    wait_for(
        &sys,
        "night1",
        "the scheduled restart to begin",
        Duration::from_secs(30),
        || Ok((unit_prop(&sys, service, "ActiveState")? == "activating").then_some(())),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    ensure!(
        prop(&sys, "night1", "MainPID")? == pid_before
            && unit_prop(&sys, service, "ActiveState")? == "activating",
        "night1 was restarted with a player on it"
    );

    // The player leaves: the instance is restarted and the service ends well.
    standin_control(&sys, "night1", "players 0\n")?;
    wait_for(
        &sys,
        "night1",
        "the scheduled restart to finish",
        Duration::from_secs(60),
        || Ok((unit_prop(&sys, service, "ActiveState")? == "inactive").then_some(())),
    )?;
    let result = unit_prop(&sys, service, "Result")?;
    let journal = sys.journal(Some(service));
    report(&format!("{service}: {result}\n{}", journal.trim_end()));
    ensure!(
        result == "success",
        "{service} ended with {result}:\n{journal}"
    );
    ensure!(
        state(&sys, "night1")? == "active/running"
            && prop(&sys, "night1", "MainPID")? != pid_before,
        "night1 was not restarted by its schedule"
    );
    ensure!(
        journal.contains("night1: 1 player"),
        "the service did not say it waited for the player:\n{journal}"
    );
    // The announcement reached the game's console (srcds logs a console say).
    let game_log = sys.journal(Some(&unit("night1")));
    ensure!(
        game_log.contains("Scheduled restart: this server restarts when the last player leaves"),
        "no announcement in the game's log:\n{game_log}"
    );
    finish(sys, &["night1"])
}
