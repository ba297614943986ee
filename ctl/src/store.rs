//! Writing spec files: the config-dir lock, atomic replacement, hidden temp files.
//!
//! Every change to a spec takes an exclusive `flock` on `<config_dir>/.left4mectl.lock`, so two
//! operators (or scripts) never validate against a state the other is about to change. A spec is
//! replaced by writing a hidden temp file in the same directory, fsyncing it, renaming it over the
//! spec and fsyncing the directory: a crash leaves the old spec or the new one, never half of one.
//! Hidden files (`.NAME.toml.XXXXXX`) are ignored by the spec loader.
//!
//! Every change is also a revision in the spec history (`left4me-history`): [`Recorder`] is
//! the lock together with the open history, caught up with changes made outside left4mectl
//! when it is taken; [`Recorder::install`] writes (or removes) a spec and records the revision
//! under that one lock, so concurrent changes lose no edit and no revision.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use left4me_history::{Change, History, HistoryError, Kind};
use rustix::fs::{CWD, FlockOperation, RenameFlags};
use rustix::io::Errno;

/// The lock file, relative to the config dir.
pub const LOCK_FILE: &str = ".left4mectl.lock";
/// Spec files are world-readable: the generator and the supervisor read them.
pub const SPEC_MODE: u32 = 0o644;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create directory {}: {source}{}",
        left4me_contract::printable::path(path),
        hint(source)
    )]
    CreateDir { path: PathBuf, source: io::Error },
    #[error(
        "cannot lock {}: {source}{}",
        left4me_contract::printable::path(path),
        hint(source)
    )]
    Lock { path: PathBuf, source: io::Error },
    #[error(
        "cannot write {}: {source}{}",
        left4me_contract::printable::path(path),
        hint(source)
    )]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "cannot read {}: {source}{}",
        left4me_contract::printable::path(path),
        hint(source)
    )]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{} already exists; change it with `edit` or `set`, or pick another name",
        left4me_contract::printable::path(path)
    )]
    Exists { path: PathBuf },
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(
        "{} is written, but its revision is not recorded: {error}; the next left4mectl run \
         records it as changed outside left4mectl",
        left4me_contract::printable::path(path)
    )]
    Record { path: PathBuf, error: HistoryError },
    #[error("no spec history: {reason} (run left4mectl as root)")]
    NoHistory { reason: String },
}

fn hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::PermissionDenied => " (run left4mectl as root)",
        _ => "",
    }
}

/// Creates `dir` and its parents if needed.
pub fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// The exclusive lock on a config dir; released when dropped.
#[derive(Debug)]
pub struct SpecLock {
    _file: File,
}

/// Opens (creating it, 0600) the lock file of `config_dir`; with its path, for messages.
fn open_lock_file(config_dir: &Path) -> Result<(File, PathBuf), StoreError> {
    let path = config_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|source| StoreError::Lock {
            path: path.clone(),
            source,
        })?;
    Ok((file, path))
}

/// Takes the exclusive lock of `config_dir` (creating the dir), telling the operator through
/// `waiting` when someone else holds it and waiting for them.
pub fn lock(config_dir: &Path, waiting: impl FnOnce(&Path)) -> Result<SpecLock, StoreError> {
    ensure_dir(config_dir)?;
    let (file, path) = open_lock_file(config_dir)?;
    let lock_error = |source| StoreError::Lock {
        path: path.clone(),
        source,
    };
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => {
            waiting(&path);
            loop {
                match rustix::fs::flock(&file, FlockOperation::LockExclusive) {
                    Ok(()) => break,
                    Err(Errno::INTR) => continue,
                    Err(errno) => return Err(lock_error(errno.into())),
                }
            }
        }
        Err(errno) => return Err(lock_error(errno.into())),
    }
    Ok(SpecLock { _file: file })
}

/// The config-dir lock with the spec history open: what a change to a spec holds while it
/// writes the file and records the revision.
#[derive(Debug)]
pub struct Recorder {
    _lock: SpecLock,
    /// Root always has it (or the change is refused); an ordinary user testing specs in a dir
    /// of their own may have none (no admin dir of theirs): the reason, then.
    history: Result<History, String>,
    message: Option<String>,
}

impl Recorder {
    /// Opens the history in `admin_dir` under `lock` and records the changes made outside
    /// left4mectl since the last run, so the next revision's old text is the file as it is;
    /// `message` (`-m`) goes with every revision this recorder makes. Root is refused when the
    /// history cannot be opened; an ordinary user changes specs without it.
    pub fn new(
        lock: SpecLock,
        admin_dir: &Path,
        config_dir: &Path,
        message: Option<String>,
    ) -> Result<Self, StoreError> {
        let history = match History::open(admin_dir) {
            Ok(history) => {
                left4me_history::scan(&history, config_dir)?;
                Ok(history)
            }
            Err(err) if !rustix::process::geteuid().is_root() => Err(err.to_string()),
            Err(err) => return Err(err.into()),
        };
        Ok(Recorder {
            _lock: lock,
            history,
            message,
        })
    }

    /// The open history, for reading under the lock.
    pub fn history(&self) -> Result<&History, StoreError> {
        self.history
            .as_ref()
            .map_err(|reason| StoreError::NoHistory {
                reason: reason.clone(),
            })
    }

    /// Why there is no history (an ordinary user's run), for a note.
    pub fn unrecorded(&self) -> Option<&str> {
        self.history.as_ref().err().map(String::as_str)
    }

    /// Makes the spec file of `change` hold `change.new` (written atomically; `None` removes
    /// it) and records the change as a revision, with the recorder's message when the change
    /// has none; returns the revision number (0 when there is no history: an ordinary user's).
    pub fn install(&self, change: &Change<'_>, replace: Replace) -> Result<i64, StoreError> {
        match change.new {
            Some(text) => write_atomic(change.file, text, replace)?,
            None => drop(remove(change.file)?),
        }
        let Ok(history) = &self.history else {
            return Ok(0);
        };
        let change = Change {
            message: change.message.or(self.message.as_deref()),
            ..change.clone()
        };
        history.record(&change).map_err(|error| StoreError::Record {
            path: change.file.to_path_buf(),
            error,
        })
    }
}

impl Recorder {
    /// Writes `new` as spec `name` of `kind` at `file`, which held `old` (`None`: a new file,
    /// refused if one appeared), and records that as `verb`; returns the revision number.
    pub fn write(
        &self,
        kind: Kind,
        name: &str,
        file: &Path,
        old: Option<&str>,
        new: &str,
        verb: &str,
    ) -> Result<i64, StoreError> {
        let replace = if old.is_some() {
            Replace::Yes
        } else {
            Replace::No
        };
        let change = Change {
            kind,
            name,
            file,
            old,
            new: Some(new),
            verb,
            message: None,
        };
        self.install(&change, replace)
    }

    /// Removes spec `name` of `kind` at `file` and records that as `verb`, its old text the
    /// file's (`None` when it cannot be read as a spec, e.g. a link: removed all the same);
    /// `false` when there was no file.
    pub fn remove(
        &self,
        kind: Kind,
        name: &str,
        file: &Path,
        verb: &str,
    ) -> Result<bool, StoreError> {
        if fs::symlink_metadata(file).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
            return Ok(false);
        }
        let old = read(file).ok();
        let change = Change {
            kind,
            name,
            file,
            old: old.as_deref(),
            new: None,
            verb,
            message: None,
        };
        self.install(&change, Replace::Yes)?;
        Ok(true)
    }
}

/// Records the changes made outside left4mectl when nobody holds the lock of `config_dir` (a
/// holder records them itself); for the verbs that only read specs. `Ok(None)`: the lock was
/// held. Needs the admin dir (root's).
pub fn catch_up(config_dir: &Path, admin_dir: &Path) -> Result<Option<usize>, StoreError> {
    let (file, path) = open_lock_file(config_dir)?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => return Ok(None),
        Err(errno) => {
            return Err(StoreError::Lock {
                path,
                source: errno.into(),
            });
        }
    }
    let history = History::open(admin_dir)?;
    Ok(Some(left4me_history::scan(&history, config_dir)?.len()))
}

/// Reads a spec file as text: a regular file of at most 1 MiB, never a link, a FIFO or a
/// device ([`left4me_spec::read_spec`]).
pub fn read(path: &Path) -> Result<String, StoreError> {
    left4me_spec::read_spec(path).map_err(|source| StoreError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Removes the spec file `path` durably (the directory is synced); `false` when it was not
/// there. The config dir is root's (DESIGN.md §2), so acting by path is safe here.
pub fn remove(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(StoreError::Write {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    if let Some(dir) = path.parent() {
        // The removal is durable before we say so; a failed fsync changes nothing.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(true)
}

/// A hidden file next to a spec, removed when dropped unless [`TempFile::keep`] is called.
#[derive(Debug)]
pub struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    /// Creates `.<name>.XXXXXX` in `dir` (which must exist), exclusively, with `mode`.
    pub fn create(dir: &Path, name: &str, mode: u32) -> Result<(Self, File), StoreError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let mut attempt = 0;
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let mixed = nanos
                ^ std::process::id().rotate_left(16)
                ^ COUNTER
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_mul(0x9e37_79b9);
            let path = dir.join(format!(".{name}.{:06x}", mixed & 0xff_ffff));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
            {
                Ok(file) => {
                    // The umask may have cleared bits of `mode`; set it exactly.
                    file.set_permissions(fs::Permissions::from_mode(mode))
                        .map_err(|source| StoreError::Write {
                            path: path.clone(),
                            source,
                        })?;
                    return Ok((TempFile { path: Some(path) }, file));
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(source) => return Err(StoreError::Write { path, source }),
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("temp file not yet kept")
    }

    /// Leaves the file in place and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.path.take().expect("temp file not yet kept")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = fs::remove_file(path);
        }
    }
}

/// How [`write_atomic`] treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Replace it.
    Yes,
    /// Refuse with [`StoreError::Exists`] (checked by the rename itself, so no race).
    No,
}

/// Writes `text` to `path` atomically with mode 0644, creating the parent dir if needed.
pub fn write_atomic(path: &Path, text: &str, replace: Replace) -> Result<(), StoreError> {
    let dir = path.parent().expect("spec paths have a parent dir");
    let name = path
        .file_name()
        .expect("spec paths have a file name")
        .to_string_lossy();
    ensure_dir(dir)?;
    let write_error = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let (temp, mut file) = TempFile::create(dir, &name, SPEC_MODE)?;
    file.write_all(text.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    drop(file);
    match replace {
        Replace::Yes => fs::rename(temp.path(), path).map_err(write_error)?,
        Replace::No => {
            match rustix::fs::renameat_with(CWD, temp.path(), CWD, path, RenameFlags::NOREPLACE) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    return Err(StoreError::Exists {
                        path: path.to_path_buf(),
                    });
                }
                Err(errno) => return Err(write_error(errno.into())),
            }
        }
    }
    temp.keep();
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    struct Dir(PathBuf);
    impl Dir {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("left4mectl-store-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            Dir(dir)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn atomic_write_creates_replaces_and_refuses() {
        let dir = Dir::new("write");
        let file = dir.0.join("instances/a.toml");
        write_atomic(&file, "port = 1\n", Replace::No).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "port = 1\n");
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o7777, SPEC_MODE);
        let err = write_atomic(&file, "port = 2\n", Replace::No).unwrap_err();
        assert!(matches!(err, StoreError::Exists { .. }), "{err}");
        write_atomic(&file, "port = 3\n", Replace::Yes).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "port = 3\n");
        assert_eq!(
            entries(&dir.0.join("instances")),
            ["a.toml"],
            "no temp files left"
        );
    }

    #[test]
    fn temp_files_are_hidden_and_removed() {
        let dir = Dir::new("temp");
        ensure_dir(&dir.0).unwrap();
        let (temp, _file) = TempFile::create(&dir.0, "a.toml", 0o600).unwrap();
        let name = temp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with(".a.toml."), "{name}");
        let (other, _file) = TempFile::create(&dir.0, "a.toml", 0o600).unwrap();
        assert_ne!(temp.path(), other.path());
        drop((temp, other));
        assert!(entries(&dir.0).is_empty());
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = Dir::new("lock");
        let held = lock(&dir.0, |_| panic!("nobody holds it yet")).unwrap();
        let file = File::open(dir.0.join(LOCK_FILE)).unwrap();
        assert_eq!(
            rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive),
            Err(Errno::WOULDBLOCK)
        );
        drop(held);
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).unwrap();
    }
}
