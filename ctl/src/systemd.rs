//! Talking to systemd through its own tools: `systemctl` for jobs and unit state, `journalctl`
//! for the log. Nothing here knows about specs; [`crate::verbs::lifecycle`] puts the two together.
//!
//! Unit state is read with `systemctl show -p … UNIT…`: one call for any number of units, its
//! output is `Key=Value` lines, one block per unit in the order asked, blocks separated by an
//! empty line. Timestamps are asked for with `--timestamp=unix` (`@1732233600`). [`Live`] is
//! that state as `list` and `status` show it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::process::{Command, ExitStatus, Output, Stdio};

use serde::Serialize;

/// The drop-in the generator writes for a valid spec.
pub const GENERATED_DROPIN: &str = "50-left4me.conf";

/// Exists while systemd is the running init (sd_booted(3)).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

/// Whether systemd is this machine's init, i.e. whether there is unit state to ask about.
pub fn systemd_running() -> bool {
    std::path::Path::new(SYSTEMD_RUNNING).exists()
}

/// `left4me-server@NAME.service`.
pub fn unit_name(instance: &str) -> String {
    format!("left4me-server@{instance}.service")
}

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}){}", indented(stderr))]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("`{command}` said nothing about {unit}")]
    Missing { command: String, unit: String },
}

/// `: <first line>` or the lines indented below, for error messages.
fn indented(text: &str) -> String {
    let text = text.trim();
    match text.lines().count() {
        0 => String::new(),
        1 => format!(": {text}"),
        _ => format!(
            ":\n{}",
            text.lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn describe(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args`, collecting its output, whatever its exit status.
pub fn output(program: &str, args: &[&str]) -> Result<Output, SystemdError> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .env("SYSTEMD_PAGER", "cat")
        .env("SYSTEMD_COLORS", "0")
        .output()
        .map_err(|source| SystemdError::Spawn {
            command: describe(program, args),
            source,
        })
}

/// Enables and starts `timer` when systemd runs and it is not on yet: `; TIMER WHAT`, for the
/// caller's message, or nothing (a failure is a warning: the work it follows is done).
pub fn enable_timer(timer: &str, what: &str) -> String {
    if !systemd_running() {
        return String::new();
    }
    // One query is cheaper than an enable that changes nothing (a refresh runs it nightly).
    let on =
        systemctl(&["show", "-p", "UnitFileState,ActiveState", "--", timer]).is_ok_and(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines().any(|l| l == "UnitFileState=enabled")
                && text.lines().any(|l| l == "ActiveState=active")
        });
    if on {
        return String::new();
    }
    match systemctl(&["enable", "--now", timer]) {
        Ok(_) => format!("; {timer} {what}"),
        Err(err) => {
            eprintln!("warning: cannot enable {timer}: {err}");
            String::new()
        }
    }
}

/// Runs `systemctl args`; a non-zero exit is an error carrying its stderr.
pub fn systemctl(args: &[&str]) -> Result<Output, SystemdError> {
    let out = output("systemctl", args)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(SystemdError::Failed {
            command: describe("systemctl", args),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// `systemctl VERB UNIT…` for instance units, e.g. `("enable", ["--now"], units)`.
pub fn systemctl_units(
    verb: &str,
    flags: &[&str],
    units: &[String],
) -> Result<Output, SystemdError> {
    let mut args = vec![verb];
    args.extend_from_slice(flags);
    args.extend(units.iter().map(String::as_str));
    systemctl(&args)
}

/// Starts of a unit refused until dropped: `systemctl mask --runtime UNIT`, undone by `unmask
/// --runtime` on drop (also when the work in between failed). Nothing, `Restart=` included, can
/// start the unit meanwhile. A unit masked already is left as it is, and left masked.
#[derive(Debug)]
pub struct StartsBlocked {
    unit: String,
    masked_here: bool,
}

/// Blocks the starts of `unit`, whose state is `state`; see [`StartsBlocked`].
pub fn block_starts(unit: &str, state: &UnitState) -> Result<StartsBlocked, SystemdError> {
    let masked_here = !state.unit_file_state.starts_with("masked");
    if masked_here {
        systemctl(&["mask", "--runtime", unit])?;
    }
    Ok(StartsBlocked {
        unit: unit.to_owned(),
        masked_here,
    })
}

impl Drop for StartsBlocked {
    fn drop(&mut self) {
        if self.masked_here
            && let Err(err) = systemctl(&["unmask", "--runtime", &self.unit])
        {
            eprintln!(
                "warning: {err}; {unit} cannot start until `systemctl unmask --runtime {unit}`",
                unit = self.unit
            );
        }
    }
}

/// The properties [`show`] asks for; [`UnitState`] is made of them.
const PROPERTIES: &str = "Id,LoadState,ActiveState,SubState,Result,StatusText,MainPID,\
    MemoryCurrent,StateChangeTimestamp,ExecMainCode,ExecMainStatus,ExecMainExitTimestamp,\
    NRestarts,UnitFileState,NeedDaemonReload,DropInPaths,StartLimitBurst,StartLimitIntervalUSec";

/// What systemd says about one unit right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    pub id: String,
    /// `loaded`, `not-found`, `bad-setting`, …
    pub load_state: String,
    /// `active`, `activating`, `deactivating`, `inactive`, `failed`, …
    pub active_state: String,
    /// `running`, `start-pre`, `auto-restart`, `dead`, `failed`, …
    pub sub_state: String,
    /// How the last run ended: `success`, `exit-code`, `signal`, `watchdog`, `timeout`,
    /// `start-limit-hit`, …
    pub result: String,
    /// The supervisor's `STATUS=` line.
    pub status_text: Option<String>,
    pub main_pid: Option<u32>,
    pub memory_bytes: Option<u64>,
    /// When the unit last changed state, unix seconds.
    pub since: Option<u64>,
    /// How the main process last ended, if it did.
    pub last_exit: Option<LastExit>,
    /// Automatic restarts since the unit was last started by hand.
    pub restarts: u32,
    /// `enabled`, `disabled`, …
    pub unit_file_state: String,
    pub need_daemon_reload: bool,
    pub dropin_paths: Vec<String>,
    pub start_limit_burst: u32,
    /// `StartLimitIntervalSec=` as systemd prints it (`1min`).
    pub start_limit_interval: String,
}

/// How the main process ended: `code` is `exited` (then `status` is the exit status),
/// `killed` or `dumped` (then `status` is the signal number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastExit {
    pub code: &'static str,
    pub status: i32,
    /// Unix seconds.
    pub at: Option<u64>,
}

impl LastExit {
    /// `exited with status 3`, `killed by signal 9 (SIGKILL)`.
    pub fn describe(&self) -> String {
        match self.code {
            "exited" => format!("exited with status {}", self.status),
            "dumped" => format!(
                "dumped core on signal {}{}",
                self.status,
                signal_name(self.status)
            ),
            _ => format!(
                "killed by signal {}{}",
                self.status,
                signal_name(self.status)
            ),
        }
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

impl UnitState {
    /// Whether the generator's drop-in is part of the loaded unit.
    pub fn has_generated_dropin(&self) -> bool {
        self.dropin_paths
            .iter()
            .any(|p| p.ends_with(&format!("/{GENERATED_DROPIN}")))
    }

    pub fn enabled(&self) -> bool {
        self.unit_file_state == "enabled" || self.unit_file_state == "enabled-runtime"
    }

    pub fn is_active(&self) -> bool {
        self.active_state == "active"
    }

    /// `active (running)`, `activating (auto-restart)`, `failed (exit-code)`, `inactive`.
    pub fn describe(&self) -> String {
        match (self.active_state.as_str(), self.sub_state.as_str()) {
            ("failed", _) => format!("failed ({})", self.result),
            ("inactive", "dead") => "inactive".into(),
            (active, sub) if sub.is_empty() || sub == active => active.into(),
            (active, sub) => format!("{active} ({sub})"),
        }
    }

    fn from_properties(props: &BTreeMap<String, String>) -> UnitState {
        let get = |key: &str| props.get(key).map(String::as_str).unwrap_or("");
        let number = |key: &str| get(key).parse::<u64>().ok();
        let timestamp = |key: &str| get(key).strip_prefix('@').and_then(|s| s.parse().ok());
        let last_exit = timestamp("ExecMainExitTimestamp").map(|at| LastExit {
            code: match get("ExecMainCode") {
                "1" => "exited",
                "3" => "dumped",
                _ => "killed",
            },
            status: get("ExecMainStatus").parse().unwrap_or(0),
            at: Some(at),
        });
        UnitState {
            id: get("Id").into(),
            load_state: get("LoadState").into(),
            active_state: get("ActiveState").into(),
            sub_state: get("SubState").into(),
            result: get("Result").into(),
            status_text: Some(get("StatusText"))
                .filter(|s| !s.is_empty())
                .map(Into::into),
            main_pid: number("MainPID")
                .filter(|&p| p != 0)
                .and_then(|p| u32::try_from(p).ok()),
            // "[not set]" or u64::MAX when there is no cgroup to measure.
            memory_bytes: number("MemoryCurrent").filter(|&m| m != u64::MAX),
            since: timestamp("StateChangeTimestamp"),
            last_exit,
            restarts: get("NRestarts").parse().unwrap_or(0),
            unit_file_state: get("UnitFileState").into(),
            need_daemon_reload: get("NeedDaemonReload") == "yes",
            dropin_paths: get("DropInPaths")
                .split_whitespace()
                .map(Into::into)
                .collect(),
            start_limit_burst: get("StartLimitBurst").parse().unwrap_or(0),
            start_limit_interval: get("StartLimitIntervalUSec").into(),
        }
    }
}

/// The blocks of `systemctl show` output, as key → value maps, in order.
pub fn parse_show(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut blocks = Vec::new();
    let mut block = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            block.insert(key.to_owned(), value.to_owned());
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

/// The state of every unit in `units`, in that order, from ONE `systemctl show` call.
pub fn show(units: &[String]) -> Result<Vec<UnitState>, SystemdError> {
    if units.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["show", "--timestamp=unix", "-p", PROPERTIES];
    args.extend(units.iter().map(String::as_str));
    let out = systemctl(&args)?;
    let mut states: BTreeMap<String, UnitState> = parse_show(&String::from_utf8_lossy(&out.stdout))
        .iter()
        .map(UnitState::from_properties)
        .map(|state| (state.id.clone(), state))
        .collect();
    units
        .iter()
        .map(|unit| {
            states.remove(unit).ok_or_else(|| SystemdError::Missing {
                command: describe("systemctl", &args[..4]),
                unit: unit.clone(),
            })
        })
        .collect()
}

/// The state of every *loaded* unit matching `pattern` (`left4me-server@*.service`), from one
/// `systemctl show` call. A unit that is not loaded is inactive and not enabled (an enabled
/// unit is held loaded by its target); showing it by name would make systemd load it, which
/// costs milliseconds per unit.
pub fn show_loaded(pattern: &str) -> Result<Vec<UnitState>, SystemdError> {
    let out = systemctl(&["show", "--timestamp=unix", "-p", PROPERTIES, pattern])?;
    Ok(parse_show(&String::from_utf8_lossy(&out.stdout))
        .iter()
        .map(UnitState::from_properties)
        .collect())
}

/// [`show`] for one unit.
pub fn show_one(unit: &str) -> Result<UnitState, SystemdError> {
    let mut states = show(&[unit.to_owned()])?;
    Ok(states.remove(0))
}

/// The last `lines` journal lines of `unit` (`short-iso`, with the process name), optionally
/// only those since `since` (unix seconds).
pub fn journal_tail(
    unit: &str,
    lines: usize,
    since: Option<u64>,
) -> Result<Vec<String>, SystemdError> {
    let count = lines.to_string();
    let since = since.map(|s| format!("@{s}"));
    let mut args = vec!["--no-pager", "--quiet", "--output=short-iso", "-u", unit];
    // journalctl 252 given both --since and -n shows the first N lines after --since, not the
    // last: with --since, take the tail here.
    match &since {
        Some(since) => args.extend(["--since", since]),
        None => args.extend(["-n", &count]),
    }
    let out = output("journalctl", &args)?;
    if !out.status.success() {
        return Err(SystemdError::Failed {
            command: describe("journalctl", &args),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|line| (*line).to_owned())
        .collect())
}

/// Asks journald to store everything it has received (`journalctl --sync`), so a read right
/// after a failure sees the failing process's last lines. Best effort: needs root.
pub fn journal_sync() {
    let _ = output("journalctl", &["--sync"]);
}

/// What systemd logs when it refuses a start because of `StartLimitBurst=`. On 252 a unit that
/// hits the limit while restarting itself keeps the result of its last run (`exit-code`), so
/// this line in its journal is how to tell.
pub const START_LIMIT_MESSAGE: &str = "Start request repeated too quickly.";

/// Replaces this process with `journalctl ARGS` (for `logs`, so paging, `-f` and Ctrl-C behave
/// exactly as journalctl's own). Returns only if it could not be started.
pub fn exec_journalctl<S: AsRef<OsStr>>(args: &[S]) -> io::Error {
    use std::os::unix::process::CommandExt as _;
    Command::new("journalctl").args(args).exec()
}

/// The live state of an instance's unit, as `list --json` and `status --json` print it. Every
/// field is `null` when systemd is not running.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Live {
    /// Starts at boot (`systemctl enable`d).
    pub enabled: Option<bool>,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    /// How the last run ended (systemd's `Result`).
    pub result: Option<String>,
    /// The supervisor's `STATUS=` line.
    pub status_text: Option<String>,
    pub main_pid: Option<u32>,
    pub memory_bytes: Option<u64>,
    /// When the unit last changed state, unix seconds.
    pub since: Option<u64>,
    pub restarts: Option<u32>,
}

impl From<&UnitState> for Live {
    fn from(state: &UnitState) -> Self {
        Live {
            enabled: Some(state.enabled()),
            active_state: Some(state.active_state.clone()),
            sub_state: Some(state.sub_state.clone()),
            result: Some(state.result.clone()),
            status_text: state.status_text.clone(),
            main_pid: state.main_pid,
            memory_bytes: state.memory_bytes,
            since: state.since,
            restarts: Some(state.restarts),
        }
    }
}

impl Live {
    /// The STATE column of `list`.
    pub fn state_cell(&self) -> String {
        match (&self.active_state, &self.sub_state, &self.result) {
            (Some(active), Some(sub), Some(result)) => UnitState {
                active_state: active.clone(),
                sub_state: sub.clone(),
                result: result.clone(),
                ..UnitState::default()
            }
            .describe(),
            _ => "-".into(),
        }
    }
}

/// The live state of each instance in `names` (in order) from one `systemctl show` call over
/// the loaded instance units, or `None` when systemd is not running here. An instance whose
/// unit is not loaded is inactive and disabled.
pub fn live_states(names: &[&str]) -> Option<Vec<Live>> {
    if !systemd_running() {
        return None;
    }
    let states = match show_loaded(&unit_name("*")) {
        Ok(states) => states,
        Err(err) => {
            eprintln!("warning: no unit state: {err}");
            return None;
        }
    };
    let mut by_unit: std::collections::HashMap<String, UnitState> =
        states.into_iter().map(|s| (s.id.clone(), s)).collect();
    Some(
        names
            .iter()
            .map(|name| {
                let state = by_unit
                    .remove(&unit_name(name))
                    .unwrap_or_else(|| UnitState {
                        load_state: "loaded".into(),
                        active_state: "inactive".into(),
                        sub_state: "dead".into(),
                        unit_file_state: "disabled".into(),
                        ..UnitState::default()
                    });
                Live::from(&state)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "MainPID=187\n\
        StatusText=c1m1_hotel, 2/8 players (2 bots) — Coop One\n\
        Result=success\nNRestarts=0\nExecMainExitTimestamp=\nExecMainCode=0\nExecMainStatus=0\n\
        MemoryCurrent=974848\nId=left4me-server@coop1.service\nLoadState=loaded\n\
        ActiveState=active\nSubState=running\n\
        DropInPaths=/usr/lib/systemd/system/left4me-server@.service.d/10-hardening.conf /run/systemd/generator/left4me-server@coop1.service.d/50-left4me.conf\n\
        UnitFileState=enabled\nStateChangeTimestamp=@1795304571\nNeedDaemonReload=no\n\
        StartLimitBurst=5\nStartLimitIntervalUSec=1min\n\
        \n\
        MainPID=0\nStatusText=srcds was killed by signal 11\nResult=exit-code\nNRestarts=5\n\
        ExecMainExitTimestamp=@1795304581\nExecMainCode=1\nExecMainStatus=139\n\
        MemoryCurrent=[not set]\nId=left4me-server@crashy.service\nLoadState=loaded\n\
        ActiveState=failed\nSubState=failed\n\
        DropInPaths=/usr/lib/systemd/system/left4me-server@.service.d/10-hardening.conf\n\
        UnitFileState=disabled\nStateChangeTimestamp=\nNeedDaemonReload=yes\n";

    #[test]
    fn parses_show_blocks() {
        let blocks = parse_show(SHOW);
        assert_eq!(blocks.len(), 2);
        let a = UnitState::from_properties(&blocks[0]);
        assert_eq!(a.id, "left4me-server@coop1.service");
        assert_eq!(a.describe(), "active (running)");
        assert_eq!(
            a.status_text.as_deref(),
            Some("c1m1_hotel, 2/8 players (2 bots) — Coop One")
        );
        assert_eq!(a.main_pid, Some(187));
        assert_eq!(a.memory_bytes, Some(974_848));
        assert_eq!(a.since, Some(1_795_304_571));
        assert_eq!(a.last_exit, None);
        assert!(a.enabled() && a.has_generated_dropin() && !a.need_daemon_reload);
        assert_eq!(a.start_limit_burst, 5);
        assert_eq!(a.start_limit_interval, "1min");

        let b = UnitState::from_properties(&blocks[1]);
        assert_eq!(b.describe(), "failed (exit-code)");
        assert_eq!((b.main_pid, b.memory_bytes, b.since), (None, None, None));
        assert_eq!(b.restarts, 5);
        let exit = b.last_exit.clone().unwrap();
        assert_eq!(exit.describe(), "exited with status 139");
        assert!(!b.enabled() && !b.has_generated_dropin() && b.need_daemon_reload);
    }

    #[test]
    fn describes_states_and_exits() {
        let state = |active: &str, sub: &str| UnitState {
            active_state: active.into(),
            sub_state: sub.into(),
            result: "watchdog".into(),
            ..UnitState::default()
        };
        assert_eq!(state("inactive", "dead").describe(), "inactive");
        assert_eq!(
            state("activating", "auto-restart").describe(),
            "activating (auto-restart)"
        );
        assert_eq!(state("failed", "failed").describe(), "failed (watchdog)");
        let killed = LastExit {
            code: "killed",
            status: 9,
            at: None,
        };
        assert_eq!(killed.describe(), "killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn error_messages_indent_stderr() {
        assert_eq!(indented(""), "");
        assert_eq!(indented("one\n"), ": one");
        assert_eq!(indented("one\ntwo"), ":\n  one\n  two");
    }

    #[test]
    fn live_state_cells() {
        assert_eq!(Live::default().state_cell(), "-");
        let live = Live::from(&UnitState {
            active_state: "activating".into(),
            sub_state: "auto-restart".into(),
            result: "signal".into(),
            ..UnitState::default()
        });
        assert_eq!(live.state_cell(), "activating (auto-restart)");
    }
}
