//! The seam between the pipeline and systemd: everything a job asks of systemd goes through
//! [`UnitRunner`], so the whole pipeline runs in unit tests against a recording double
//! (`testing::RecordingRunner`) without root or a booted systemd. [`SystemdRun`] is the
//! real thing: `systemd-run` and `systemctl`.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, PipeReader};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Exists while systemd is the running init (sd_booted(3)).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

/// Why `systemd-run` could not be run or watched.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create a pipe")]
    Pipe(#[source] io::Error),
    #[error("cannot duplicate a pipe")]
    Dup(#[source] io::Error),
    #[error("cannot run systemd-run (is systemd installed?)")]
    Spawn(#[source] io::Error),
    #[error("reading the build output")]
    Read(#[source] io::Error),
    #[error("waiting for systemd-run")]
    Wait(#[source] io::Error),
}

/// What the pipeline needs from systemd. Implementations are shared with the job's watcher
/// threads, hence `Sync`.
pub trait UnitRunner: Sync {
    /// Whether this process may start system units and write the state dir (root).
    fn may_start_units(&self) -> bool;
    /// Whether systemd is this machine's init.
    fn is_booted(&self) -> bool;
    /// The loaded units whose names match the glob `pattern`.
    fn loaded_units(&self, pattern: &str) -> Vec<String>;
    /// Starts `systemd-run ARGS`, its stdout and stderr merged into [`Started::output`].
    fn start(&self, args: &[OsString]) -> Result<Box<dyn Started>, RunError>;
    /// Asks systemd to stop `unit` (`systemctl stop --no-block`).
    fn stop(&self, unit: &str);
    /// Kills every process of `unit` with SIGKILL.
    fn kill(&self, unit: &str);
}

/// A started `systemd-run`.
pub trait Started: Send {
    /// Its output, until it exits.
    fn output(&mut self) -> &mut dyn BufRead;
    /// Waits for it; its exit status, or `None` when a signal ended it.
    fn wait(&mut self) -> Result<Option<i32>, RunError>;
}

/// The real systemd of this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemdRun;

/// Runs `systemctl ARGS` quietly; its stdout when it succeeded.
fn systemctl(args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .env("SYSTEMD_PAGER", "cat")
        .env("SYSTEMD_COLORS", "0")
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

impl UnitRunner for SystemdRun {
    fn may_start_units(&self) -> bool {
        rustix::process::geteuid().is_root()
    }

    fn is_booted(&self) -> bool {
        Path::new(SYSTEMD_RUNNING).exists()
    }

    fn loaded_units(&self, pattern: &str) -> Vec<String> {
        let Some(out) = systemctl(&["list-units", "--all", "--plain", "--no-legend", pattern])
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    fn start(&self, args: &[OsString]) -> Result<Box<dyn Started>, RunError> {
        let (reader, writer) = io::pipe().map_err(RunError::Pipe)?;
        let mut command = Command::new("systemd-run");
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().map_err(RunError::Dup)?)
            .stderr(writer)
            // Ctrl-C reaches left4mectl only; it stops the unit (systemd-run would just quit).
            .process_group(0);
        let child = command.spawn().map_err(RunError::Spawn)?;
        // `command` holds the pipe's write ends: drop it, or the reader never sees the end.
        drop(command);
        Ok(Box::new(RunningCommand {
            child,
            output: BufReader::new(reader),
        }))
    }

    fn stop(&self, unit: &str) {
        let _ = systemctl(&["stop", "--no-block", unit]);
    }

    fn kill(&self, unit: &str) {
        let _ = systemctl(&["kill", "--signal=SIGKILL", unit]);
    }
}

/// A `systemd-run` child process.
#[derive(Debug)]
struct RunningCommand {
    child: Child,
    output: BufReader<PipeReader>,
}

impl Started for RunningCommand {
    fn output(&mut self) -> &mut dyn BufRead {
        &mut self.output
    }

    fn wait(&mut self) -> Result<Option<i32>, RunError> {
        Ok(self.child.wait().map_err(RunError::Wait)?.code())
    }
}
