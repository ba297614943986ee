//! Staging cfg files into the upper layer, and reading files out of a layer, safely.
//!
//! Files are written into `upper` *before* the overlay is mounted (writing through the merged tree
//! would copy up and get the ownership wrong), owned by the game user. The upper tree belongs to
//! the game user, so root never follows a symlink in it: parent directories are opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and created as needed; the file is written to a
//! temporary file created `O_CREAT | O_EXCL | O_NOFOLLOW`, chowned, fsynced and renamed over the
//! final name (a planted symlink at the final name is replaced, never followed).

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;

use crate::dirs::{self, DirError, DirSpec, Repair};
use crate::plan::{NotPlain, Owner, check_plain};
use crate::sys::{RESOLVE_STRICT, fd_path, openat2_retry};

/// Mode of staged files.
pub const STAGED_FILE_MODE: u32 = 0o644;
/// Mode of staged files holding a secret (the RCON cfg): readable by the game user alone.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of directories created for staged files.
pub const STAGED_DIR_MODE: u32 = 0o755;
/// The largest file [`read_beneath`] returns.
pub const READ_BENEATH_MAX: u64 = 1 << 20;

/// A file to write into the upper layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// Relative to the upper dir, e.g. `left4dead2/cfg/server.cfg`.
    pub rel_path: PathBuf,
    pub contents: Vec<u8>,
    /// [`STAGED_FILE_MODE`], or [`PRIVATE_FILE_MODE`] for a secret.
    pub mode: u32,
}

impl StagedFile {
    /// A file of mode [`STAGED_FILE_MODE`].
    pub fn new(rel_path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            rel_path: rel_path.into(),
            contents: contents.into(),
            mode: STAGED_FILE_MODE,
        }
    }

    /// A file holding a secret, of mode [`PRIVATE_FILE_MODE`] (the upper dir is readable by
    /// every local user).
    pub fn private(rel_path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            mode: PRIVATE_FILE_MODE,
            ..Self::new(rel_path, contents)
        }
    }
}

/// Why a file cannot be staged or read.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{path:?}: {reason}")]
    BadPath { path: PathBuf, reason: &'static str },
    #[error(
        "{path} is a symlink planted in the upper layer: refusing to follow it as root; remove \
         it (or wipe the instance with `left4mectl reset NAME`)"
    )]
    Symlink { path: PathBuf },
    #[error("{path} escapes its layer through a symlink or `..`: refused; make it a regular file")]
    Escape { path: PathBuf },
    #[error("{path} is not a regular file: make it one")]
    NotRegular { path: PathBuf },
    #[error("{path} is not a directory: remove it (or `left4mectl reset NAME`)")]
    NotDir { path: PathBuf },
    #[error(
        "{path} has {links} hard links: refused (it may be a link to a file outside the layer); copy it instead"
    )]
    HardLinked { path: PathBuf, links: u64 },
    #[error("{path} is {size} bytes, more than the {READ_BENEATH_MAX} allowed")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Dir(DirError),
}

/// Directory errors met on the way to a file, said as staging errors.
impl From<DirError> for StageError {
    fn from(e: DirError) -> Self {
        match e {
            DirError::Symlink { path } => StageError::Symlink { path },
            DirError::NotDir { path } => StageError::NotDir { path },
            DirError::Io {
                action,
                path,
                source,
            } => StageError::Io {
                action,
                path,
                source,
            },
            other => StageError::Dir(other),
        }
    }
}

/// The error of a failed `action` on `path`, as a `map_err` argument.
fn io(action: &'static str, path: &Path) -> impl FnOnce(Errno) -> StageError + use<> {
    let dir_error = dirs::io(action, path);
    move |e| dir_error(e).into()
}

/// Checks a relative file path: at least one component, plain components only.
fn validate_rel(rel: &Path) -> Result<(), StageError> {
    check_plain(rel).map_err(|why| StageError::BadPath {
        path: rel.to_owned(),
        reason: match why {
            NotPlain::Empty => "is empty",
            NotPlain::Absolute => "must be relative",
            NotPlain::ParentDir | NotPlain::CurDir => "must not contain `.` or `..`",
        },
    })
}

/// Writes `files` into the upper dir `upper`, owned by `owner`, creating parent directories
/// (owned by `owner`, 0755) as needed. Each file is replaced atomically.
pub fn stage_files(upper: impl AsFd, files: &[StagedFile], owner: Owner) -> Result<(), StageError> {
    let upper = upper.as_fd();
    let upper_path = fd_path(upper);
    for file in files {
        stage_one(upper, &upper_path, file, owner)?;
    }
    Ok(())
}

fn stage_one(
    upper: BorrowedFd<'_>,
    upper_path: &Path,
    file: &StagedFile,
    owner: Owner,
) -> Result<(), StageError> {
    validate_rel(&file.rel_path)?;
    let components: Vec<_> = file.rel_path.components().map(|c| c.as_os_str()).collect();
    let (file_name, parents) = components.split_last().expect("validated: not empty");

    let mut shown = upper_path.to_owned();
    let mut parent: Option<OwnedFd> = None;
    for name in parents {
        shown.push(name);
        let at = parent.as_ref().map_or(upper, |p| p.as_fd());
        parent = Some(ensure_owned_dir(at, Path::new(name), &shown, owner)?);
    }
    let dir = parent.as_ref().map_or(upper, |p| p.as_fd());
    let final_path = shown.join(file_name);

    let tmp_name = format!(
        ".{}.left4me-{}.tmp",
        Path::new(file_name).display(),
        std::process::id()
    );
    let tmp_path = shown.join(&tmp_name);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o600);
    let tmp = match rustix::fs::openat(dir, tmp_name.as_str(), flags, mode) {
        Err(Errno::EXIST) => {
            // Left over from an interrupted run (or planted): remove the entry, never follow it.
            rustix::fs::unlinkat(dir, tmp_name.as_str(), AtFlags::empty())
                .map_err(io("remove stale", &tmp_path))?;
            rustix::fs::openat(dir, tmp_name.as_str(), flags, mode)
        }
        other => other,
    }
    .map_err(io("create", &tmp_path))?;

    let written = write_tmp(tmp, file, owner, &tmp_path).and_then(|()| {
        rustix::fs::renameat(dir, tmp_name.as_str(), dir, Path::new(file_name))
            .map_err(io("rename into place", &final_path))
    });
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(dir, tmp_name.as_str(), AtFlags::empty());
        return Err(e);
    }
    rustix::fs::fsync(dir).map_err(io("fsync", &shown))?;
    Ok(())
}

fn write_tmp(
    tmp: OwnedFd,
    staged: &StagedFile,
    owner: Owner,
    path: &Path,
) -> Result<(), StageError> {
    rustix::fs::fchown(
        &tmp,
        Some(Uid::from_raw(owner.uid)),
        Some(Gid::from_raw(owner.gid)),
    )
    .map_err(io("change the owner of", path))?;
    rustix::fs::fchmod(&tmp, Mode::from_raw_mode(staged.mode)).map_err(io("chmod", path))?;
    let mut file = std::fs::File::from(tmp);
    file.write_all(&staged.contents)
        .map_err(|e| StageError::Io {
            action: "write",
            path: path.to_owned(),
            source: e,
        })?;
    rustix::fs::fsync(&file).map_err(io("fsync", path))
}

/// Opens (creating if needed) the directory `name` in `parent`, never following a symlink. A
/// directory it creates is owned by `owner`, mode [`STAGED_DIR_MODE`]; one that exists is kept.
fn ensure_owned_dir(
    parent: BorrowedFd<'_>,
    name: &Path,
    shown: &Path,
    owner: Owner,
) -> Result<OwnedFd, StageError> {
    let spec = DirSpec {
        owner,
        mode: STAGED_DIR_MODE,
        repair: Repair::Nothing,
        resolve: ResolveFlags::empty(),
    };
    Ok(dirs::ensure_dir(parent, name, shown, spec)?)
}

/// Whether every file is already in `upper` with these contents, owned by `owner`, as a regular
/// file reached without symlinks. Any doubt answers `false` (staging again is always safe).
pub fn is_staged(upper: impl AsFd, files: &[StagedFile], owner: Owner) -> bool {
    let upper = upper.as_fd();
    files.iter().all(|file| {
        if validate_rel(&file.rel_path).is_err() {
            return false;
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        let Ok(fd) = openat2_retry(upper, &file.rel_path, flags, Mode::empty(), RESOLVE_STRICT)
        else {
            return false;
        };
        let Ok(stat) = rustix::fs::fstat(&fd) else {
            return false;
        };
        FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
            && stat.st_uid == owner.uid
            && stat.st_gid == owner.gid
            && stat.st_mode & 0o7777 == file.mode
            && stat.st_size as u64 == file.contents.len() as u64
            && read_all(fd, file.contents.len() as u64).is_ok_and(|c| c == file.contents)
    })
}

fn read_all(fd: OwnedFd, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Reads `rel` beneath the layer root `root` (e.g. an overlay's `left4dead2/cfg/server.cfg`).
///
/// Symlinks that stay inside the layer are followed; a symlink or `..` leaving it is an error
/// ([`StageError::Escape`]), so a planted `server.cfg -> /etc/shadow` cannot leak. `None` when
/// the file does not exist. Refuses what is not a regular file, files with more than one hard
/// link (a hard link to a file outside the layer would not show as an escape) and files over
/// [`READ_BENEATH_MAX`] bytes.
pub fn read_beneath(root: impl AsFd, rel: impl AsRef<Path>) -> Result<Option<Vec<u8>>, StageError> {
    let root = root.as_fd();
    let rel = rel.as_ref();
    validate_rel(rel)?;
    let shown = fd_path(root).join(rel);
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let fd = match openat2_retry(root, rel, flags, Mode::empty(), resolve) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::XDEV) => return Err(StageError::Escape { path: shown }),
        Err(e) => return Err(io("open", &shown)(e)),
    };
    let stat = rustix::fs::fstat(&fd).map_err(io("stat", &shown))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(StageError::NotRegular { path: shown });
    }
    if stat.st_nlink > 1 {
        return Err(StageError::HardLinked {
            path: shown,
            links: stat.st_nlink,
        });
    }
    let size = stat.st_size as u64;
    if size > READ_BENEATH_MAX {
        return Err(StageError::TooLarge { path: shown, size });
    }
    let contents = read_all(fd, READ_BENEATH_MAX).map_err(|e| StageError::Io {
        action: "read",
        path: shown.clone(),
        source: e,
    })?;
    if contents.len() as u64 > READ_BENEATH_MAX {
        return Err(StageError::TooLarge {
            path: shown,
            size: contents.len() as u64,
        });
    }
    Ok(Some(contents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirs::caller;
    use crate::testutil::TempDir;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn open(path: &Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    const CFG: &str = "left4dead2/cfg/server.cfg";

    #[test]
    fn stages_with_parents() {
        let t = TempDir::new("stage");
        let files = [
            StagedFile::new(CFG, "hostname x\n"),
            StagedFile::new("left4dead2/cfg/server_overlay_a.cfg", "sv_cheats 0\n"),
        ];
        assert!(!is_staged(open(t.path()), &files, caller()));
        stage_files(open(t.path()), &files, caller()).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join(CFG)).unwrap(),
            "hostname x\n"
        );
        let meta = std::fs::metadata(t.path().join(CFG)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
        assert_eq!(meta.uid(), caller().uid);
        let dir = std::fs::metadata(t.path().join("left4dead2/cfg")).unwrap();
        assert_eq!(dir.permissions().mode() & 0o7777, 0o755);
        assert!(is_staged(open(t.path()), &files, caller()));
        // Staging again replaces the contents; nothing else is left in the directory.
        let changed = [StagedFile::new(CFG, "hostname y\n")];
        assert!(!is_staged(open(t.path()), &changed, caller()));
        stage_files(open(t.path()), &changed, caller()).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join(CFG)).unwrap(),
            "hostname y\n"
        );
        let names: Vec<_> = std::fs::read_dir(t.path().join("left4dead2/cfg"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn planted_dir_symlink_refused() {
        let t = TempDir::new("stage-dir-symlink");
        let outside = TempDir::new("stage-dir-symlink-outside");
        std::fs::create_dir(t.path().join("left4dead2")).unwrap();
        symlink(outside.path(), t.path().join("left4dead2/cfg")).unwrap();
        let e = stage_files(open(t.path()), &[StagedFile::new(CFG, "x")], caller()).unwrap_err();
        assert!(
            matches!(&e, StageError::Symlink { path } if path == &t.path().join("left4dead2/cfg")),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn planted_file_symlink_replaced_not_followed() {
        let t = TempDir::new("stage-file-symlink");
        let outside = TempDir::new("stage-file-symlink-outside");
        std::fs::write(outside.path().join("victim"), "keep").unwrap();
        std::fs::create_dir_all(t.path().join("left4dead2/cfg")).unwrap();
        symlink(outside.path().join("victim"), t.path().join(CFG)).unwrap();
        // A planted symlink at the temp name too.
        let tmp = format!(".server.cfg.left4me-{}.tmp", std::process::id());
        symlink(
            outside.path().join("victim"),
            t.path().join("left4dead2/cfg").join(tmp),
        )
        .unwrap();
        stage_files(open(t.path()), &[StagedFile::new(CFG, "new")], caller()).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.path().join("victim")).unwrap(),
            "keep"
        );
        assert!(
            std::fs::symlink_metadata(t.path().join(CFG))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::read_to_string(t.path().join(CFG)).unwrap(), "new");
    }

    #[test]
    fn bad_paths() {
        let t = TempDir::new("stage-bad");
        for rel in ["", "/etc/passwd", "../x", "a/../b", "./a"] {
            let e = stage_files(open(t.path()), &[StagedFile::new(rel, "x")], caller());
            assert!(matches!(e, Err(StageError::BadPath { .. })), "{rel}: {e:?}");
        }
    }

    #[test]
    fn read_beneath_cases() {
        let t = TempDir::new("read-beneath");
        let outside = TempDir::new("read-beneath-outside");
        std::fs::write(outside.path().join("secret"), "shadow").unwrap();
        let cfg = t.path().join("left4dead2/cfg");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("server.cfg"), "hostname a\n").unwrap();
        symlink("server.cfg", cfg.join("inside.cfg")).unwrap();
        symlink(outside.path().join("secret"), cfg.join("abs.cfg")).unwrap();
        symlink("../../../secret", cfg.join("rel.cfg")).unwrap();
        std::fs::hard_link(outside.path().join("secret"), cfg.join("hard.cfg")).unwrap();
        std::fs::create_dir(cfg.join("dir.cfg")).unwrap();

        let root = open(t.path());
        assert_eq!(read_beneath(&root, CFG).unwrap().unwrap(), b"hostname a\n");
        assert_eq!(
            read_beneath(&root, "left4dead2/cfg/inside.cfg")
                .unwrap()
                .unwrap(),
            b"hostname a\n"
        );
        assert_eq!(
            read_beneath(&root, "left4dead2/cfg/none.cfg").unwrap(),
            None
        );
        assert_eq!(read_beneath(&root, "nothing/here.cfg").unwrap(), None);
        for escape in ["abs.cfg", "rel.cfg"] {
            let e = read_beneath(&root, format!("left4dead2/cfg/{escape}")).unwrap_err();
            assert!(
                matches!(&e, StageError::Escape { path } if path == &cfg.join(escape)),
                "{e}"
            );
        }
        let e = read_beneath(&root, "left4dead2/cfg/hard.cfg").unwrap_err();
        assert!(matches!(e, StageError::HardLinked { links: 2, .. }), "{e}");
        let e = read_beneath(&root, "left4dead2/cfg/dir.cfg").unwrap_err();
        assert!(matches!(e, StageError::NotRegular { .. }), "{e}");
        let e = read_beneath(&root, "../x").unwrap_err();
        assert!(matches!(e, StageError::BadPath { .. }), "{e}");
    }
}
