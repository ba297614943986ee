//! What must hold before a job starts: root and a running systemd, the game and sandbox users,
//! one job per name at a time (the overlay's lock, taken by the pipeline, and a look for a unit
//! of an earlier run whose left4mectl was killed), and room (bytes and inodes) on the state
//! dir's file system.

use std::io;
use std::path::{Path, PathBuf};

use left4me_contract::passwd::{self, Ids, PasswdError};

use crate::content::ContentError;
use crate::disk::{DiskGuard, Reserve, room};
use crate::format_bytes;
use crate::job::{Host, Job, JobKind};
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
    /// The overlay's lock (busy: another left4mectl builds or removes it) or its dir.
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(
        "an earlier {what} still runs as {unit} (its left4mectl was stopped); \
         wait for it or `systemctl stop {unit}`"
    )]
    StillRunning { what: String, unit: String },
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
    #[error(
        "the file system of {} has {free} free inodes, not more than the {reserve} builds keep \
         free; remove files first",
        path.display()
    )]
    NoInodes {
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
                | PreflightError::StillRunning { .. }
        ) || matches!(self, PreflightError::Content(c) if c.is_busy())
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
    check_user_names(&job.game_user, &job.sandbox_user, host)
}

/// [`check_users`] for users given by name: the game user's ids.
pub fn check_user_names(
    game_user: &str,
    sandbox_user: &str,
    host: &Host,
) -> Result<Ids, PreflightError> {
    let setting_game = "game_user in /etc/left4me/host.toml";
    let setting_sandbox = "sandbox_user in /etc/left4me/host.toml";
    let game = passwd::lookup(&host.passwd, game_user, setting_game)?;
    passwd::lookup(&host.passwd, sandbox_user, setting_sandbox)?;
    Ok(game)
}

/// Refuses to start while a unit of an earlier run of the same job is still loaded (its
/// left4mectl was killed; the lock died with it, the unit did not).
pub fn check_no_earlier_unit(job: &Job, runner: &dyn UnitRunner) -> Result<(), PreflightError> {
    check_no_earlier_units(job.kind, &job.name, runner)
}

/// Refuses to start a job of `kind` named `name` while a unit of any kind of its
/// [`JobKind::family`] is still loaded.
pub fn check_no_earlier_units(
    kind: JobKind,
    name: &str,
    runner: &dyn UnitRunner,
) -> Result<(), PreflightError> {
    for &other in kind.family() {
        let prefix = other.unit_stem(name);
        let earlier = runner
            .loaded_units(&format!("{prefix}*.service"))
            .into_iter()
            .find(|unit| {
                unit.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".service"))
                    .is_some_and(|id| id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            });
        if let Some(unit) = earlier {
            return Err(PreflightError::StillRunning {
                what: other.what(name),
                unit,
            });
        }
    }
    Ok(())
}

/// The disk guard for `dir`, when its file system has more than the reserves free (bytes and
/// inodes).
pub fn check_disk(dir: &Path) -> Result<DiskGuard, PreflightError> {
    let room = room(dir).map_err(|source| PreflightError::Stat {
        path: dir.to_path_buf(),
        source,
    })?;
    let reserve = Reserve::for_room(&room);
    if room.bytes_free <= reserve.bytes {
        return Err(PreflightError::NoRoom {
            path: dir.to_path_buf(),
            free: room.bytes_free,
            reserve: reserve.bytes,
        });
    }
    if reserve.inodes > 0 && room.inodes_free <= reserve.inodes {
        return Err(PreflightError::NoInodes {
            path: dir.to_path_buf(),
            free: room.inodes_free,
            reserve: reserve.inodes,
        });
    }
    Ok(DiskGuard {
        dir: dir.to_path_buf(),
        reserve,
    })
}
