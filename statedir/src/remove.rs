//! Removing a tree below the state dir: through descriptors, never following a symbolic link,
//! never crossing into a mount (a running instance's `merged`), and safe against the owner of
//! the tree renaming things while it is removed (the worst it can do is have its own files
//! removed).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use rustix::io::Errno;

use crate::dir::{Dir, DirError, check_name, io, openat2};

/// How often a directory may be found refilled after it was emptied before the removal gives
/// up: a writer racing the removal on purpose must not keep root busy forever.
const MAX_REFILLS: usize = 64;

/// Why a tree was not removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(
        "{} is a mount point (a running instance's game tree?): stop what uses it, then try again",
        path.display()
    )]
    MountPoint { path: PathBuf },
    #[error("{} keeps being refilled while it is removed: stop what writes there", path.display())]
    KeepsChanging { path: PathBuf },
}

/// One directory being emptied: its descriptor, its name in its parent, its path (messages).
struct Frame {
    fd: OwnedFd,
    name: OsString,
    path: PathBuf,
}

impl Dir {
    /// Removes the entry `name` of this directory and, if it is a directory, everything in it.
    /// `Ok(false)` when there was no such entry.
    pub fn remove_tree(&self, name: &str) -> Result<bool, RemoveError> {
        let path = self.path().join(name);
        check_name(name, &path)?;
        let stat = match rustix::fs::statat(self.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => return Ok(false),
            Err(errno) => return Err(io("stat", &path)(errno).into()),
        };
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return unlink(self.fd(), OsStr::new(name), &path).map(|()| true);
        }
        let mount = mount_id(self.fd(), self.path())?;
        let top = open_subdir(self.fd(), OsStr::new(name), &path, mount)?
            .ok_or_else(|| RemoveError::from(io("open", &path)(Errno::NOTDIR)))?;
        let mut stack = vec![top];
        let mut refills = 0;
        while let Some(frame) = stack.last() {
            if let Some(child) = empty_files(frame, mount)? {
                stack.push(child);
                continue;
            }
            let frame = stack.pop().expect("the loop saw it");
            let parent = stack.last().map_or(self.fd(), |p| p.fd.as_fd());
            match rustix::fs::unlinkat(parent, frame.name.as_os_str(), AtFlags::REMOVEDIR) {
                // NOTDIR: the directory was renamed away and a non-directory put in its
                // place; the parent, listed again next, holds both.
                Ok(()) | Err(Errno::NOENT | Errno::NOTDIR) => {}
                Err(Errno::NOTEMPTY | Errno::EXIST) if refills < MAX_REFILLS => {
                    refills += 1;
                    stack.push(frame);
                }
                Err(Errno::NOTEMPTY | Errno::EXIST) => {
                    return Err(RemoveError::KeepsChanging { path: frame.path });
                }
                Err(errno) => return Err(io("remove", &frame.path)(errno).into()),
            }
        }
        Ok(true)
    }
}

/// Removes every non-directory entry of `frame`; returns the first subdirectory found, opened,
/// or `None` when none is left.
fn empty_files(frame: &Frame, mount: u64) -> Result<Option<Frame>, RemoveError> {
    let listing = openat2(
        frame.fd.as_fd(),
        Path::new("."),
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .map_err(io("open", &frame.path))?;
    let entries = rustix::fs::Dir::read_from(&listing).map_err(io("list", &frame.path))?;
    for entry in entries {
        let entry = entry.map_err(io("list", &frame.path))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let path = frame.path.join(name);
        let stat = match rustix::fs::statat(frame.fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(errno) => return Err(io("stat", &path)(errno).into()),
        };
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory
            && let Some(child) = open_subdir(frame.fd.as_fd(), name, &path, mount)?
        {
            return Ok(Some(child));
        }
        match rustix::fs::unlinkat(frame.fd.as_fd(), name, AtFlags::empty()) {
            // Replaced by a directory meanwhile: the next pass over this directory finds it.
            Ok(()) | Err(Errno::NOENT | Errno::ISDIR) => {}
            Err(errno) => return Err(io("remove", &path)(errno).into()),
        }
    }
    Ok(None)
}

/// Opens the subdirectory `name` of `parent` without following a link; `None` when it is no
/// directory (any more). Refuses a directory on another mount.
fn open_subdir(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    mount: u64,
) -> Result<Option<Frame>, RemoveError> {
    let fd = match openat2(
        parent,
        Path::new(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOTDIR | Errno::LOOP | Errno::NOENT) => return Ok(None),
        // RESOLVE_BENEATH refuses to step onto another mount only with RESOLVE_NO_XDEV; a mount
        // point is caught by its mount id below.
        Err(errno) => return Err(io("open", path)(errno).into()),
    };
    if mount_id(fd.as_fd(), path)? != mount {
        return Err(RemoveError::MountPoint {
            path: path.to_owned(),
        });
    }
    Ok(Some(Frame {
        fd,
        name: name.to_owned(),
        path: path.to_owned(),
    }))
}

fn unlink(parent: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<(), RemoveError> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(errno) => Err(io("remove", path)(errno).into()),
    }
}

/// The id of the mount `fd` is on (`statx` `STATX_MNT_ID`).
fn mount_id(fd: BorrowedFd<'_>, path: &Path) -> Result<u64, RemoveError> {
    let statx = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .map_err(io("stat", path))?;
    Ok(statx.stx_mnt_id)
}
