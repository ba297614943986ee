//! An instance's runtime dir (`<state dir>/runtime/NAME`) as `reset` and `delete` remove it:
//! the supervisor's `cleanup` unmounts the overlay, PID 1's mountinfo confirms nothing is
//! mounted beneath it any more, then the dir goes.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use left4me_spec::Layout;

/// The supervisor, whose `cleanup` verb unmounts an instance's overlay.
const SUPERVISOR: &str = "/usr/lib/left4me/left4me-supervisor";
/// Overrides [`SUPERVISOR`] (tests).
const SUPERVISOR_ENV: &str = "LEFT4ME_SUPERVISOR";
/// Where the supervisor mounts: PID 1's mount namespace.
const PID1_MOUNTINFO: &str = "/proc/1/mountinfo";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {output}")]
    Cleanup {
        command: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error(
        "{} is still mounted (at {}); not removing {}: find what holds it with `findmnt -R {}`",
        runtime.display(),
        mounts.iter().map(|m| m.display().to_string()).collect::<Vec<_>>().join(", "),
        runtime.display(),
        runtime.display()
    )]
    StillMounted {
        runtime: PathBuf,
        mounts: Vec<PathBuf>,
    },
    #[error("cannot read {PID1_MOUNTINFO}: {0}")]
    MountInfo(String),
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What `reset` and `delete` remove: the instance's runtime dir, once nothing is mounted.
pub struct Runtime {
    name: String,
    /// `<state dir>/runtime/NAME`.
    pub dir: PathBuf,
}

impl Runtime {
    pub fn new(layout: &Layout, name: &str) -> Self {
        Runtime {
            name: name.to_owned(),
            dir: layout.runtime(name).dir,
        }
    }

    /// Runs the supervisor's `cleanup` (unmount, remove `work/work`), checks that nothing is
    /// mounted beneath the runtime dir any more, and removes it. Returns what was done.
    pub fn remove(&self) -> Result<Vec<String>, RuntimeError> {
        let mut done = vec![self.cleanup()?];
        let mounts = mounts_beneath(&self.dir)?;
        if !mounts.is_empty() {
            return Err(RuntimeError::StillMounted {
                runtime: self.dir.clone(),
                mounts,
            });
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => done.push(format!("removed {}", self.dir.display())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RuntimeError::Remove {
                    path: self.dir.clone(),
                    source,
                });
            }
        }
        Ok(done)
    }

    /// `left4me-supervisor cleanup NAME`; returns its report line.
    fn cleanup(&self) -> Result<String, RuntimeError> {
        let program = std::env::var_os(SUPERVISOR_ENV)
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from(SUPERVISOR), PathBuf::from);
        let command = format!("{} cleanup {}", program.display(), self.name);
        let out = Command::new(&program)
            .args(["cleanup", &self.name])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                command: command.clone(),
                source,
            })?;
        let said = String::from_utf8_lossy(&out.stderr)
            .lines()
            .chain(String::from_utf8_lossy(&out.stdout).lines())
            .map(|line| {
                line.strip_prefix("left4me-supervisor: ")
                    .unwrap_or(line)
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join("; ");
        if !out.status.success() {
            return Err(RuntimeError::Cleanup {
                command,
                status: out.status,
                output: said,
            });
        }
        let said = said
            .strip_prefix(&format!("{}: ", self.name))
            .unwrap_or(&said)
            .to_owned();
        Ok(if said.is_empty() {
            "cleaned up".into()
        } else {
            said
        })
    }
}

/// Mount points at or beneath `dir` in PID 1's mount namespace (where the supervisor mounts).
pub fn mounts_beneath(dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let text =
        std::fs::read(PID1_MOUNTINFO).map_err(|err| RuntimeError::MountInfo(err.to_string()))?;
    let entries = left4me_overlay::mountinfo::parse(&text)
        .map_err(|err| RuntimeError::MountInfo(err.to_string()))?;
    Ok(entries
        .into_iter()
        .map(|entry| entry.mount_point)
        .filter(|point| point.starts_with(dir))
        .collect())
}
