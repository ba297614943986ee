//! The job ledger: one row per job in `left4me.db` (SQLite), table `build_jobs`.
//!
//! A row is written when the job starts (`running`) and completed when it ends, so a job that
//! was cut off (power loss, SIGKILL of left4mectl) still shows; the next job of the same name
//! marks such rows `abandoned`. Times are Unix milliseconds. The status is stored as text
//! ([`LedgerStatus::as_str`]) and read back as the enum.
//!
//! The database belongs to root (mode 0600) and lives in root's admin dir (DESIGN.md §2, mode
//! 0700), never in the state dir: [`Ledger::open`] creates that dir when missing and refuses
//! one that is not root's alone, and refuses a database file root did not create (a crafted
//! database is an attack on the SQLite parser running as root).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use left4me_history::{OpenError, open_database};
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Serialize;

use crate::job::JobKind;

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

/// The `kind` column, added to ledgers written before it existed (their rows were all overlay
/// builds).
const ADD_KIND: &str =
    "ALTER TABLE build_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'overlay-build'";

/// A job's state as the ledger stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerStatus {
    /// Started, not ended (or its left4mectl was killed: see `Abandoned`).
    Running,
    Success,
    Failed,
    Interrupted,
    /// Found `running` by a later job of the same name: its left4mectl ended first.
    Abandoned,
}

impl LedgerStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerStatus::Running => "running",
            LedgerStatus::Success => "success",
            LedgerStatus::Failed => "failed",
            LedgerStatus::Interrupted => "interrupted",
            LedgerStatus::Abandoned => "abandoned",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [
            LedgerStatus::Running,
            LedgerStatus::Success,
            LedgerStatus::Failed,
            LedgerStatus::Interrupted,
            LedgerStatus::Abandoned,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for LedgerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    #[error(
        "build ledger dir {}: owned by uid {uid} with mode {mode:04o}, but it must be root's \
         alone (mode 0700): run `systemd-tmpfiles --create left4me.conf` or fix its owner and \
         mode",
        path.display()
    )]
    AdminDir { path: PathBuf, uid: u32, mode: u32 },
    #[error("build ledger {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One job as the ledger has it (`overlay jobs --json` prints these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub id: i64,
    /// What kind of job; not shown in `--json` (every row so far is an overlay build).
    #[serde(skip)]
    pub kind: Option<JobKind>,
    /// The job's name (the overlay).
    pub overlay: String,
    pub unit: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub status: LedgerStatus,
    pub result: Option<String>,
    pub exit_status: Option<i64>,
    pub detail: String,
    pub log_tail: String,
}

impl Record {
    /// How long it ran, when it has ended.
    pub fn duration(&self) -> Option<Duration> {
        self.ended_ms
            .map(|end| Duration::from_millis(end.saturating_sub(self.started_ms).max(0) as u64))
    }
}

/// How a job ended, for [`Ledger::finish`].
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    pub ended_ms: i64,
    pub status: LedgerStatus,
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
    /// SQLite side files (journal, WAL) that another user wrote, removed at open.
    removed: Vec<PathBuf>,
}

impl Ledger {
    /// Opens the ledger at `path`, creating it (mode 0600) and its dir (root's admin dir, mode
    /// 0700) when `create` is set; `None` when it does not exist and `create` is not set. Side
    /// files it had to remove first are in [`Ledger::removed_side_files`], for the caller to
    /// warn about.
    pub fn open(path: &Path, create: bool) -> Result<Option<Self>, LedgerError> {
        let sqlite = |source| LedgerError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        if !check_admin_dir(path.parent().unwrap_or(Path::new(".")), create)? {
            return Ok(None);
        }
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
        // A journal another user planted would be played back into root's database at open.
        // The admin dir is root's alone, so none can appear there now; one left from a ledger
        // that lived in the game user's state dir before is removed (unlinking never follows a
        // symlink).
        let mut removed = Vec::new();
        for suffix in ["-journal", "-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let me = rustix::process::geteuid().as_raw();
            if std::fs::symlink_metadata(&side).is_ok_and(|m| m.uid() != me || !m.is_file()) {
                let _ = std::fs::remove_file(&side);
                removed.push(PathBuf::from(side));
            }
        }
        let conn = open_database(path, create).map_err(|e| match e {
            OpenError::Io(source) => LedgerError::Io {
                path: path.to_path_buf(),
                source,
            },
            OpenError::Sqlite(source) => sqlite(source),
        })?;
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        let has_kind: bool = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('build_jobs') WHERE name = 'kind'",
                [],
                |row| row.get(0),
            )
            .map_err(sqlite)?;
        if !has_kind {
            conn.execute_batch(ADD_KIND).map_err(sqlite)?;
        }
        Ok(Some(Ledger {
            conn,
            path: path.to_path_buf(),
            removed,
        }))
    }

    /// The side files [`Ledger::open`] removed because this user did not write them.
    pub fn removed_side_files(&self) -> &[PathBuf] {
        &self.removed
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
        |source| LedgerError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Records a job of `kind` named `name` that starts now; returns its id.
    pub fn begin(
        &self,
        kind: JobKind,
        name: &str,
        unit: &str,
        started_ms: i64,
    ) -> Result<i64, LedgerError> {
        self.conn
            .execute(
                "INSERT INTO build_jobs (kind, overlay, unit, started_ms, status) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    kind.as_str(),
                    name,
                    unit,
                    started_ms,
                    LedgerStatus::Running.as_str()
                ],
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
                    ending.status.as_str(),
                    ending.result,
                    ending.exit_status,
                    ending.detail,
                    ending.log_tail
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Changes the status and detail of the ended job `id` (a later check found what its run
    /// did wrong).
    pub fn finish_detail(
        &self,
        id: i64,
        status: LedgerStatus,
        detail: &str,
    ) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE build_jobs SET status = ?2, detail = ?3 WHERE id = ?1",
                params![id, status.as_str(), detail],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Marks the `running` rows of `overlay` whose kind is one of `kinds` as `abandoned`
    /// (called under the job's lock, so none of them is really running); returns how many.
    pub fn abandon_running(&self, overlay: &str, kinds: &[JobKind]) -> Result<usize, LedgerError> {
        let mut count = 0;
        for kind in kinds {
            count += self
                .conn
                .execute(
                    "UPDATE build_jobs SET status = ?2, \
                     detail = 'left4mectl ended before the build did' \
                     WHERE overlay = ?1 AND status = ?3 AND kind = ?4",
                    params![
                        overlay,
                        LedgerStatus::Abandoned.as_str(),
                        LedgerStatus::Running.as_str(),
                        kind.as_str()
                    ],
                )
                .map_err(self.err())?;
        }
        Ok(count)
    }

    /// The newest `limit` builds, of `overlay` only when given, newest first.
    pub fn jobs(&self, overlay: Option<&str>, limit: usize) -> Result<Vec<Record>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, kind, overlay, unit, started_ms, ended_ms, status, result, \
                 exit_status, detail, log_tail FROM build_jobs WHERE (?1 IS NULL OR overlay = ?1) \
                 ORDER BY started_ms DESC, id DESC LIMIT ?2",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![overlay, limit as i64], row_to_job)
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// The newest build of `overlay`.
    pub fn last(&self, overlay: &str) -> Result<Option<Record>, LedgerError> {
        self.conn
            .query_row(
                "SELECT id, kind, overlay, unit, started_ms, ended_ms, status, result, \
                 exit_status, detail, log_tail FROM build_jobs WHERE overlay = ?1 \
                 ORDER BY started_ms DESC, id DESC LIMIT 1",
                params![overlay],
                row_to_job,
            )
            .optional()
            .map_err(self.err())
    }
}

fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let status: String = row.get(6)?;
    let status = LedgerStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            6,
            rusqlite::types::Type::Text,
            format!("unknown job status '{status}'").into(),
        )
    })?;
    let kind: String = row.get(1)?;
    Ok(Record {
        id: row.get(0)?,
        kind: JobKind::parse(&kind),
        overlay: row.get(2)?,
        unit: row.get(3)?,
        started_ms: row.get(4)?,
        ended_ms: row.get(5)?,
        status,
        result: row.get(7)?,
        exit_status: row.get(8)?,
        detail: row.get(9)?,
        log_tail: row.get(10)?,
    })
}

/// Now, in Unix milliseconds.
/// Creates the ledger's dir `dir` (0700) when missing and `create` is set, and checks it is
/// this user's alone (root's, in production): `Ok(false)` when it is missing otherwise.
fn check_admin_dir(dir: &Path, create: bool) -> Result<bool, LedgerError> {
    let io_error = |source| LedgerError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if create {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
    }
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(e)),
    };
    let mode = meta.mode() & 0o7777;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || mode & 0o077 != 0 {
        return Err(LedgerError::AdminDir {
            path: dir.to_path_buf(),
            uid: meta.uid(),
            mode,
        });
    }
    Ok(true)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;
    use std::os::unix::fs::PermissionsExt as _;

    const KIND: JobKind = JobKind::OverlayBuild;

    #[test]
    fn records_and_lists_builds() {
        let dir = TempDir::new("ledger-rw");
        let path = dir.path().join("admin/left4me.db");
        assert!(Ledger::open(&path, false).unwrap().is_none());
        let ledger = Ledger::open(&path, true).unwrap().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let a = ledger
            .begin(KIND, "maps", "left4me-build-maps-1.service", 1000)
            .unwrap();
        let b = ledger
            .begin(KIND, "addons", "left4me-build-addons-2.service", 2000)
            .unwrap();
        ledger
            .finish(
                a,
                &Ending {
                    ended_ms: 4500,
                    status: LedgerStatus::Failed,
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
        assert_eq!(maps[0].status, LedgerStatus::Failed);
        assert_eq!(maps[0].kind, Some(KIND));
        assert_eq!(maps[0].exit_status, Some(3));
        assert_eq!(maps[0].duration(), Some(Duration::from_millis(3500)));
        assert_eq!(
            ledger.last("addons").unwrap().unwrap().status,
            LedgerStatus::Running
        );
        assert_eq!(
            ledger
                .abandon_running("addons", &[JobKind::GameInstall])
                .unwrap(),
            0
        );
        assert_eq!(ledger.abandon_running("addons", KIND.family()).unwrap(), 1);
        assert_eq!(
            ledger.last("addons").unwrap().unwrap().status,
            LedgerStatus::Abandoned
        );
        assert!(ledger.last("none").unwrap().is_none());
        drop(ledger);
        // Reopening keeps the rows.
        let again = Ledger::open(&path, false).unwrap().unwrap();
        assert_eq!(again.jobs(None, 1).unwrap().len(), 1);
    }

    #[test]
    fn adds_the_kind_column_to_an_old_ledger() {
        let dir = TempDir::new("ledger-old");
        let path = dir.path().join("admin/left4me.db");
        Ledger::open(&path, true).unwrap();
        std::fs::remove_file(&path).unwrap();
        let old = Connection::open(&path).unwrap();
        old.execute_batch(SCHEMA).unwrap();
        old.execute(
            "INSERT INTO build_jobs (overlay, unit, started_ms, status) \
             VALUES ('maps', 'u.service', 1, 'success')",
            [],
        )
        .unwrap();
        drop(old);
        let ledger = Ledger::open(&path, false).unwrap().unwrap();
        let row = ledger.last("maps").unwrap().unwrap();
        assert_eq!(row.kind, Some(KIND));
        assert_eq!(row.status, LedgerStatus::Success);
        drop(ledger);
        // Opening again finds the column and leaves it.
        Ledger::open(&path, false).unwrap().unwrap();
    }

    #[test]
    fn removes_planted_side_files() {
        let dir = TempDir::new("ledger-side");
        let path = dir.path().join("admin/left4me.db");
        Ledger::open(&path, true).unwrap();
        let wal = dir.path().join("admin/left4me.db-wal");
        std::os::unix::fs::symlink("/nonexistent", &wal).unwrap();
        let ledger = Ledger::open(&path, false).unwrap().unwrap();
        assert_eq!(ledger.removed_side_files(), std::slice::from_ref(&wal));
        assert!(wal.symlink_metadata().is_err());
    }

    #[test]
    fn refuses_a_symlinked_database() {
        let dir = TempDir::new("ledger-link");
        let real = dir.path().join("admin/real.db");
        Ledger::open(&real, true).unwrap();
        let link = dir.path().join("admin/left4me.db");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(Ledger::open(&link, true).is_err());
    }

    #[test]
    fn creates_its_dir_root_only_and_refuses_an_open_one() {
        let dir = TempDir::new("ledger-dir");
        let path = dir.path().join("admin/left4me.db");
        assert!(Ledger::open(&path, false).unwrap().is_none());
        assert!(!dir.path().join("admin").exists());
        Ledger::open(&path, true).unwrap().unwrap();
        let mode = std::fs::metadata(dir.path().join("admin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(
            dir.path().join("admin"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        for create in [false, true] {
            let err = Ledger::open(&path, create).unwrap_err().to_string();
            assert!(
                err.contains("mode 0755") && err.contains("systemd-tmpfiles --create left4me.conf"),
                "{err}"
            );
        }
    }
}
