//! How much a tree below the state dir holds, counted through descriptors: never following a
//! symbolic link and never crossing into another mount, so a link or a swapped directory can
//! at worst hide files from the count, never make root walk somewhere else.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use rustix::io::Errno;

use crate::dir::{Dir, DirError, io, openat2};

/// The regular files of a tree and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

impl Dir {
    /// Counts the regular files beneath this directory and their bytes (apparent sizes).
    /// Symbolic links are not followed and other mounts not entered; an entry that vanishes
    /// while it is counted is skipped.
    pub fn usage(&self) -> Result<Usage, DirError> {
        let mount = mount_id(self.fd(), self.path())?;
        let top = openat2(
            self.fd(),
            Path::new("."),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .map_err(io("open", self.path()))?;
        let mut usage = Usage::default();
        let mut stack: Vec<(OwnedFd, PathBuf)> = vec![(top, self.path().to_owned())];
        while let Some((fd, path)) = stack.pop() {
            let entries = rustix::fs::Dir::read_from(&fd).map_err(io("list", &path))?;
            for entry in entries {
                let entry = entry.map_err(io("list", &path))?;
                let name = OsStr::from_bytes(entry.file_name().to_bytes());
                if name == "." || name == ".." {
                    continue;
                }
                let stat = match rustix::fs::statat(fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => stat,
                    Err(Errno::NOENT) => continue,
                    Err(errno) => return Err(io("stat", &path.join(name))(errno)),
                };
                match FileType::from_raw_mode(stat.st_mode) {
                    FileType::RegularFile => {
                        usage.files += 1;
                        usage.bytes += u64::try_from(stat.st_size).unwrap_or(0);
                    }
                    FileType::Directory => {
                        let child = match openat2(
                            fd.as_fd(),
                            Path::new(name),
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                            Mode::empty(),
                        ) {
                            Ok(child) => child,
                            // Replaced by a link or removed meanwhile: not counted.
                            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => {
                                continue;
                            }
                            Err(errno) => return Err(io("open", &path.join(name))(errno)),
                        };
                        let child_path = path.join(name);
                        if mount_id(child.as_fd(), &child_path)? == mount {
                            stack.push((child, child_path));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(usage)
    }
}

fn mount_id(fd: impl AsFd, path: &Path) -> Result<u64, DirError> {
    rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .map(|statx| statx.stx_mnt_id)
        .map_err(io("stat", path))
}
