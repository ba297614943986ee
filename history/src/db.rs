//! Opening root's `left4me.db`, shared by the spec history and the job ledger (left4me-jobs):
//! both live in that one SQLite file, and the lock-safe way to open it belongs in one place.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use rustix::fs::{Mode, OFlags};

/// Why [`open_database`] failed; the caller adds the path.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Sqlite(rusqlite::Error),
}

/// Opens (with `create`, creates) the database file at `path`, mode 0600, with a 10 s busy
/// timeout. The caller has checked the admin dir and the file's owner.
///
/// The mode is set through a descriptor that is the file itself (never a symlink), closed
/// BEFORE SQLite opens it: closing any descriptor of the file drops this process's POSIX locks
/// on it, SQLite's included, and two processes then both believe they own the WAL (lost
/// commits). For the same reason a process must not open the file a second time while it has
/// it open.
pub fn open_database(path: &Path, create: bool) -> Result<Connection, OpenError> {
    let create_flag = if create {
        OFlags::CREATE
    } else {
        OFlags::empty()
    };
    rustix::fs::open(
        path,
        OFlags::RDWR | create_flag | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .and_then(|fd| rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)))
    .map_err(|e| OpenError::Io(e.into()))?;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(OpenError::Sqlite)?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(OpenError::Sqlite)?;
    Ok(conn)
}
