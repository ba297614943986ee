//! The `run` phase: start `merged/srcds_run` as our child, tell systemd `READY=1` only once the
//! game answers an A2S_INFO query, keep `STATUS=` current, feed the watchdog only while queries
//! are answered, forward stop signals, and exit with the game's status.
//!
//! One thread, no async runtime: the loop sleeps in `poll(2)` on a self-pipe that the signal
//! handlers (SIGINT, SIGTERM, SIGCHLD) write to, waking for signals or the next query.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use left4me_overlay::Owner;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, Signal, kill_process};
use signal_hook::consts::{SIGABRT, SIGCHLD, SIGINT, SIGTERM};

use crate::exit::EXIT_NOT_READY;
use crate::notify::{NOTIFY_ENV, Notifier};
use left4me_a2s::{A2sClient, A2sError, Info};

/// How long one query may take. The loop is blocked meanwhile, so this also bounds how late a
/// stop signal is forwarded while the game is not answering.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);
/// While nothing listens on the port yet, probing it is free for the game: probe often so
/// readiness is seen quickly.
const PROBE_CLOSED_PORT_EVERY: Duration = Duration::from_millis(10);
/// Once ready, how often the status line is refreshed (and the watchdog fed).
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How often, at most, `STATUS=`/`EXTEND_TIMEOUT_USEC=` go to systemd while waiting.
const TELL_EVERY: Duration = Duration::from_secs(1);
/// How much more start-up time each status update while waiting asks systemd for.
const EXTEND_BY: Duration = Duration::from_secs(10);

/// Everything `run` needs, derived from the instance spec.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub name: String,
    /// `merged/srcds_run` and its arguments.
    pub argv: Vec<String>,
    /// `merged/left4dead2`.
    pub cwd: PathBuf,
    /// The state dir, so `~/.steam/sdk32/steamclient.so` resolves.
    pub home: PathBuf,
    pub port: u16,
    /// `None`: wait forever for the first answer.
    pub ready_timeout: Option<Duration>,
    /// Started as root (outside systemd): run the game as this user instead.
    pub game_user: Option<Owner>,
}

/// Why the game could not be supervised.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up signal handling: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot wait for the game server: {0}")]
    Wait(#[source] std::io::Error),
    #[error("cannot open the query socket: {0}")]
    Query(#[source] A2sError),
}

/// Stop signals caught so far and a pipe that wakes the loop on every signal.
struct Signals {
    stop: Arc<AtomicUsize>,
    wake: UnixStream,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        let stop = Arc::new(AtomicUsize::new(0));
        // The flag handlers run before the pipe handlers (registration order), so the loop
        // always sees the flag once it wakes.
        for signal in [SIGINT, SIGTERM, SIGABRT] {
            signal_hook::flag::register_usize(signal, Arc::clone(&stop), signal as usize)?;
        }
        let (wake, writer) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        for signal in [SIGINT, SIGTERM, SIGABRT, SIGCHLD] {
            signal_hook::low_level::pipe::register(signal, writer.try_clone()?)?;
        }
        Ok(Signals { stop, wake })
    }

    /// Sleeps until a signal arrives or `timeout` passes.
    fn wait(&mut self, timeout: Duration) {
        let mut fds = [PollFd::new(&self.wake, PollFlags::IN)];
        let timeout = rustix::time::Timespec::try_from(timeout).ok();
        let _ = poll(&mut fds, timeout.as_ref());
        let mut drain = [0u8; 64];
        while matches!(self.wake.read(&mut drain), Ok(n) if n > 0) {}
    }

    /// The stop signal received since the last call, if any.
    fn take_stop(&self) -> Option<Signal> {
        match self.stop.swap(0, Ordering::SeqCst) {
            0 => None,
            n => Signal::from_named_raw(n as i32),
        }
    }
}

/// Where the instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Ready,
    /// A stop signal was forwarded; waiting for the game to exit.
    Stopping,
    /// The game never answered within `ready_timeout`; it was told to quit.
    GaveUp,
}

/// Runs the game until it exits; returns the exit code for `run`.
pub fn run(config: &RunConfig, notifier: &Notifier) -> Result<i32, RunError> {
    let mut signals = Signals::install().map_err(RunError::Signals)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    let client = A2sClient::connect(addr, QUERY_TIMEOUT).map_err(RunError::Query)?;
    let mut child = spawn(config)?;
    let pid = Pid::from_raw(child.id() as i32).expect("a child has a positive pid");
    let started = Instant::now();
    log::info!(
        "left4me-supervisor: started srcds (pid {pid}): {}",
        config.argv.join(" ")
    );
    notifier.status(&format!(
        "Starting srcds, waiting for it to answer on port {}",
        config.port
    ));

    let status_every = match notifier.watchdog_interval() {
        Some(watchdog) => STATUS_EVERY.min(watchdog / 3),
        None => STATUS_EVERY,
    };
    let mut phase = Phase::Starting;
    let mut next_query = started + PROBE_CLOSED_PORT_EVERY;
    let mut failing_since: Option<Instant> = None;
    // The stop signal forwarded to the game (SIGINT or SIGTERM): a death by it is a clean stop.
    let mut stop_sent: Option<Signal> = None;
    let mut last_told: Option<Instant> = None;
    loop {
        signals.wait(next_query.saturating_duration_since(Instant::now()));
        if let Some(signal) = signals.take_stop() {
            // SIGABRT is systemd's watchdog (WatchdogSignal=): the game stopped answering, so it
            // is killed outright and the overlay is free to unmount when ExecStopPost runs.
            let (shown, forward, forwarded) = match signal {
                Signal::INT => ("SIGINT", Signal::INT, "SIGINT"),
                Signal::TERM => ("SIGTERM", Signal::TERM, "SIGTERM"),
                _ => ("SIGABRT (watchdog)", Signal::KILL, "SIGKILL"),
            };
            log::info!("left4me-supervisor: {shown} received, sending srcds {forwarded}");
            let _ = kill_process(pid, forward);
            if forward != Signal::KILL {
                stop_sent = Some(forward);
            }
            if phase != Phase::GaveUp {
                phase = Phase::Stopping;
            }
            notifier.status("Stopping: waiting for srcds to exit");
        }
        if let Some(status) = child.try_wait().map_err(RunError::Wait)? {
            return Ok(finish(status, phase, stop_sent, notifier));
        }
        if matches!(phase, Phase::Stopping | Phase::GaveUp) {
            next_query = Instant::now() + Duration::from_secs(3600);
            continue;
        }
        if Instant::now() < next_query {
            continue;
        }
        let answer = client.info();
        let now = Instant::now();
        next_query = now + status_every;
        match (answer, phase) {
            (Ok(info), Phase::Starting) => {
                log::info!(
                    "left4me-supervisor: srcds answers after {:.3}s: {}",
                    started.elapsed().as_secs_f64(),
                    describe(&info)
                );
                notifier.ready(&describe(&info));
                notifier.watchdog();
                phase = Phase::Ready;
            }
            (Ok(info), _) => {
                if failing_since.take().is_some() {
                    log::info!("left4me-supervisor: srcds answers queries again");
                }
                notifier.status(&describe(&info));
                notifier.watchdog();
            }
            (Err(err), Phase::Starting) => {
                let waited = started.elapsed();
                if config.ready_timeout.is_some_and(|limit| waited >= limit) {
                    log::warn!(
                        "left4me-supervisor: srcds did not answer within {} ({err}); telling it to quit",
                        seconds(waited)
                    );
                    notifier.status(&format!(
                        "Failed: srcds did not answer queries on port {} within {}",
                        config.port,
                        seconds(waited)
                    ));
                    let _ = kill_process(pid, Signal::INT);
                    phase = Phase::GaveUp;
                    continue;
                }
                // Tell systemd at most once a second, however often the port is probed.
                if last_told.is_none_or(|at| now - at >= TELL_EVERY) {
                    last_told = Some(now);
                    notifier.status(&format!(
                        "Waiting for srcds to answer on port {} ({} so far)",
                        config.port,
                        seconds(waited)
                    ));
                    notifier.extend_timeout(EXTEND_BY);
                }
                // A closed port costs the game nothing to probe; a bound but silent one has
                // just cost us QUERY_TIMEOUT, so asking again at once stays within 2 queries/s.
                // Anything else (a garbled answer) waits like a closed port: no busy loop.
                next_query = match err {
                    A2sError::Timeout { .. } => now,
                    _ => now + PROBE_CLOSED_PORT_EVERY,
                };
            }
            (Err(err), _) => {
                let since = *failing_since.get_or_insert(now);
                if since == now {
                    log::warn!("left4me-supervisor: srcds stopped answering queries: {err}");
                }
                notifier.status(&format!(
                    "Not answering queries for {} (watchdog not fed)",
                    seconds(now - since)
                ));
            }
        }
    }
}

fn spawn(config: &RunConfig) -> Result<Child, RunError> {
    let mut command = Command::new(&config.argv[0]);
    command
        .args(&config.argv[1..])
        .current_dir(&config.cwd)
        .env("HOME", &config.home)
        .stdin(Stdio::null());
    for var in NOTIFY_ENV {
        command.env_remove(var);
    }
    if let Some(owner) = config.game_user {
        // std drops supplementary groups too when it changes the uid as root.
        command.uid(owner.uid).gid(owner.gid);
    }
    command.spawn().map_err(|source| RunError::Spawn {
        program: config.argv[0].clone(),
        source,
    })
}

/// Tells systemd we are stopping and turns the game's exit into ours: its exit code; 0 when the
/// stop signal we forwarded (`stop_sent`) killed it, since a stop is never a failure; else
/// 128+signal for a death by a signal nobody asked for (a crash fails the unit).
fn finish(status: ExitStatus, phase: Phase, stop_sent: Option<Signal>, notifier: &Notifier) -> i32 {
    let (code, how) = exit_code(status.code(), status.signal(), stop_sent);
    log::info!("left4me-supervisor: srcds {how}");
    notifier.stopping(&format!("srcds {how}"));
    if phase == Phase::GaveUp {
        EXIT_NOT_READY
    } else {
        code
    }
}

/// `run`'s exit code and a description, from the game's exit code or killing signal.
fn exit_code(code: Option<i32>, signal: Option<i32>, stop_sent: Option<Signal>) -> (i32, String) {
    match (code, signal) {
        (Some(code), _) => (code, format!("exited with status {code}")),
        (None, Some(signal)) if stop_sent.is_some_and(|s| s.as_raw() == signal) => (
            0,
            format!("was stopped by signal {signal}, as asked (a clean stop)"),
        ),
        (None, Some(signal)) => (128 + signal, format!("was killed by signal {signal}")),
        (None, None) => (1, "ended in an unknown way".into()),
    }
}

/// The status line: `c1m1_hotel, 3/8 players (1 bot) — Coop #1`.
pub fn describe(info: &Info) -> String {
    let bots = match info.bots {
        0 => String::new(),
        1 => " (1 bot)".into(),
        n => format!(" ({n} bots)"),
    };
    format!(
        "{}, {}/{} players{bots} — {}",
        info.map, info.players, info.max_players, info.name
    )
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_is_not_a_failure_but_a_crash_is() {
        let (int, term, segv) = (Signal::INT.as_raw(), Signal::TERM.as_raw(), 11);
        assert_eq!(exit_code(Some(0), None, Some(Signal::INT)).0, 0);
        assert_eq!(exit_code(None, Some(int), Some(Signal::INT)).0, 0);
        assert_eq!(exit_code(None, Some(term), Some(Signal::TERM)).0, 0);
        // A signal nobody forwarded, or another than the one forwarded: a failure.
        assert_eq!(exit_code(None, Some(int), None).0, 128 + int);
        assert_eq!(
            exit_code(None, Some(segv), Some(Signal::TERM)).0,
            128 + segv
        );
        assert_eq!(exit_code(Some(3), None, Some(Signal::INT)).0, 3);
    }
}
