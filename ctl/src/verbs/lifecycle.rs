//! The lifecycle verbs: `left4mectl start`, `stop`, `restart`, `reset`, `delete`, `status`
//! and `logs`.
//!
//! systemd does the work (`left4me-server@NAME.service`); these verbs ask it, wait for the
//! outcome and say what it was. `start` returns once the unit is active, which for this
//! `Type=notify` unit means the game answers queries (systemctl blocks until the start job is
//! done), or says why it is not: the unit's state and result, the supervisor's `STATUS=` line,
//! how the game last ended and the unit's last journal lines.
//!
//! `restart` and `stop` with `--when-empty` wait until nobody plays first (`when_empty`).

mod status;
mod when_empty;

pub use status::status;

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use left4me_spec::Catalog;

use crate::change::{SpecKind, check_spec_name, missing};
use crate::cli::WhenEmptyArgs;
use crate::error::{EXIT_OK, UsageError};
use crate::output::{emit, unix_now};
use crate::rollout::Action;
use crate::runtime::{Runtime, instance_mounts};
use crate::systemd::{
    self, START_LIMIT_MESSAGE, StartsBlocked, SystemdError, UnitState, systemctl, systemctl_units,
    unit_name,
};
use crate::{Ctx, reload};
use when_empty::WhenEmpty;

/// Journal lines shown by `status` and after a failed start.
const JOURNAL_LINES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the answer from the terminal: {0}")]
    Confirm(#[source] io::Error),
    #[error("{failed} of {total} instances did not start (see above)")]
    NotStarted { failed: usize, total: usize },
}

/// The verbs that start units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Starting {
    Start,
    Restart,
}

/// Every name must follow the naming rule; the first that does not is the error.
fn check_names(names: &[String]) -> Result<(), UsageError> {
    names
        .iter()
        .try_for_each(|name| check_spec_name(SpecKind::Instance, name))
}

fn units_of(names: &[String]) -> Vec<String> {
    names.iter().map(|name| unit_name(name)).collect()
}

/// Each of `names` must be a valid instance: the one error as it is, or all of them in one.
fn require_valid(catalog: &Catalog, names: &[String], verb: &str) -> anyhow::Result<()> {
    let mut errors: Vec<anyhow::Error> = Vec::new();
    for name in names {
        match catalog.get(name) {
            None => errors.push(
                missing(
                    SpecKind::Instance,
                    name,
                    &catalog.layout.instance_file(name),
                )
                .into(),
            ),
            Some(Err(err)) => errors.push(anyhow::Error::new(err.clone()).context(format!(
                "not {verb}ing {name}: its spec is invalid; fix it with `left4mectl edit {name}`"
            ))),
            Some(Ok(_)) => {}
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => Err(UsageError::new(format!(
            "{n} of the instances cannot be {verb}ed, so none was:\n{}",
            errors
                .iter()
                .map(|e| format!("  {e:#}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
        .into()),
    }
}

/// `start NAME…` and `restart NAME…`.
fn start_units(ctx: &Ctx, names: &[String], how: Starting) -> anyhow::Result<u8> {
    check_names(names)?;
    let verb = match how {
        Starting::Start => "start",
        Starting::Restart => "restart",
    };
    let catalog = ctx.catalog()?;
    require_valid(&catalog, names, verb)?;
    let units = units_of(names);
    let before = systemd::show(&units)?;

    // The generator's drop-in must be current: a spec created with --no-reload, or changed
    // since, would otherwise start with the wrong port, limits or watchdog.
    let stale: Vec<&str> = names
        .iter()
        .zip(&before)
        .filter(|(_, s)| s.need_daemon_reload || !s.has_generated_dropin())
        .map(|(name, _)| name.as_str())
        .collect();
    if !stale.is_empty() {
        systemctl(&["daemon-reload"])?;
        eprintln!(
            "reloaded systemd (systemctl daemon-reload): it had not read the current spec of {}",
            stale.join(", ")
        );
    }
    // An explicit start is a fresh try, also after the start limit gave up.
    let failed: Vec<String> = before
        .iter()
        .filter(|s| s.active_state == "failed")
        .map(|s| s.id.clone())
        .collect();
    if !failed.is_empty() {
        systemctl_units("reset-failed", &[], &failed)?;
        ctx.note(1, || {
            format!("reset the failed state of {}", failed.join(" "))
        });
    }

    let since = unix_now().saturating_sub(1);
    let started = Instant::now();
    // Both block until every start job is done: for Type=notify, until READY=1 or failure.
    let outcome = match how {
        // `--no-reload`: enabling only adds a wants link, read at the next boot or reload; the
        // implicit daemon-reload would cost more than the whole start.
        Starting::Start => systemctl_units("enable", &["--now", "--no-reload"], &units),
        Starting::Restart => systemctl_units("enable", &["--no-reload"], &units)
            .and_then(|_| systemctl_units("restart", &[], &units)),
    };
    let took = started.elapsed();
    let after = systemd::show(&units)?;

    let mut out = String::new();
    let mut failures = 0;
    for ((name, was), now) in names.iter().zip(&before).zip(&after) {
        let status = now.status_text.as_deref().unwrap_or("no status");
        if now.is_active() {
            let line = if how == Starting::Start && was.is_active() {
                format!("{name} was already running: {status}")
            } else {
                format!("{verb}ed {name} in {:.1}s: {status}", took.as_secs_f64())
            };
            out.push_str(&line);
            out.push('\n');
            if !was.enabled() && now.enabled() {
                out.push_str(&format!("enabled {name}: it starts at boot\n"));
            }
        } else {
            failures += 1;
            eprint!("{}", failure_report(name, now, since));
        }
    }
    emit(&out)?;
    if failures > 0 {
        if let Err(err) = &outcome {
            ctx.note(1, || format!("{err}"));
        }
        return Err(LifecycleError::NotStarted {
            failed: failures,
            total: names.len(),
        }
        .into());
    }
    // Every unit is active although systemctl complained: say what it said.
    if let Err(err) = outcome {
        eprintln!("warning: {err}");
    }
    Ok(EXIT_OK)
}

/// Why `name` is not active: its state, the supervisor's status, how the game ended, what
/// systemd will do next and the journal since `since`.
fn failure_report(name: &str, state: &UnitState, since: u64) -> String {
    // What the game printed as it died may still be on its way into the journal.
    systemd::journal_sync();
    let journal = systemd::journal_tail(&state.id, JOURNAL_LINES, Some(since))
        .unwrap_or_else(|err| vec![format!("(cannot read the journal: {err})")]);
    let limit_hit = start_limit_hit(state, &journal);
    let mut text = format!(
        "{name} did not start: {}{}\n",
        state.describe(),
        if limit_hit { ", start limit hit" } else { "" }
    );
    if let Some(status) = &state.status_text {
        text.push_str(&format!("  status: {status}\n"));
    }
    if let Some(exit) = &state.last_exit {
        text.push_str(&format!("  main process: {}\n", exit.describe()));
    }
    if state.sub_state == "auto-restart" {
        text.push_str(&format!(
            "  systemd restarts it by itself (that was start {} of at most {} within {})\n",
            state.restarts + 1,
            state.start_limit_burst,
            state.start_limit_interval
        ));
    }
    if limit_hit {
        text.push_str(&format!(
            "  systemd gave up: {} starts within {}; `left4mectl start {name}` tries again\n",
            state.start_limit_burst, state.start_limit_interval
        ));
    }
    text.push_str(&format!(
        "  journal (all of it: `left4mectl logs {name}`):\n"
    ));
    for line in &journal {
        text.push_str(&format!("    {line}\n"));
    }
    text
}

/// Whether systemd refused to start the unit again because of `StartLimitBurst=`: on 252 the
/// result says so only for a start by hand; one that hit the limit while restarting itself
/// keeps the result of its last run, and the journal says it.
fn start_limit_hit(state: &UnitState, journal: &[String]) -> bool {
    state.result == "start-limit-hit"
        || (state.active_state == "failed"
            && journal
                .iter()
                .rev()
                .take(JOURNAL_LINES)
                .any(|line| line.ends_with(START_LIMIT_MESSAGE)))
}

/// `start NAME…`.
pub fn start(ctx: &Ctx, names: &[String]) -> anyhow::Result<u8> {
    start_units(ctx, names, Starting::Start)
}

/// `restart NAME… [--if-running] [--when-empty [--max-wait D] [--announce MSG] [--or-skip]]`.
pub fn restart(
    ctx: &Ctx,
    names: &[String],
    when: &WhenEmptyArgs,
    if_running: bool,
) -> anyhow::Result<u8> {
    check_names(names)?;
    let when = WhenEmpty::from_args(when)?;
    let names = if if_running {
        running_only(names)?
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        return Ok(EXIT_OK);
    }
    match when {
        None => start_units(ctx, &names, Starting::Restart),
        Some(when) => {
            let catalog = ctx.catalog()?;
            require_valid(&catalog, &names, "restart")?;
            when_empty::run(ctx, &catalog, &names, Action::Restart, &when, if_running)
        }
    }
}

/// The instances of `names` whose units are active; says which are left alone.
fn running_only(names: &[String]) -> anyhow::Result<Vec<String>> {
    let active = if systemd::systemd_running() {
        when_empty::active(names)?
    } else {
        vec![false; names.len()]
    };
    let mut out = String::new();
    let mut running = Vec::new();
    for (name, active) in names.iter().zip(active) {
        if active {
            running.push(name.clone());
        } else {
            out.push_str(&format!(
                "{name} is not running: not restarted (--if-running)\n"
            ));
        }
    }
    emit(&out)?;
    Ok(running)
}

/// `stop NAME… [--when-empty [--max-wait D] [--announce MSG] [--or-skip]]`.
pub fn stop(ctx: &Ctx, names: &[String], when: &WhenEmptyArgs) -> anyhow::Result<u8> {
    check_names(names)?;
    match WhenEmpty::from_args(when)? {
        None => stop_units(ctx, names),
        Some(when) => {
            let catalog = ctx.catalog()?;
            when_empty::run(ctx, &catalog, names, Action::Stop, &when, false)
        }
    }
}

/// Stops and disables `names`; waits until each unit has stopped and cleaned up.
fn stop_units(ctx: &Ctx, names: &[String]) -> anyhow::Result<u8> {
    let units = units_of(names);
    let before = systemd::show(&units)?;
    systemctl_units("disable", &["--now", "--no-reload"], &units)?;
    let after = systemd::show(&units)?;
    let layout = ctx.catalog().map(|c| c.layout).ok();
    let mut out = String::new();
    for ((name, was), now) in names.iter().zip(&before).zip(&after) {
        let mut line = match was.active_state.as_str() {
            "inactive" => format!("{name} was not running"),
            "failed" => format!("{name} was not running (it had failed: {})", was.result),
            _ if now.active_state == "failed" => {
                format!("stopped {name} (it ended {})", now.describe())
            }
            _ => format!("stopped {name}"),
        };
        if was.enabled() {
            line.push_str("; disabled: it no longer starts at boot");
        }
        out.push_str(&line);
        out.push('\n');
        if let Some(layout) = &layout {
            let runtime = layout.runtime(name).dir;
            if let Ok(mounts) = instance_mounts(name, &runtime)
                && !mounts.is_empty()
            {
                eprintln!(
                    "warning: {name}'s overlay is still mounted at {}; `left4mectl reset {name}` unmounts it",
                    mounts[0].display()
                );
            }
        }
    }
    emit(&out)?;
    Ok(EXIT_OK)
}

/// Stops the unit (disabling it first for `delete`) and blocks its starts until the guard is
/// dropped, leaving it neither active nor failed. Returns its state before and the guard.
///
/// The first stop is the unit's own (its stop signal, its `ExecStopPost=` cleanup); then the
/// starts are blocked, and a second stop ends a start that came in between (a masked unit
/// keeps none of its settings, so that one is systemd's default stop; `cleanup` follows).
fn stop_for_removal(unit: &str, disable: bool) -> Result<(UnitState, StartsBlocked), SystemdError> {
    let before = systemd::show_one(unit)?;
    if disable {
        systemctl(&["disable", "--no-reload", unit])?;
    }
    // A start that comes in meanwhile cancels this stop job ("Job … canceled"): the stop
    // after the starts are blocked is the one that must succeed.
    let _ = systemctl(&["stop", unit]);
    let blocked = systemd::block_starts(unit, &before)?;
    systemctl(&["stop", unit])?;
    let after = systemd::show_one(unit)?;
    if after.active_state == "failed" {
        systemctl(&["reset-failed", unit])?;
    }
    Ok((before, blocked))
}

/// The spec file and runtime dir of `name`; at least one must exist.
fn existing_instance(catalog: &Catalog, name: &str) -> anyhow::Result<(PathBuf, Runtime)> {
    check_spec_name(SpecKind::Instance, name)?;
    let spec = catalog.layout.instance_file(name);
    let runtime = Runtime::new(&catalog.layout, name);
    // The config dir is root's (DESIGN.md §2): a path is fine there.
    if !spec.exists() && !runtime.exists()? {
        return Err(missing(SpecKind::Instance, name, &spec).into());
    }
    Ok((spec, runtime))
}

/// Stops `name` with its starts blocked and removes its runtime dir; `delete` also disables
/// it. Returns what was done.
fn remove_runtime(name: &str, runtime: &Runtime, delete: bool) -> anyhow::Result<Vec<String>> {
    let unit = unit_name(name);
    let (before, _blocked) = stop_for_removal(&unit, delete)?;
    let mut done = Vec::new();
    if !matches!(before.active_state.as_str(), "inactive" | "failed") {
        done.push("stopped".to_owned());
    }
    if delete && before.enabled() {
        done.push("disabled".to_owned());
    }
    done.extend(runtime.remove()?);
    Ok(done)
}

/// `reset NAME`: stop, unmount, delete `runtime/NAME`; keep the spec (and whether it is
/// enabled). The next start begins from an empty upper dir.
pub fn reset(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let (_, runtime) = existing_instance(&catalog, name)?;
    let done = remove_runtime(name, &runtime, false)?;
    emit(&format!(
        "reset {name}: {}\nthe spec is kept; `left4mectl start {name}` starts it from scratch\n",
        done.join(", ")
    ))?;
    Ok(EXIT_OK)
}

/// `delete NAME [--yes]`: reset, then remove the spec and reload systemd.
pub fn delete(ctx: &Ctx, name: &str, yes: bool) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let (spec, runtime) = existing_instance(&catalog, name)?;
    if !yes {
        confirm_delete(name, &spec, &runtime.dir)?;
    }
    let mut done = remove_runtime(name, &runtime, true)?;
    {
        let lock = ctx.lock()?;
        // The revision keeps the text `rollback` brings back.
        if lock.remove(left4me_history::Kind::Instance, name, &spec, "delete")? {
            done.push(format!("removed {}", spec.display()));
        }
        done.extend(super::instance::remove_rcon_password(
            &catalog.layout.admin_dir,
            name,
        )?);
    }
    let reloaded = reload::daemon_reload(ctx.no_reload)?;
    emit(&format!(
        "deleted {name}: {}\n{reloaded}\n",
        done.join(", ")
    ))?;
    Ok(EXIT_OK)
}

/// Asks on the terminal; refuses without one.
fn confirm_delete(name: &str, spec: &Path, runtime: &Path) -> anyhow::Result<()> {
    if !io::stdin().is_terminal() {
        return Err(UsageError::new(format!(
            "not deleting {name} without confirmation: stdin is not a terminal; pass --yes"
        ))
        .into());
    }
    eprint!(
        "Delete instance {name}? This stops it and removes {} (its files and logs) and {}. [y/N] ",
        runtime.display(),
        spec.display()
    );
    io::stderr().flush().map_err(LifecycleError::Confirm)?;
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(LifecycleError::Confirm)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(UsageError::new(format!(
            "not deleting {name}: not confirmed; nothing was changed"
        ))
        .into())
    }
}

/// `logs NAME [-f] [-n N]`: journalctl, in place of this process.
pub fn logs(name: &str, follow: bool, lines: Option<u32>) -> anyhow::Result<u8> {
    check_spec_name(SpecKind::Instance, name)?;
    let unit = unit_name(name);
    let mut args = vec!["-u".to_owned(), unit];
    if follow {
        args.push("--follow".into());
    }
    if let Some(lines) = lines {
        args.push(format!("--lines={lines}"));
    }
    let err = systemd::exec_journalctl(&args);
    Err(LifecycleError::Spawn {
        command: format!("journalctl {}", args.join(" ")),
        source: err,
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_limit_is_read_from_the_result_or_the_journal() {
        let failed = UnitState {
            active_state: "failed".into(),
            result: "exit-code".into(),
            ..UnitState::default()
        };
        let journal: Vec<String> = vec![
            "… systemd[1]: left4me-server@x.service: Start request repeated too quickly.".into(),
            "… systemd[1]: left4me-server@x.service: Failed with result 'exit-code'.".into(),
        ];
        assert!(start_limit_hit(&failed, &journal));
        assert!(!start_limit_hit(&failed, &journal[1..]));
        let refused = UnitState {
            result: "start-limit-hit".into(),
            ..failed.clone()
        };
        assert!(start_limit_hit(&refused, &[]));
        let active = UnitState {
            active_state: "active".into(),
            ..failed
        };
        assert!(!start_limit_hit(&active, &journal));
    }
}
