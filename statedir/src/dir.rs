//! Directory descriptors beneath the state dir.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Gid, Mode, OFlags, RenameFlags, ResolveFlags, Uid};
use rustix::io::Errno;

/// `openat2` resolution for every open below the state dir: stay beneath the directory, follow
/// no symbolic link (and no magic link).
pub const RESOLVE_STRICT: ResolveFlags = RESOLVE;

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// What went wrong, with the path it happened to (for messages only: nothing is done by it).
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is owned by uid {uid}, not root: anyone who owns it could redirect root's actions \
         inside it; run `systemd-tmpfiles --create left4me.conf` (or chown root:root it)",
        path.display()
    )]
    NotRootOwned { path: PathBuf, uid: u32 },
    #[error(
        "{} is writable by group or others (mode {mode:04o}): run `systemd-tmpfiles --create \
         left4me.conf` (or chmod go-w it)",
        path.display()
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error(
        "{} is not a plain relative path (no `..`, no absolute path): refused",
        path.display()
    )]
    BadPath { path: PathBuf },
}

impl DirError {
    /// Whether the error is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        matches!(self, DirError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

pub(crate) fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> DirError + 'a {
    move |errno| DirError::Io {
        action,
        path: path.to_owned(),
        source: errno.into(),
    }
}

/// A directory opened beneath the state dir, with the path it had when opened (for messages).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// The state dir, opened and checked: owned by root, writable by nobody else.
#[derive(Debug)]
pub struct StateDir(Dir);

impl StateDir {
    /// Opens the state dir by its path (root's configuration: host.toml or
    /// `LEFT4ME_STATE_DIR`) and checks the ownership rule.
    pub fn open(path: &Path) -> Result<Self, DirError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io("open the state dir", path))?;
        let dir = Dir {
            fd,
            path: path.to_owned(),
        };
        dir.check_root_owned()?;
        Ok(StateDir(dir))
    }

    /// The state dir itself.
    pub fn dir(&self) -> &Dir {
        &self.0
    }

    /// The descriptor of the checked state dir, for code that keeps its own descriptors.
    pub fn into_fd(self) -> OwnedFd {
        self.0.fd
    }

    /// Opens `rel` (e.g. `runtime/coop1`) beneath the state dir; see [`Dir::open_dir`].
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<Dir, DirError> {
        self.0.open_dir(rel)
    }
}

impl Dir {
    /// Wraps a directory descriptor the caller opened beneath the state dir itself (with
    /// [`openat2_retry`] and [`RESOLVE_STRICT`]); `path` is for messages only.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir { fd, path }
    }

    /// Its path when it was opened (the directory may have been renamed since: use it in
    /// messages, never to act).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Refuses a directory root must not work in: not owned by root, or writable by group or
    /// others.
    pub fn check_root_owned(&self) -> Result<(), DirError> {
        let stat = rustix::fs::fstat(&self.fd).map_err(io("stat", &self.path))?;
        if stat.st_uid != 0 {
            return Err(DirError::NotRootOwned {
                path: self.path.clone(),
                uid: stat.st_uid,
            });
        }
        let mode = stat.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            return Err(DirError::Writable {
                path: self.path.clone(),
                mode,
            });
        }
        Ok(())
    }

    /// Opens the directory `rel` beneath this one: every component must be a real directory
    /// (no symbolic link, no `..`).
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<Dir, DirError> {
        let rel = rel.as_ref();
        check_relative(rel)?;
        let path = self.path.join(rel);
        let fd = openat2(
            self.fd(),
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(io("open", &path))?;
        Ok(Dir { fd, path })
    }

    /// Opens `rel` like [`Dir::open_dir`], `None` when it does not exist.
    pub fn open_dir_if_exists(&self, rel: impl AsRef<Path>) -> Result<Option<Dir>, DirError> {
        match self.open_dir(rel) {
            Ok(dir) => Ok(Some(dir)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Creates the directory `name` here, owned by `owner` (uid, gid) with `mode`, and opens
    /// it. Ownership and mode are set on the new directory's descriptor, so a rename between
    /// creating and opening cannot make root change another file.
    pub fn create_dir(&self, name: &str, owner: (u32, u32), mode: u32) -> Result<Dir, DirError> {
        let path = self.path.join(name);
        check_name(name, &path)?;
        rustix::fs::mkdirat(self.fd(), name, Mode::from_raw_mode(0o700))
            .map_err(io("create", &path))?;
        let dir = self.open_dir(name)?;
        rustix::fs::fchown(
            dir.fd(),
            Some(Uid::from_raw(owner.0)),
            Some(Gid::from_raw(owner.1)),
        )
        .map_err(io("chown", &path))?;
        rustix::fs::fchmod(dir.fd(), Mode::from_raw_mode(mode)).map_err(io("chmod", &path))?;
        Ok(dir)
    }

    /// Renames `from` to `to`, both entries of this directory; never replaces an existing `to`.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), DirError> {
        self.rename_with(from, to, RenameFlags::NOREPLACE, "rename")
    }

    /// Exchanges the entries `a` and `b` of this directory atomically (`RENAME_EXCHANGE`).
    pub fn exchange(&self, a: &str, b: &str) -> Result<(), DirError> {
        self.rename_with(a, b, RenameFlags::EXCHANGE, "exchange")
    }

    fn rename_with(
        &self,
        from: &str,
        to: &str,
        flags: RenameFlags,
        action: &'static str,
    ) -> Result<(), DirError> {
        let path = self.path.join(from);
        check_name(from, &path)?;
        check_name(to, &self.path.join(to))?;
        rustix::fs::renameat_with(self.fd(), from, self.fd(), to, flags).map_err(io(action, &path))
    }

    /// Whether the entry `name` exists here (without following it).
    pub fn contains(&self, name: &str) -> Result<bool, DirError> {
        let path = self.path.join(name);
        check_name(name, &path)?;
        match rustix::fs::statat(self.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(errno) => Err(io("stat", &path)(errno)),
        }
    }

    /// The names of this directory's entries (without `.` and `..`), unsorted.
    pub fn entries(&self) -> Result<Vec<std::ffi::OsString>, DirError> {
        let fd = openat2(
            self.fd(),
            Path::new("."),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .map_err(io("open", &self.path))?;
        let mut names = Vec::new();
        let dir = rustix::fs::Dir::read_from(&fd).map_err(io("list", &self.path))?;
        for entry in dir {
            let entry = entry.map_err(io("list", &self.path))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                use std::os::unix::ffi::OsStrExt as _;
                names.push(OsStr::from_bytes(name).to_owned());
            }
        }
        Ok(names)
    }
}

/// `openat2` beneath `dir` with [`RESOLVE`], retried on `EAGAIN` (a concurrent rename made the
/// walk unverifiable: the kernel asks to try again).
pub(crate) fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    openat2_retry(dir, path, flags, mode, RESOLVE)
}

/// `openat2(dir, path, flags | O_CLOEXEC, mode, resolve)`, retried on `EAGAIN` (a concurrent
/// rename made a `RESOLVE_BENEATH` walk unverifiable: the kernel asks to try again). For callers
/// that hold their own descriptors beneath the state dir (the overlay code); pass
/// [`RESOLVE_STRICT`] unless you have a reason to resolve more loosely.
pub fn openat2_retry(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC, mode, resolve) {
            Err(Errno::AGAIN) if attempts < 64 => attempts += 1,
            other => return other,
        }
    }
}

/// A relative path of plain components.
fn check_relative(rel: &Path) -> Result<(), DirError> {
    let plain =
        !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(DirError::BadPath {
            path: rel.to_owned(),
        })
    }
}

/// One plain directory entry name.
pub(crate) fn check_name(name: &str, path: &Path) -> Result<(), DirError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        Err(DirError::BadPath {
            path: path.to_owned(),
        })
    } else {
        Ok(())
    }
}
