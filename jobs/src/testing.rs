//! Test support (this crate's tests, and other crates' with the `testing` feature): a
//! recording double of [`UnitRunner`] that plays a scripted run instead of starting a unit, and
//! a temporary directory, and a host whose files all lie in one.

use std::ffi::OsString;
use std::io::{self, BufRead, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use left4me_contract::Ids;

use crate::job::Host;
use crate::stream::Stop;
use crate::systemd::{RunError, Started, UnitRunner};

/// A directory under the system's temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty `left4me-jobs-TAG-PID` directory.
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("left4me-jobs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A [`Host`] whose every file lies in `dir` (ledger and locks in `admin/`, resolver files,
/// `run/`), with instances under `state/runtime` and a passwd file naming the users `game` and
/// `sandbox` with the given ids.
pub fn test_host(dir: &Path, state: &Path, game: Ids, sandbox: Ids) -> Host {
    let passwd = dir.join("passwd");
    std::fs::write(
        &passwd,
        format!(
            "game:x:{}:{}::/:/bin/false\nsandbox:x:{}:{}::/:/bin/false\n",
            game.uid, game.gid, sandbox.uid, sandbox.gid
        ),
    )
    .expect("write the test passwd file");
    Host {
        database: dir.join("admin/left4me.db"),
        runtime_root: state.join("runtime"),
        locks_dir: dir.join("admin/locks"),
        run_dir: dir.join("run"),
        passwd,
        etc_resolv_conf: dir.join("resolv.conf"),
        resolved_upstream: dir.join("none"),
    }
}

/// This process's effective uid and gid.
pub fn current_ids() -> Ids {
    Ids {
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    }
}

/// One call the pipeline made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    LoadedUnits(String),
    Start(Vec<OsString>),
    Stop(String),
    Kill(String),
}

/// What the scripted run does.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// Whether this process may start units (root).
    pub may_start_units: bool,
    /// The units `loaded_units` reports.
    pub loaded_units: Vec<String>,
    /// What systemd-run prints: the job's lines, then its summary.
    pub output: String,
    /// systemd-run's exit status.
    pub exit: Option<i32>,
    /// Files the "command" writes into its output dir (relative path, content); a content
    /// starting with `->` makes a symlink to the rest, one starting with `=>` a hard link of
    /// the file at the rest (relative to the output dir, written before).
    pub files: Vec<(PathBuf, String)>,
    /// Files of any bytes the "command" writes into its output dir, before `files`.
    pub bytes: Vec<(PathBuf, Vec<u8>)>,
    /// The owner of those files (the game user).
    pub owner: Option<Ids>,
    /// Requested when the run starts; the run then waits until the unit is stopped.
    pub stop: Option<Stop>,
}

impl Scenario {
    /// A run that prints `lines` and whose command exits with `status`.
    pub fn exiting(lines: &[&str], status: i32) -> Self {
        let mut output: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let result = if status == 0 { "success" } else { "exit-code" };
        output.push_str(&format!(
            "Finished with result: {result}\nMain processes terminated with: \
             code=exited/status={status}\nService runtime: 12ms\n"
        ));
        Scenario {
            may_start_units: true,
            output,
            exit: Some(status),
            ..Scenario::default()
        }
    }
}

/// The stop signal between the double's run and its `stop`.
type Stopped = Arc<(Mutex<bool>, Condvar)>;

/// A [`UnitRunner`] that records every call and plays a [`Scenario`] (or, made with
/// [`RecordingRunner::sequence`], one scenario per started unit).
#[derive(Debug, Default)]
pub struct RecordingRunner {
    pub scenario: Scenario,
    /// The scenarios still to play, one per `start`; when empty, `scenario` plays.
    queue: Mutex<std::collections::VecDeque<Scenario>>,
    calls: Mutex<Vec<Call>>,
    stopped: Stopped,
}

impl RecordingRunner {
    pub fn new(scenario: Scenario) -> Self {
        RecordingRunner {
            scenario,
            ..RecordingRunner::default()
        }
    }

    /// Plays `scenarios` in order, one per started unit; the last one again after that.
    pub fn sequence(scenarios: Vec<Scenario>) -> Self {
        let last = scenarios.last().cloned().unwrap_or_default();
        RecordingRunner {
            scenario: last,
            queue: Mutex::new(scenarios.into()),
            ..RecordingRunner::default()
        }
    }

    /// The argument vectors of every `systemd-run` started, in order.
    pub fn started(&self) -> Vec<Vec<OsString>> {
        self.calls()
            .into_iter()
            .filter_map(|call| match call {
                Call::Start(args) => Some(args),
                _ => None,
            })
            .collect()
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, call: Call) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
    }

    /// Writes the scenario's files into the runner's `--output` dir.
    fn write_files(&self, scenario: &Scenario, args: &[OsString]) -> io::Result<()> {
        let Some(at) = args.iter().position(|a| a == "--output") else {
            return Ok(());
        };
        let output = PathBuf::from(&args[at + 1]);
        let bytes = scenario.bytes.iter().map(|(rel, b)| (rel, &b[..]));
        let texts = scenario.files.iter().map(|(rel, t)| (rel, t.as_bytes()));
        for (rel, content) in bytes.chain(texts) {
            let path = output.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let text = std::str::from_utf8(content).unwrap_or("");
            if let Some(target) = text.strip_prefix("->") {
                std::os::unix::fs::symlink(target, &path)?;
            } else if let Some(target) = text.strip_prefix("=>") {
                std::fs::hard_link(output.join(target), &path)?;
            } else {
                std::fs::write(&path, content)?;
            }
            if let Some(owner) = scenario.owner {
                for p in path.ancestors().take_while(|p| p.starts_with(&output)) {
                    std::os::unix::fs::lchown(p, Some(owner.uid), Some(owner.gid))?;
                }
            }
        }
        Ok(())
    }
}

impl UnitRunner for RecordingRunner {
    fn may_start_units(&self) -> bool {
        self.scenario.may_start_units
    }

    fn is_booted(&self) -> bool {
        true
    }

    fn loaded_units(&self, pattern: &str) -> Vec<String> {
        self.record(Call::LoadedUnits(pattern.to_owned()));
        self.scenario.loaded_units.clone()
    }

    fn start(&self, args: &[OsString]) -> Result<Box<dyn Started>, RunError> {
        self.record(Call::Start(args.to_vec()));
        let scenario = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .unwrap_or_else(|| self.scenario.clone());
        self.write_files(&scenario, args).map_err(RunError::Spawn)?;
        let wait_for_stop = scenario.stop.as_ref().map(|stop| {
            stop.request();
            self.stopped.clone()
        });
        Ok(Box::new(ScriptedRun {
            output: Cursor::new(scenario.output.clone().into_bytes()),
            exit: scenario.exit,
            wait_for_stop,
        }))
    }

    fn stop(&self, unit: &str) {
        self.record(Call::Stop(unit.to_owned()));
        let (lock, condvar) = &*self.stopped;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        condvar.notify_all();
    }

    fn kill(&self, unit: &str) {
        self.record(Call::Kill(unit.to_owned()));
    }
}

/// The double's "systemd-run".
#[derive(Debug)]
struct ScriptedRun {
    output: Cursor<Vec<u8>>,
    exit: Option<i32>,
    wait_for_stop: Option<Stopped>,
}

impl Started for ScriptedRun {
    fn output(&mut self) -> &mut dyn BufRead {
        &mut self.output
    }

    fn wait(&mut self) -> Result<Option<i32>, RunError> {
        if let Some(stopped) = &self.wait_for_stop {
            let (lock, condvar) = &**stopped;
            let mut done = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while !*done {
                done = condvar.wait(done).unwrap_or_else(PoisonError::into_inner);
            }
        }
        Ok(self.exit)
    }
}
