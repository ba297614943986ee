//! Locks that serialize root's work on one instance or one overlay across processes:
//! `left4mectl reset` and a `prepare` started by systemd, `overlay build` and `overlay rm`.
//! A lock is an `flock` on a file in the root-only locks dir (`<admin_dir>/locks`), never in the
//! state dir, so the game user can neither take nor break it.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

/// What is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Instance(&'a str),
    Overlay(&'a str),
    /// The game's versions (`game/`): one lock for every verb that changes them (install,
    /// update, validate, gc, squash).
    Game,
    /// `workshop_cache/`: downloads and their adoption, the trees linked from it, and gc.
    WorkshopCache,
}

impl Subject<'_> {
    fn file_name(self) -> String {
        match self {
            Subject::Instance(name) => format!("instance-{name}.lock"),
            Subject::Overlay(name) => format!("overlay-{name}.lock"),
            Subject::Game => "game.lock".to_owned(),
            Subject::WorkshopCache => "workshop-cache.lock".to_owned(),
        }
    }
}

impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Instance(name) => write!(f, "instance {name}"),
            Subject::Overlay(name) => write!(f, "overlay {name}"),
            Subject::Game => f.write_str("the game install"),
            Subject::WorkshopCache => f.write_str("the workshop cache"),
        }
    }
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the lock {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{subject} is busy: another left4me process is working on it; try again when it is done"
    )]
    Busy { subject: String },
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock of `subject` in `locks_dir`, waiting for another holder when `wait`,
    /// else failing with [`LockError::Busy`]. Creates `locks_dir` (0700) when missing. The names
    /// in `subject` must be valid left4me names (no `/`).
    pub fn take(locks_dir: &Path, subject: Subject<'_>, wait: bool) -> Result<Lock, LockError> {
        let path = locks_dir.join(subject.file_name());
        let open_error = |source| LockError::Open {
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(locks_dir)
            .map_err(open_error)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc_nofollow())
            .open(&path)
            .map_err(open_error)?;
        let operation = if wait {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::NonBlockingLockExclusive
        };
        loop {
            match rustix::fs::flock(&file, operation) {
                Ok(()) => return Ok(Lock { _file: file }),
                Err(Errno::INTR) => continue,
                Err(Errno::WOULDBLOCK) => {
                    return Err(LockError::Busy {
                        subject: subject.to_string(),
                    });
                }
                Err(errno) => return Err(open_error(errno.into())),
            }
        }
    }
}

/// `O_NOFOLLOW`: a lock file is never a link.
fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32 // the flag fits in i32 (0o400000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_waits_or_is_told_busy() {
        let dir = std::env::temp_dir().join(format!("left4me-lock-{}", std::process::id()));
        let first = Lock::take(&dir, Subject::Instance("coop1"), false).unwrap();
        let busy = Lock::take(&dir, Subject::Instance("coop1"), false).unwrap_err();
        assert_eq!(
            busy.to_string(),
            "instance coop1 is busy: another left4me process is working on it; try again when it \
             is done"
        );
        // Another subject is independent.
        let _other = Lock::take(&dir, Subject::Overlay("coop1"), false).unwrap();
        let game = Lock::take(&dir, Subject::Game, false).unwrap();
        let busy = Lock::take(&dir, Subject::Game, false).unwrap_err();
        assert_eq!(
            busy.to_string(),
            "the game install is busy: another left4me process is working on it; try again when \
             it is done"
        );
        drop(game);
        let cache = Lock::take(&dir, Subject::WorkshopCache, false).unwrap();
        let busy = Lock::take(&dir, Subject::WorkshopCache, false).unwrap_err();
        assert!(busy.to_string().starts_with("the workshop cache is busy"));
        assert!(dir.join("workshop-cache.lock").exists());
        drop(cache);
        let waiter = {
            let dir = dir.clone();
            std::thread::spawn(move || Lock::take(&dir, Subject::Instance("coop1"), true).is_ok())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(first);
        assert!(waiter.join().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
