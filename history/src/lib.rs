//! The history of the spec files: every change to a spec (instance, blueprint, overlay
//! definition, host.toml) as a revision in root's `left4me.db` (SQLite), table `spec_revisions`.
//!
//! A revision holds the file, its full old and new text (`None`: the file did not exist before /
//! was removed), who made it (real uid, its user name, and `SUDO_USER` when set), when (Unix
//! milliseconds), the verb and an optional message. Revision numbers are the table's row ids:
//! one sequence for all files, so a number names one revision of one spec.
//!
//! Changes made outside left4mectl (an editor, config management) are found by [`scan`]: a spec
//! whose SHA-256 differs from its last revision's, or that appeared or disappeared since, gets a
//! revision with the verb [`OUTSIDE`]. Callers run it under the config-dir lock, the lock that
//! every left4mectl change holds while it writes a spec and records it, so no change of
//! left4mectl is ever taken for one made outside.
//!
//! The database and its dir are root's alone (DESIGN.md §2, §11): [`History::open`] creates the
//! admin dir with mode 0700 and the database with 0600, refuses a dir another user owns or can
//! enter and a database another user created (a crafted database is an attack on the SQLite
//! parser running as root). The job ledger (`left4me-jobs`) shares the file.

mod db;
mod scan;
mod who;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension as _, Row, params};
use serde::Serialize;

pub use db::{OpenError, open_database};
pub use scan::scan;

/// The verb of a revision that [`scan`] recorded.
pub const OUTSIDE: &str = "changed outside left4mectl";

/// The database file in the admin dir (the job ledger's too: `Layout::database`).
pub const DATABASE: &str = "left4me.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spec_revisions (
    rev       INTEGER PRIMARY KEY,
    -- instance, blueprint, overlay, host
    kind      TEXT NOT NULL,
    name      TEXT NOT NULL,
    file      TEXT NOT NULL,
    time_ms   INTEGER NOT NULL,
    uid       INTEGER NOT NULL,
    user      TEXT,
    sudo_user TEXT,
    verb      TEXT NOT NULL,
    message   TEXT,
    -- whether the file existed before, and after
    had_old   INTEGER NOT NULL,
    has_new   INTEGER NOT NULL,
    -- SHA-256 of the new text in hex; NULL when it was removed
    new_hash  TEXT
);
-- The texts apart, so listing revisions never reads them (a spec may have up to 1 MiB).
CREATE TABLE IF NOT EXISTS spec_texts (
    rev       INTEGER PRIMARY KEY REFERENCES spec_revisions (rev),
    -- NULL: the file did not exist before (old) / was removed (new)
    old_text  TEXT,
    new_text  TEXT
);
CREATE INDEX IF NOT EXISTS spec_revisions_spec ON spec_revisions (kind, name, rev);
CREATE INDEX IF NOT EXISTS spec_revisions_file ON spec_revisions (file, rev);
";

/// What a spec file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Instance,
    Blueprint,
    Overlay,
    Host,
}

impl Kind {
    /// The stored text, also the noun operators read.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Instance => "instance",
            Kind::Blueprint => "blueprint",
            Kind::Overlay => "overlay",
            Kind::Host => "host",
        }
    }

    /// The kind stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [Kind::Instance, Kind::Blueprint, Kind::Overlay, Kind::Host]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to record: spec `name` of `kind` at `file` went from `old` to `new` (`None`: did
/// not exist / removed) through `verb` (`set`, `blueprint edit`, …), with the operator's message.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub file: &'a Path,
    pub old: Option<&'a str>,
    pub new: Option<&'a str>,
    pub verb: &'a str,
    pub message: Option<&'a str>,
}

/// What a revision did to its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Changed,
    Removed,
}

/// One revision without its texts (what `history` lists; `--json` prints these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    pub rev: i64,
    pub kind: Kind,
    pub name: String,
    pub file: PathBuf,
    pub time_ms: i64,
    pub uid: u32,
    /// The user name of `uid` when it was recorded.
    pub user: Option<String>,
    /// `SUDO_USER` of the process, when set.
    pub sudo_user: Option<String>,
    pub verb: String,
    pub message: Option<String>,
    pub action: Action,
}

/// The texts of a revision: before and after (`None`: no file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Which revisions [`History::list`] returns: all, or those of one kind, or of one spec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub kind: Option<Kind>,
    pub name: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("spec history {}: {error}", path.display())]
    Sqlite {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error(
        "spec history {}: owned by uid {uid}, not by root; it was not written by left4mectl, \
         so it is not opened (move it away to start a new database)",
        path.display()
    )]
    Foreign { path: PathBuf, uid: u32 },
    #[error(
        "admin dir {}: owned by uid {uid} with mode {mode:04o}, but it must be root's alone \
         (mode 0700): run `systemd-tmpfiles --create left4me.conf` or fix its owner and mode",
        path.display()
    )]
    AdminDir { path: PathBuf, uid: u32, mode: u32 },
    #[error("spec history {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("spec history {}: revision {rev} has unknown kind {kind:?}", path.display())]
    Corrupt {
        path: PathBuf,
        rev: i64,
        kind: String,
    },
}

/// The open spec history.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
}

const COLUMNS: &str =
    "rev, kind, name, file, time_ms, uid, user, sudo_user, verb, message, had_old, has_new";

impl History {
    /// Opens (creating when missing) the history in `admin_dir`/left4me.db: the dir is made
    /// 0700 and must be this user's alone, the database 0600 and this user's.
    ///
    /// Nothing in the process may open and close another descriptor of the database while this
    /// is open (that drops SQLite's POSIX locks): open the job ledger before or after, not
    /// during.
    pub fn open(admin_dir: &Path) -> Result<History, HistoryError> {
        let path = admin_dir.join(DATABASE);
        check_admin_dir(admin_dir)?;
        let io = |error| HistoryError::Io {
            path: path.clone(),
            error,
        };
        let me = rustix::process::geteuid().as_raw();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.uid() != me => {
                return Err(HistoryError::Foreign {
                    path,
                    uid: meta.uid(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let sqlite = |error| HistoryError::Sqlite {
            path: path.clone(),
            error,
        };
        let conn = open_database(&path, true).map_err(|e| match e {
            OpenError::Io(error) => io(error),
            OpenError::Sqlite(error) => sqlite(error),
        })?;
        // WAL: readers (`history`, the scan of a read-only verb) never block the writer.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        Ok(History { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        |error| HistoryError::Sqlite {
            path: self.path.clone(),
            error,
        }
    }

    /// Records `change`, made now by this process's user (and `SUDO_USER`); returns its
    /// revision number.
    pub fn record(&self, change: &Change) -> Result<i64, HistoryError> {
        // Both rows or neither; a savepoint nests in the scan's transaction.
        self.conn
            .execute_batch("SAVEPOINT record")
            .map_err(self.err())?;
        let rev = self.insert(change, &who::Who::of_process());
        let end = match rev {
            Ok(_) => "RELEASE record",
            Err(_) => "ROLLBACK TO record; RELEASE record",
        };
        self.conn.execute_batch(end).map_err(self.err())?;
        rev
    }

    fn insert(&self, change: &Change, who: &who::Who) -> Result<i64, HistoryError> {
        self.conn
            .execute(
                "INSERT INTO spec_revisions (kind, name, file, time_ms, uid, user, sudo_user, \
                 verb, message, had_old, has_new, new_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    change.kind.as_str(),
                    change.name,
                    change.file.to_string_lossy(),
                    now_ms(),
                    who.uid,
                    who.user,
                    who.sudo_user,
                    change.verb,
                    change.message,
                    change.old.is_some(),
                    change.new.is_some(),
                    change.new.map(hash),
                ],
            )
            .map_err(self.err())?;
        let rev = self.conn.last_insert_rowid();
        self.conn
            .execute(
                "INSERT INTO spec_texts (rev, old_text, new_text) VALUES (?1, ?2, ?3)",
                params![rev, change.old, change.new],
            )
            .map_err(self.err())?;
        Ok(rev)
    }

    /// The revisions `filter` selects, newest first, at most `limit`.
    pub fn list(
        &self,
        filter: Filter<'_>,
        limit: Option<usize>,
    ) -> Result<Vec<Revision>, HistoryError> {
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let kind = filter.kind.map(Kind::as_str);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM spec_revisions \
                 WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR name = ?2) \
                 ORDER BY rev DESC LIMIT ?3"
            ))
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![kind, filter.name, limit], raw)
            .map_err(self.err())?;
        rows.map(|row| self.revision(row.map_err(self.err())?))
            .collect()
    }

    /// Revision `rev` with its texts; `None` when there is none.
    pub fn get(&self, rev: i64) -> Result<Option<(Revision, Texts)>, HistoryError> {
        let found = self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS}, old_text, new_text FROM spec_revisions \
                     JOIN spec_texts USING (rev) WHERE rev = ?1"
                ),
                [rev],
                |row| {
                    Ok((
                        raw(row)?,
                        Texts {
                            old: row.get(12)?,
                            new: row.get(13)?,
                        },
                    ))
                },
            )
            .optional()
            .map_err(self.err())?;
        found
            .map(|(raw, texts)| Ok((self.revision(raw)?, texts)))
            .transpose()
    }

    /// The last revision of spec `name` of `kind` with its texts.
    pub fn latest(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<(Revision, Texts)>, HistoryError> {
        let rev: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(rev) FROM spec_revisions WHERE kind = ?1 AND name = ?2",
                params![kind.as_str(), name],
                |row| row.get(0),
            )
            .map_err(self.err())?;
        match rev {
            Some(rev) => self.get(rev),
            None => Ok(None),
        }
    }

    /// The last revision of every file ever recorded: file → (revision, hash of its new text,
    /// `None` when it removed the file).
    pub fn latest_per_file(&self) -> Result<Vec<(Revision, Option<String>)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, new_hash FROM spec_revisions WHERE rev IN \
                 (SELECT max(rev) FROM spec_revisions GROUP BY file) ORDER BY rev"
            ))
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |row| Ok((raw(row)?, row.get::<_, Option<String>>(12)?)))
            .map_err(self.err())?;
        rows.map(|row| {
            let (raw, hash) = row.map_err(self.err())?;
            Ok((self.revision(raw)?, hash))
        })
        .collect()
    }

    fn revision(&self, raw: Raw) -> Result<Revision, HistoryError> {
        let kind = Kind::parse(&raw.kind).ok_or_else(|| HistoryError::Corrupt {
            path: self.path.clone(),
            rev: raw.rev,
            kind: raw.kind.clone(),
        })?;
        let action = match (raw.had_old, raw.has_new) {
            (_, false) => Action::Removed,
            (false, true) => Action::Created,
            (true, true) => Action::Changed,
        };
        Ok(Revision {
            rev: raw.rev,
            kind,
            name: raw.name,
            file: PathBuf::from(raw.file),
            time_ms: raw.time_ms,
            uid: raw.uid,
            user: raw.user,
            sudo_user: raw.sudo_user,
            verb: raw.verb,
            message: raw.message,
            action,
        })
    }
}

/// A row as stored, before its kind is checked.
struct Raw {
    rev: i64,
    kind: String,
    name: String,
    file: String,
    time_ms: i64,
    uid: u32,
    user: Option<String>,
    sudo_user: Option<String>,
    verb: String,
    message: Option<String>,
    had_old: bool,
    has_new: bool,
}

fn raw(row: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        rev: row.get(0)?,
        kind: row.get(1)?,
        name: row.get(2)?,
        file: row.get(3)?,
        time_ms: row.get(4)?,
        uid: row.get(5)?,
        user: row.get(6)?,
        sudo_user: row.get(7)?,
        verb: row.get(8)?,
        message: row.get(9)?,
        had_old: row.get(10)?,
        has_new: row.get(11)?,
    })
}

/// The SHA-256 of `text` in lowercase hex.
pub fn hash(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Creates `dir` (0700) when missing and checks it is this user's alone (root's, in
/// production).
fn check_admin_dir(dir: &Path) -> Result<(), HistoryError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let io = |error| HistoryError::Io {
        path: dir.to_path_buf(),
        error,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    let mode = meta.mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != rustix::process::geteuid().as_raw() || mode & 0o077 != 0 {
        return Err(HistoryError::AdminDir {
            path: dir.to_path_buf(),
            uid: meta.uid(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
