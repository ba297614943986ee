//! Refusing an upper dir left over from fuse-overlayfs.
//!
//! fuse-overlayfs keeps its own metadata in `user.fuseoverlayfs.*` xattrs (whiteouts, opaque
//! dirs, origins). Kernel overlayfs does not understand them, so an upper dir carrying them would
//! show deleted files again. Such a tree is refused with advice to wipe it.
//!
//! Depth: the upper root and everything up to [`SCAN_DEPTH`] levels below it (enough to reach
//! `left4dead2/cfg/server.cfg`, and every directory fuse-overlayfs copies up when a server runs),
//! at most [`SCAN_LIMIT`] inodes. Symlinks are not followed (they cannot carry `user.*` xattrs);
//! files are opened `O_NOFOLLOW | O_NONBLOCK` relative to their directory's descriptor.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

/// The xattr prefix fuse-overlayfs uses.
pub const FUSE_XATTR_PREFIX: &str = "user.fuseoverlayfs.";
/// How many levels below the upper root are scanned (the root is level 0).
pub const SCAN_DEPTH: usize = 3;
/// At most this many inodes are scanned.
pub const SCAN_LIMIT: usize = 20_000;

/// Why the upper dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FuseTaintError {
    #[error(
        "{path} carries the xattr {xattr}: the upper dir is left over from fuse-overlayfs; wipe \
         it with `left4mectl reset {name}`"
    )]
    Tainted {
        path: PathBuf,
        xattr: String,
        name: String,
    },
    #[error("scan {path} for fuse-overlayfs xattrs: {source}")]
    Scan {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks the upper dir `upper` (shown as `upper_path`) of instance `name`.
pub fn check_upper_not_fuse_tainted(
    upper: BorrowedFd<'_>,
    upper_path: &Path,
    name: &str,
) -> Result<(), FuseTaintError> {
    let scan = |path: &Path| {
        let path = path.to_owned();
        move |e: Errno| FuseTaintError::Scan {
            path,
            source: e.into(),
        }
    };
    let check = |fd: BorrowedFd<'_>, path: &Path| -> Result<(), FuseTaintError> {
        for xattr in list_xattrs(fd).map_err(scan(path))? {
            if xattr.as_bytes().starts_with(FUSE_XATTR_PREFIX.as_bytes()) {
                return Err(FuseTaintError::Tainted {
                    path: path.to_owned(),
                    xattr: xattr.to_string_lossy().into_owned(),
                    name: name.to_owned(),
                });
            }
        }
        Ok(())
    };

    check(upper, upper_path)?;
    let root = rustix::io::dup(upper).map_err(scan(upper_path))?;
    let mut queue: VecDeque<(OwnedFd, PathBuf, usize)> = VecDeque::new();
    queue.push_back((root, upper_path.to_owned(), 0));
    let mut scanned = 1;
    while let Some((dir, dir_path, depth)) = queue.pop_front() {
        if depth >= SCAN_DEPTH {
            continue;
        }
        for child in read_names(dir.as_fd()).map_err(scan(&dir_path))? {
            if scanned >= SCAN_LIMIT {
                return Ok(());
            }
            scanned += 1;
            let child_path = dir_path.join(&child);
            let flags = OFlags::RDONLY
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::NOCTTY
                | OFlags::CLOEXEC;
            let fd = match rustix::fs::openat(&dir, child.as_os_str(), flags, Mode::empty()) {
                Ok(fd) => fd,
                // A symlink, a vanished entry, a whiteout or other device node: no user xattrs.
                Err(Errno::LOOP | Errno::NOENT | Errno::NXIO | Errno::NODEV | Errno::PERM) => {
                    continue;
                }
                Err(e) => return Err(scan(&child_path)(e)),
            };
            check(fd.as_fd(), &child_path)?;
            let stat = rustix::fs::fstat(&fd).map_err(scan(&child_path))?;
            if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                queue.push_back((fd, child_path, depth + 1));
            }
        }
    }
    Ok(())
}

fn read_names(dir: BorrowedFd<'_>) -> Result<Vec<OsString>, Errno> {
    let mut entries = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(entry) = entries.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(&name).to_owned());
        }
    }
    Ok(names)
}

/// The names of the xattrs of an open file.
pub(crate) fn list_xattrs(fd: BorrowedFd<'_>) -> Result<Vec<OsString>, Errno> {
    for _ in 0..8 {
        let size = rustix::fs::flistxattr_query(fd)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::flistxattr(fd, &mut buf[..]) {
            Ok(len) => {
                return Ok(buf[..len]
                    .split(|b| *b == 0)
                    .filter(|n| !n.is_empty())
                    .map(|n| OsStr::from_bytes(n).to_owned())
                    .collect());
            }
            // The list grew between the two calls: ask again.
            Err(Errno::RANGE) => continue,
            // The file system has no xattrs at all.
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
    Err(Errno::RANGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn clean_tree_passes() {
        let t = TempDir::new("fuse-clean");
        std::fs::create_dir_all(t.path().join("left4dead2/cfg")).unwrap();
        std::fs::write(t.path().join("left4dead2/cfg/server.cfg"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("left4dead2/link")).unwrap();
        let fd =
            rustix::fs::open(t.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        check_upper_not_fuse_tainted(fd.as_fd(), t.path(), "coop1").unwrap();
    }
}
