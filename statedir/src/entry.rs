//! Single entries of a directory beneath the state dir, by name relative to its descriptor:
//! what an entry is (never following it), a regular file opened without following a link,
//! renames and hard links between two opened directories, and the removal of one file.

use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::dir::{Dir, DirError, check_name, io};

/// What an entry is, as `fstatat(AT_SYMLINK_NOFOLLOW)` or `fstat` saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryStat {
    pub kind: FileType,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
}

impl EntryStat {
    fn from_stat(stat: &rustix::fs::Stat) -> Self {
        EntryStat {
            kind: FileType::from_raw_mode(stat.st_mode),
            dev: stat.st_dev,
            ino: stat.st_ino,
            nlink: stat.st_nlink,
            size: u64::try_from(stat.st_size).unwrap_or(0),
            uid: stat.st_uid,
            gid: stat.st_gid,
            mode: stat.st_mode & 0o7777,
        }
    }

    /// `fstat` of an open descriptor.
    pub fn of_fd(fd: &OwnedFd) -> Result<Self, Errno> {
        rustix::fs::fstat(fd).map(|stat| EntryStat::from_stat(&stat))
    }
}

impl Dir {
    /// What the entry `name` is, without following it; `None` when there is none.
    pub fn stat_entry(&self, name: &str) -> Result<Option<EntryStat>, DirError> {
        let path = self.path().join(name);
        check_name(name, &path)?;
        match rustix::fs::statat(self.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(EntryStat::from_stat(&stat))),
            Err(Errno::NOENT) => Ok(None),
            Err(errno) => Err(io("stat", &path)(errno)),
        }
    }

    /// Opens the entry `name` read-only, refusing a symbolic link (`O_NOFOLLOW`: `ELOOP`) and
    /// never blocking on a FIFO (`O_NONBLOCK`); the caller checks what it got with
    /// [`EntryStat::of_fd`].
    pub fn open_file(&self, name: &str) -> Result<OwnedFd, DirError> {
        let path = self.path().join(name);
        check_name(name, &path)?;
        rustix::fs::openat(
            self.fd(),
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io("open", &path))
    }

    /// Moves the entry `from` of this directory to the entry `to` of `dest` (which may be this
    /// directory); never replaces an existing `to` (`RENAME_NOREPLACE`: `EEXIST`).
    pub fn rename_noreplace(&self, from: &str, dest: &Dir, to: &str) -> Result<(), DirError> {
        let path = self.path().join(from);
        check_name(from, &path)?;
        check_name(to, &dest.path().join(to))?;
        rustix::fs::renameat_with(self.fd(), from, dest.fd(), to, RenameFlags::NOREPLACE)
            .map_err(io("rename", &path))
    }

    /// Makes `to` in `dest` a hard link of the entry `from` of this directory (`linkat`
    /// without `AT_SYMLINK_FOLLOW`: a symbolic link is linked, never followed). Both must be on
    /// one file system (`EXDEV` otherwise); an existing `to` is an error (`EEXIST`).
    pub fn link_to(&self, from: &str, dest: &Dir, to: &str) -> Result<(), DirError> {
        let path = self.path().join(from);
        check_name(from, &path)?;
        check_name(to, &dest.path().join(to))?;
        rustix::fs::linkat(self.fd(), from, dest.fd(), to, AtFlags::empty())
            .map_err(io("link", &path))
    }

    /// Removes the entry `name` when it is not a directory; whether there was one.
    pub fn remove_file(&self, name: &str) -> Result<bool, DirError> {
        let path = self.path().join(name);
        check_name(name, &path)?;
        match rustix::fs::unlinkat(self.fd(), name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(errno) => Err(io("remove", &path)(errno)),
        }
    }

    /// Removes the entry `name` when it is an empty directory; whether it did (`false` when
    /// it is missing or not empty).
    pub fn remove_empty_dir(&self, name: &str) -> Result<bool, DirError> {
        let path = self.path().join(name);
        check_name(name, &path)?;
        match rustix::fs::unlinkat(self.fd(), name, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => Ok(false),
            Err(errno) => Err(io("remove", &path)(errno)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_opens_renames_links_and_removes_entries() {
        let root = std::env::temp_dir().join(format!("left4me-entry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::write(root.join("a/file"), "data").unwrap();
        std::os::unix::fs::symlink("file", root.join("a/link")).unwrap();
        let uid = rustix::process::geteuid().as_raw();
        // Opened directly (StateDir::open wants a root-owned dir; these verbs do not care).
        let fd = rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty());
        let top = Dir::from_fd(fd.unwrap(), root.clone());
        let (a, b) = (top.open_dir("a").unwrap(), top.open_dir("b").unwrap());

        let file = a.stat_entry("file").unwrap().unwrap();
        assert_eq!(
            (file.kind, file.size, file.nlink, file.uid),
            (FileType::RegularFile, 4, 1, uid)
        );
        assert_eq!(
            a.stat_entry("link").unwrap().unwrap().kind,
            FileType::Symlink
        );
        assert_eq!(a.stat_entry("none").unwrap(), None);
        let opened = a.open_file("file").unwrap();
        assert_eq!(EntryStat::of_fd(&opened).unwrap().ino, file.ino);
        let DirError::Io { source, .. } = a.open_file("link").unwrap_err() else {
            panic!("a link must not open")
        };
        assert_eq!(source.raw_os_error(), Some(Errno::LOOP.raw_os_error()));

        a.link_to("file", &b, "hard").unwrap();
        assert_eq!(b.stat_entry("hard").unwrap().unwrap().ino, file.ino);
        assert_eq!(a.stat_entry("file").unwrap().unwrap().nlink, 2);
        assert!(
            a.link_to("file", &b, "hard").is_err(),
            "an existing name stays"
        );

        a.rename_noreplace("file", &b, "moved").unwrap();
        assert!(!a.contains("file").unwrap());
        std::fs::write(root.join("a/other"), "x").unwrap();
        assert!(
            a.rename_noreplace("other", &b, "moved").is_err(),
            "no replace"
        );
        assert_eq!(b.stat_entry("moved").unwrap().unwrap().size, 4);

        assert!(b.remove_file("hard").unwrap());
        assert!(!b.remove_file("hard").unwrap());
        assert!(!top.remove_empty_dir("b").unwrap(), "b is not empty");
        assert!(b.remove_file("moved").unwrap());
        assert!(top.remove_empty_dir("b").unwrap());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
