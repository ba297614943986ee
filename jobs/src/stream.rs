//! Running the unit and streaming its output: every line of `systemd-run --pipe`, sanitized,
//! goes to the caller's [`Progress`] with the time since the start; systemd-run's own summary
//! lines are held back and parsed ([`Summary`]). While the unit runs, a watcher thread polls the
//! [`DiskGuard`] and forwards a [`Stop`] request to systemd, and SIGINT, SIGTERM and SIGHUP of
//! this process request a stop instead of leaving the unit running.

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::disk::DiskGuard;
use crate::progress::{Event, Progress};
use crate::systemd::{RunError, UnitRunner};
use crate::unit::TransientUnit;
use crate::verdict::{Failure, Summary};

/// How many lines of a job's output the report and the ledger keep.
pub const TAIL_LINES: usize = 50;

/// The longest output line shown or kept; longer ones are cut.
const MAX_LINE: usize = 2000;

/// How often the watcher looks at the disk and at stop requests.
const POLL: Duration = Duration::from_millis(100);

/// The lines `systemd-run --wait` prints after the unit has ended (its own, not the job's).
const SUMMARY_PREFIXES: &[&str] = &[
    "Finished with result: ",
    "Main processes terminated with: ",
    "Service runtime: ",
    "CPU time consumed: ",
    "IP traffic received: ",
    "IP traffic sent: ",
    "IO bytes read: ",
    "IO bytes written: ",
];

/// Why the unit's output could not be streamed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
}

/// A request to stop a running job, shared between the caller, the signal thread and the
/// watcher. Requesting it before the job runs stops the job as soon as it starts.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn new() -> Self {
        Stop::default()
    }

    /// Requests the stop; whether it had been requested already.
    pub fn request(&self) -> bool {
        self.0.swap(true, Ordering::SeqCst)
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Makes untrusted output safe for a terminal: a carriage-return progress line keeps its last
/// state, control characters (escape sequences!) are shown as `\xNN`, long lines are cut.
pub fn sanitize(line: &str) -> String {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let line = line
        .rsplit('\r')
        .find(|segment| !segment.is_empty())
        .unwrap_or("");
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if out.len() >= MAX_LINE {
            out.push('…');
            break;
        }
        match c {
            '\t' => out.push(c),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// What a finished run printed and how it ended.
#[derive(Debug, Clone, Default)]
pub struct Streamed {
    /// The last [`TAIL_LINES`] lines shown.
    pub tail: Vec<String>,
    pub summary: Summary,
    /// systemd-run's exit status (`None`: killed by a signal).
    pub run_status: Option<i32>,
    /// Whether a [`Stop`] was requested.
    pub interrupted: bool,
    /// What the disk guard stopped the job for.
    pub guard: Option<Failure>,
}

type Shared<'a, 'p> = Mutex<&'a mut (dyn Progress + 'p)>;

fn tell(progress: &Shared<'_, '_>, event: Event<'_>) {
    progress
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .event(event);
}

/// Runs `unit` through `runner` until it ends, streaming its output to `progress`.
pub fn run_unit(
    runner: &dyn UnitRunner,
    unit: &TransientUnit,
    guard: &DiskGuard,
    stop: &Stop,
    progress: &mut dyn Progress,
) -> Result<Streamed, StreamError> {
    let mut started = runner.start(&unit.systemd_run_args())?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(StreamError::Signals)?;
    let signal_handle = signals.handle();
    let name = unit.unit.as_str();
    let progress: Shared<'_, '_> = Mutex::new(progress);
    let done = AtomicBool::new(false);
    let guard_failure: Mutex<Option<Failure>> = Mutex::new(None);
    let (read, status) = std::thread::scope(|scope| {
        scope.spawn(|| {
            for signal in signals.forever() {
                if !stop.request() {
                    tell(&progress, Event::Stopping { signal, unit: name });
                }
            }
        });
        let watcher = scope.spawn(|| {
            let mut stopping = false;
            let mut guarding = true;
            while !done.load(Ordering::SeqCst) {
                if guarding && let Some(failure) = guard.check(true) {
                    runner.kill(name);
                    *guard_failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
                    guarding = false;
                }
                if !stopping && stop.is_requested() {
                    runner.stop(name);
                    stopping = true;
                }
                std::thread::park_timeout(POLL);
            }
        });
        let read = read_lines(started.output(), name, &progress);
        let status = started.wait();
        done.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        signal_handle.close();
        (read, status)
    });
    let (tail, held) = read?;
    Ok(Streamed {
        tail: tail.into(),
        summary: Summary::parse(&held),
        run_status: status?,
        interrupted: stop.is_requested(),
        guard: guard_failure
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner),
    })
}

/// Reads the output to its end: shows each line, keeps the tail, holds back the summary.
fn read_lines(
    output: &mut dyn BufRead,
    unit: &str,
    progress: &Shared<'_, '_>,
) -> Result<(VecDeque<String>, Vec<String>), RunError> {
    let started = Instant::now();
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut held: Vec<String> = Vec::new();
    let mut first = true;
    let show = |tail: &mut VecDeque<String>, line: String, at: Duration| {
        tell(progress, Event::Line { at, text: &line });
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match output.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RunError::Read(e)),
        }
        let line = sanitize(&String::from_utf8_lossy(&buf));
        if first {
            first = false;
            if line.starts_with(&format!("Running as unit: {unit}")) {
                continue;
            }
        }
        if SUMMARY_PREFIXES.iter().any(|p| line.starts_with(p)) {
            held.push(line);
            continue;
        }
        let at = started.elapsed();
        for earlier in held.drain(..) {
            show(&mut tail, earlier, at);
        }
        show(&mut tail, line, at);
    }
    Ok((tail, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_terminal_escapes_and_progress() {
        assert_eq!(sanitize("plain\n"), "plain");
        assert_eq!(
            sanitize("\x1b]52;c;ZXZpbA==\x07x"),
            "\\x1b]52;c;ZXZpbA==\\x07x"
        );
        assert_eq!(sanitize(" 10%\r 50%\r100%\r\n"), "100%");
        assert_eq!(sanitize("a\tb"), "a\tb");
        assert!(sanitize(&"x".repeat(5000)).ends_with('…'));
        assert!(sanitize(&"x".repeat(5000)).len() < 2100);
    }

    #[test]
    fn holds_back_the_summary_and_skips_the_unit_line() {
        let text = "Running as unit: u.service; invocation ID: x\nFinished with result: x\n\
                    one\nFinished with result: success\nService runtime: 1ms\n";
        let mut lines = Vec::new();
        let mut collect = |event: Event<'_>| {
            if let Event::Line { text, .. } = event {
                lines.push(text.to_owned());
            }
        };
        let (tail, held) = {
            let progress: Shared<'_, '_> = Mutex::new(&mut collect);
            read_lines(&mut text.as_bytes(), "u.service", &progress).unwrap()
        };
        // A summary-looking line followed by more output was the job's own.
        assert_eq!(lines, ["Finished with result: x", "one"]);
        assert_eq!(tail, ["Finished with result: x", "one"]);
        assert_eq!(
            held,
            ["Finished with result: success", "Service runtime: 1ms"]
        );
    }
}
