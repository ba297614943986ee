//! What must hold before a job starts: root and a running systemd, the game and sandbox users,
//! the content dir's parent, one job per name at a time (a lock file, and a look for a unit of
//! an earlier run whose left4mectl was killed), and room on the state dir's file system.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use left4me_contract::passwd::{self, Ids, PasswdError};
use rustix::fs::FlockOperation;

use crate::disk::{DiskGuard, disk_reserve, disk_space};
use crate::format_bytes;
use crate::job::{Host, Job};
use crate::systemd::UnitRunner;

/// Why a job may not start.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("overlay build needs root: it starts a system unit and writes the state dir")]
    NotRoot,
    #[error("systemd is not running here: builds run as systemd units (systemd-run)")]
    NoSystemd,
    #[error(transparent)]
    User(#[from] PasswdError),
    #[error("cannot create {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot give {} to the game user", path.display())]
    Chown {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the build lock {}", path.display())]
    OpenLock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "overlay {name} is being built already (by another left4mectl); wait for it: \
         `left4mectl overlay jobs {name}`"
    )]
    Busy { name: String },
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "an earlier build of overlay {name} still runs as {unit} (its left4mectl was stopped); \
         wait for it or `systemctl stop {unit}`"
    )]
    StillRunning { name: String, unit: String },
    #[error("cannot stat {}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the file system of {} has {} free, not more than the {} builds keep free; make room \
         first",
        path.display(),
        format_bytes(*free),
        format_bytes(*reserve)
    )]
    NoRoom {
        path: PathBuf,
        free: u64,
        reserve: u64,
    },
}

impl PreflightError {
    /// Whether the operator's request, not the host, is at fault (left4mectl's usage errors).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PreflightError::NotRoot
                | PreflightError::NoSystemd
                | PreflightError::Busy { .. }
                | PreflightError::StillRunning { .. }
        )
    }
}

/// Root, and systemd as init.
pub fn check_host(runner: &dyn UnitRunner) -> Result<(), PreflightError> {
    if !runner.may_start_units() {
        return Err(PreflightError::NotRoot);
    }
    if !runner.is_booted() {
        return Err(PreflightError::NoSystemd);
    }
    Ok(())
}

/// The game user's ids, once both users are known to exist.
pub fn check_users(job: &Job, host: &Host) -> Result<Ids, PreflightError> {
    let setting_game = "game_user in /etc/left4me/host.toml";
    let setting_sandbox = "sandbox_user in /etc/left4me/host.toml";
    let game = passwd::lookup(&host.passwd, &job.game_user, setting_game)?;
    passwd::lookup(&host.passwd, &job.sandbox_user, setting_sandbox)?;
    Ok(game)
}

/// Creates `dir` (with its parents) when it is missing and gives it to `owner`.
pub fn ensure_owned_dir(dir: &Path, owner: Ids) -> Result<(), PreflightError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|source| PreflightError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid)).map_err(|source| {
        PreflightError::Chown {
            path: dir.to_path_buf(),
            source,
        }
    })
}

/// The exclusive lock on the jobs of one name; released when dropped.
#[derive(Debug)]
pub struct JobLock(#[allow(dead_code)] fs::File);

/// Takes the lock of `job`'s name in `host.run_dir` (created when missing), without waiting.
pub fn lock(job: &Job, host: &Host) -> Result<JobLock, PreflightError> {
    fs::create_dir_all(&host.run_dir).map_err(|source| PreflightError::CreateDir {
        path: host.run_dir.clone(),
        source,
    })?;
    let path = host.run_dir.join(format!("{}.lock", job.name));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| PreflightError::OpenLock {
            path: path.clone(),
            source,
        })?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(JobLock(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(PreflightError::Busy {
            name: job.name.clone(),
        }),
        Err(e) => Err(PreflightError::Lock {
            path,
            source: e.into(),
        }),
    }
}

/// Refuses to start while a unit of an earlier run of the same job is still loaded (its
/// left4mectl was killed; the lock died with it, the unit did not).
pub fn check_no_earlier_unit(job: &Job, runner: &dyn UnitRunner) -> Result<(), PreflightError> {
    let prefix = format!("{}-{}-", job.kind.unit_prefix(), job.name);
    let earlier = runner
        .loaded_units(&format!("{prefix}*.service"))
        .into_iter()
        .find(|unit| {
            unit.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".service"))
                .is_some_and(|id| id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        });
    match earlier {
        Some(unit) => Err(PreflightError::StillRunning {
            name: job.name.clone(),
            unit,
        }),
        None => Ok(()),
    }
}

/// The disk guard for `dir`, when its file system has more than the reserve free.
pub fn check_disk(dir: &Path) -> Result<DiskGuard, PreflightError> {
    let (free, total) = disk_space(dir).map_err(|source| PreflightError::Stat {
        path: dir.to_path_buf(),
        source,
    })?;
    let reserve = disk_reserve(total);
    if free <= reserve {
        return Err(PreflightError::NoRoom {
            path: dir.to_path_buf(),
            free,
            reserve,
        });
    }
    Ok(DiskGuard {
        dir: dir.to_path_buf(),
        reserve,
    })
}
