//! The build ledger: one row per `overlay build` in `<state_dir>/left4me.db` (SQLite).
//!
//! A row is written when the build starts (`running`) and completed when it ends, so a build
//! that was cut off (power loss, SIGKILL of left4mectl) still shows; the next build of the same
//! overlay marks such rows `abandoned`. Times are Unix milliseconds.
//!
//! The database belongs to root (mode 0600): the state dir is the game user's, so a file there
//! that root did not create is refused rather than opened (a crafted database is an attack on
//! the SQLite parser running as root).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use rustix::fs::{Mode, OFlags};
use serde::Serialize;

/// How many lines of a build's output the ledger keeps.
pub const TAIL_LINES: usize = 50;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS build_jobs (
    id          INTEGER PRIMARY KEY,
    overlay     TEXT NOT NULL,
    unit        TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    ended_ms    INTEGER,
    -- running, success, failed, interrupted, abandoned
    status      TEXT NOT NULL,
    -- systemd's result: success, exit-code, signal, timeout, oom-kill, ...
    result      TEXT,
    -- the runner's exit status (the script's, or 125-127 from the runner)
    exit_status INTEGER,
    -- one line: what happened
    detail      TEXT NOT NULL DEFAULT '',
    log_tail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS build_jobs_overlay ON build_jobs (overlay, started_ms);
";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("build ledger {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "build ledger {}: owned by uid {uid}, not by root; it was not written by left4mectl, \
         so it is not opened (move it away to start a new ledger)",
        path.display()
    )]
    Foreign { path: PathBuf, uid: u32 },
    #[error("build ledger {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One build as the ledger has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub id: i64,
    pub overlay: String,
    pub unit: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub status: String,
    pub result: Option<String>,
    pub exit_status: Option<i64>,
    pub detail: String,
    pub log_tail: String,
}

impl Job {
    /// How long it ran, when it has ended.
    pub fn duration(&self) -> Option<Duration> {
        self.ended_ms
            .map(|end| Duration::from_millis(end.saturating_sub(self.started_ms).max(0) as u64))
    }
}

/// How a build ended, for [`Ledger::finish`].
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    pub ended_ms: i64,
    pub status: &'a str,
    pub result: Option<&'a str>,
    pub exit_status: Option<i64>,
    pub detail: &'a str,
    pub log_tail: &'a str,
}

/// An open ledger.
#[derive(Debug)]
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl Ledger {
    /// Opens the ledger at `path`, creating it (mode 0600) when `create` is set; `None` when it
    /// does not exist and `create` is not set.
    pub fn open(path: &Path, create: bool) -> Result<Option<Self>, LedgerError> {
        let sqlite = |source| LedgerError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) => {
                let me = rustix::process::geteuid().as_raw();
                if meta.uid() != me && me == 0 {
                    return Err(LedgerError::Foreign {
                        path: path.to_path_buf(),
                        uid: meta.uid(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LedgerError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        // The state dir belongs to the game user: a journal it planted would be played back
        // into root's database at open. Remove any that root did not write (unlinking never
        // follows a symlink). A planted file racing this check is a known gap: the remedy is
        // a root-owned directory for the ledger.
        for suffix in ["-journal", "-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let me = rustix::process::geteuid().as_raw();
            if std::fs::symlink_metadata(&side).is_ok_and(|m| m.uid() != me || !m.is_file()) {
                eprintln!(
                    "warning: removing {}: not written by this user",
                    Path::new(&side).display()
                );
                let _ = std::fs::remove_file(&side);
            }
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sqlite)?;
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        // chmod through a descriptor that is the database file itself, never a symlink.
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|fd| rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)))
        .map_err(|e| LedgerError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Some(Ledger {
            conn,
            path: path.to_path_buf(),
        }))
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
        |source| LedgerError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Records a build that starts now; returns its id.
    pub fn begin(&self, overlay: &str, unit: &str, started_ms: i64) -> Result<i64, LedgerError> {
        self.conn
            .execute(
                "INSERT INTO build_jobs (overlay, unit, started_ms, status) \
                 VALUES (?1, ?2, ?3, 'running')",
                params![overlay, unit, started_ms],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how build `id` ended.
    pub fn finish(&self, id: i64, ending: &Ending<'_>) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE build_jobs SET ended_ms = ?2, status = ?3, result = ?4, exit_status = ?5, \
                 detail = ?6, log_tail = ?7 WHERE id = ?1",
                params![
                    id,
                    ending.ended_ms,
                    ending.status,
                    ending.result,
                    ending.exit_status,
                    ending.detail,
                    ending.log_tail
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Marks the `running` rows of `overlay` as `abandoned` (called under the overlay's build
    /// lock, so none of them is really running); returns how many.
    pub fn abandon_running(&self, overlay: &str) -> Result<usize, LedgerError> {
        self.conn
            .execute(
                "UPDATE build_jobs SET status = 'abandoned', \
                 detail = 'left4mectl ended before the build did' \
                 WHERE overlay = ?1 AND status = 'running'",
                params![overlay],
            )
            .map_err(self.err())
    }

    /// The newest `limit` builds, of `overlay` only when given, newest first.
    pub fn jobs(&self, overlay: Option<&str>, limit: usize) -> Result<Vec<Job>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, overlay, unit, started_ms, ended_ms, status, result, exit_status, \
                 detail, log_tail FROM build_jobs WHERE (?1 IS NULL OR overlay = ?1) \
                 ORDER BY started_ms DESC, id DESC LIMIT ?2",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![overlay, limit as i64], row_to_job)
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// The newest build of `overlay`.
    pub fn last(&self, overlay: &str) -> Result<Option<Job>, LedgerError> {
        self.conn
            .query_row(
                "SELECT id, overlay, unit, started_ms, ended_ms, status, result, exit_status, \
                 detail, log_tail FROM build_jobs WHERE overlay = ?1 \
                 ORDER BY started_ms DESC, id DESC LIMIT 1",
                params![overlay],
                row_to_job,
            )
            .optional()
            .map_err(self.err())
    }
}

fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: row.get(0)?,
        overlay: row.get(1)?,
        unit: row.get(2)?,
        started_ms: row.get(3)?,
        ended_ms: row.get(4)?,
        status: row.get(5)?,
        result: row.get(6)?,
        exit_status: row.get(7)?,
        detail: row.get(8)?,
        log_tail: row.get(9)?,
    })
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `YYYY-MM-DD HH:MM:SS` UTC of a Unix millisecond time.
pub fn format_utc_ms(ms: i64) -> String {
    crate::output::format_utc(ms.div_euclid(1000))
}

/// A short human span: `850ms`, `12.3s`, `4m05s`, `2h03m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(tag: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("left4mectl-ledger-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    #[test]
    fn records_and_lists_builds() {
        let dir = temp_dir("rw");
        let path = dir.0.join("left4me.db");
        assert!(Ledger::open(&path, false).unwrap().is_none());
        let ledger = Ledger::open(&path, true).unwrap().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let a = ledger
            .begin("maps", "left4me-build-maps-1.service", 1000)
            .unwrap();
        let b = ledger
            .begin("addons", "left4me-build-addons-2.service", 2000)
            .unwrap();
        ledger
            .finish(
                a,
                &Ending {
                    ended_ms: 4500,
                    status: "failed",
                    result: Some("exit-code"),
                    exit_status: Some(3),
                    detail: "the script exited with status 3",
                    log_tail: "line 1\nline 2",
                },
            )
            .unwrap();
        let all = ledger.jobs(None, 10).unwrap();
        assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), [b, a]);
        let maps = ledger.jobs(Some("maps"), 10).unwrap();
        assert_eq!(maps.len(), 1);
        assert_eq!(maps[0].status, "failed");
        assert_eq!(maps[0].exit_status, Some(3));
        assert_eq!(maps[0].duration(), Some(Duration::from_millis(3500)));
        assert_eq!(ledger.last("addons").unwrap().unwrap().status, "running");
        assert_eq!(ledger.abandon_running("addons").unwrap(), 1);
        assert_eq!(ledger.last("addons").unwrap().unwrap().status, "abandoned");
        assert!(ledger.last("none").unwrap().is_none());
        drop(ledger);
        // Reopening keeps the rows.
        let again = Ledger::open(&path, false).unwrap().unwrap();
        assert_eq!(again.jobs(None, 1).unwrap().len(), 1);
    }

    #[test]
    fn refuses_a_symlinked_database() {
        let dir = temp_dir("link");
        let real = dir.0.join("real.db");
        Ledger::open(&real, true).unwrap();
        let link = dir.0.join("left4me.db");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(Ledger::open(&link, true).is_err());
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_utc_ms(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc_ms(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(format_utc_ms(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(format_duration(Duration::from_secs(7380)), "2h03m");
    }
}
