//! An instance's runtime dir (`<state dir>/runtime/NAME`) as `reset` and `delete` remove it:
//! the supervisor's `cleanup` unmounts the overlay; then, holding the instance's lock (which
//! `prepare` takes too), PID 1's mountinfo must show no mount of the instance (found by its
//! `left4me:NAME:` source, and by any mount point beneath the dir), and the dir is removed
//! through descriptors opened beneath the state dir (DESIGN.md §2): no link is followed, no
//! mount is crossed, so the owner of a directory on the way cannot redirect the removal.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use left4me_spec::Layout;
use left4me_statedir::{DirError, Lock, LockError, RemoveError, StateDir, Subject};

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
        "{name}'s game tree is still mounted (at {}); not removing {}: find what holds it with \
         `findmnt -R {}`",
        mounts.iter().map(|m| m.display().to_string()).collect::<Vec<_>>().join(", "),
        runtime.display(),
        runtime.display()
    )]
    StillMounted {
        name: String,
        runtime: PathBuf,
        mounts: Vec<PathBuf>,
    },
    #[error("cannot read {PID1_MOUNTINFO}: {0}")]
    MountInfo(String),
    // The cause is in the message, not the chain: `error: {:#}` would show it twice.
    #[error("not removing {}: {error}", runtime.display())]
    State { runtime: PathBuf, error: DirError },
    #[error("cannot remove {}: {error}", runtime.display())]
    Remove {
        runtime: PathBuf,
        error: RemoveError,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// What `reset` and `delete` remove: the instance's runtime dir, once nothing is mounted.
pub struct Runtime {
    name: String,
    state_dir: PathBuf,
    locks_dir: PathBuf,
    /// `<state dir>/runtime/NAME`, for messages (never acted on by path).
    pub dir: PathBuf,
}

impl Runtime {
    pub fn new(layout: &Layout, name: &str) -> Self {
        Runtime {
            name: name.to_owned(),
            state_dir: layout.state_dir.clone(),
            locks_dir: layout.locks_dir(),
            dir: layout.runtime(name).dir,
        }
    }

    /// Whether `runtime/NAME` exists, looked up beneath the state dir without following links.
    pub fn exists(&self) -> Result<bool, RuntimeError> {
        Ok(match self.runtime_root()? {
            Some(runtime) => runtime.contains(&self.name).map_err(|e| self.state(e))?,
            None => false,
        })
    }

    /// Runs the supervisor's `cleanup` (unmount, remove `work/work`); then, holding the
    /// instance's lock, checks that nothing of the instance is mounted and removes its runtime
    /// dir. Returns what was done. Call with the instance's starts blocked
    /// ([`crate::systemd::block_starts`]) and its unit stopped.
    pub fn remove(&self) -> Result<Vec<String>, RuntimeError> {
        // Before the lock: cleanup may take it itself.
        let mut done = vec![self.cleanup()?];
        let _lock = self.lock()?;
        let mounts = instance_mounts(&self.name, &self.dir)?;
        if !mounts.is_empty() {
            return Err(RuntimeError::StillMounted {
                name: self.name.clone(),
                runtime: self.dir.clone(),
                mounts,
            });
        }
        let Some(runtime) = self.runtime_root()? else {
            return Ok(done);
        };
        let removed = runtime
            .remove_tree(&self.name)
            .map_err(|error| RuntimeError::Remove {
                runtime: self.dir.clone(),
                error,
            })?;
        if removed {
            done.push(format!("removed {}", self.dir.display()));
        }
        Ok(done)
    }

    /// `<state dir>/runtime`, opened beneath the checked state dir; `None` when either is
    /// missing (never started).
    fn runtime_root(&self) -> Result<Option<left4me_statedir::Dir>, RuntimeError> {
        let state = match StateDir::open(&self.state_dir) {
            Ok(state) => state,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(self.state(err)),
        };
        state
            .dir()
            .open_dir_if_exists(left4me_contract::layout::RUNTIME)
            .map_err(|e| self.state(e))
    }

    fn state(&self, error: DirError) -> RuntimeError {
        RuntimeError::State {
            runtime: self.dir.clone(),
            error,
        }
    }

    /// The instance's lock, waiting (and saying so) while a `prepare` holds it.
    fn lock(&self) -> Result<Lock, LockError> {
        let subject = Subject::Instance(&self.name);
        match Lock::take(&self.locks_dir, subject, false) {
            Err(LockError::Busy { .. }) => {
                eprintln!("waiting for {subject}: another left4me process is working on it");
                Lock::take(&self.locks_dir, subject, true)
            }
            other => other,
        }
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

/// The mount points of instance `name` in PID 1's mount namespace (where the supervisor
/// mounts): every mount whose source is the instance's tag `left4me:NAME:…`, wherever it is
/// now, and every mount at or beneath its runtime dir `dir`.
pub fn instance_mounts(name: &str, dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let text =
        std::fs::read(PID1_MOUNTINFO).map_err(|err| RuntimeError::MountInfo(err.to_string()))?;
    mounts_of(name, dir, &text)
}

fn mounts_of(name: &str, dir: &Path, mountinfo: &[u8]) -> Result<Vec<PathBuf>, RuntimeError> {
    let tag = format!("left4me:{name}:");
    let entries = left4me_overlay::mountinfo::parse(mountinfo)
        .map_err(|err| RuntimeError::MountInfo(err.to_string()))?;
    Ok(entries
        .into_iter()
        .filter(|entry| entry.source.starts_with(&tag) || entry.mount_point.starts_with(dir))
        .map(|entry| entry.mount_point)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_mount_is_found_by_its_tag_wherever_it_was_moved() {
        let text = b"46 42 0:40 / /s/elsewhere/merged rw - overlay left4me:x:00ff rw\n\
            47 42 0:41 / /s/runtime/x/merged/sub rw - tmpfs tmpfs rw\n\
            48 42 0:42 / /s/runtime/xy/merged rw - overlay left4me:xy:00ff rw\n\
            49 42 0:43 / /s/runtime/other rw - overlay left4me:other:00ff rw\n";
        let found = mounts_of("x", Path::new("/s/runtime/x"), text).unwrap();
        assert_eq!(
            found,
            [
                PathBuf::from("/s/elsewhere/merged"),
                PathBuf::from("/s/runtime/x/merged/sub")
            ]
        );
    }
}
