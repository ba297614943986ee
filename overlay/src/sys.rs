//! The mount system calls, behind a narrow trait.
//!
//! [`MountSys`] is every call that changes or reads the mount table. [`RealSys`] makes the real
//! calls (through `rustix`); the unit tests' `RecordingSys` (in `recording.rs`, compiled for tests
//! only) records each call as a line of text and keeps a fake mount table, so the *sequence* of
//! calls for mount, replace and unmount is unit-tested without root. The implementation is passed
//! in as a parameter everywhere.
//!
//! File system calls that need no privilege (`openat2`, `mkdirat`, `fchown`, xattrs) are made
//! directly through `rustix` in the module that owns the concern; the helpers they share are here.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, StatxFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::plan::MountOptions;

/// How overlayfs is mounted; chosen once per [`MountSys`] by probing the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MountMethod {
    /// New mount API, every layer handed over as the file descriptor we resolved
    /// (`fsconfig(FSCONFIG_SET_FD, "lowerdir+")`, Linux 6.13+). No path is looked up twice.
    LayerFds,
    /// New mount API, layers as `lowerdir+` strings (Linux 6.8+). The strings are
    /// `/proc/self/fd/N` of the resolved descriptors, so the kernel still opens what we checked.
    LayerPaths,
    /// Classic `mount(2)` with one `lowerdir=` option string, `/proc/self/fd/N` paths as above;
    /// the whole option string must fit in one page.
    Classic,
}

impl fmt::Display for MountMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LayerFds => "fsconfig lowerdir+ by file descriptor (Linux 6.13+)",
            Self::LayerPaths => "fsconfig lowerdir+ by /proc/self/fd path (Linux 6.8+)",
            Self::Classic => "mount(2) with a lowerdir= option string",
        })
    }
}

/// What a classic `mount(2)` of an overlay is given besides its target.
#[derive(Debug, Clone, Copy)]
pub struct ClassicMount<'a> {
    /// The mount source (`left4me:NAME:FINGERPRINT`).
    pub source: &'a str,
    pub options: MountOptions,
    /// The option string: `lowerdir=…,upperdir=…,workdir=…`.
    pub data: &'a str,
}

/// The mount system calls left4me makes. Errors are raw errnos; callers add the context.
pub trait MountSys {
    /// An overlayfs configuration context (`fsopen`).
    type Fs;
    /// A detached mount (`fsmount`).
    type Mnt;

    /// Where the probed [`MountMethod`] is kept, so the kernel is probed once.
    fn method_slot(&self) -> &OnceLock<MountMethod>;
    /// `fsopen("overlay", FSOPEN_CLOEXEC)`.
    fn fs_open(&self) -> Result<Self::Fs, Errno>;
    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    fn fs_set_string(&self, fs: &Self::Fs, key: &str, value: &str) -> Result<(), Errno>;
    /// `fsconfig(FSCONFIG_SET_FD, key, fd)`.
    fn fs_set_fd(&self, fs: &Self::Fs, key: &str, fd: BorrowedFd<'_>) -> Result<(), Errno>;
    /// `fsconfig(FSCONFIG_CMD_CREATE)`.
    fn fs_create(&self, fs: &Self::Fs) -> Result<(), Errno>;
    /// The messages the kernel logged on the context (read from the fs fd), for error reports.
    fn fs_log(&self, fs: &Self::Fs) -> Vec<String>;
    /// `fsmount(fs, FSMOUNT_CLOEXEC, attrs)`.
    fn fs_mount(&self, fs: &Self::Fs, options: MountOptions) -> Result<Self::Mnt, Errno>;
    /// `move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`:
    /// attach onto the directory `target` refers to, without looking up any path.
    fn move_mount_onto(&self, mnt: &Self::Mnt, target: BorrowedFd<'_>) -> Result<(), Errno>;
    /// Classic `mount(source, "/proc/self/fd/TARGET", "overlay", flags, data)`.
    fn mount_classic(&self, mount: &ClassicMount<'_>, target: BorrowedFd<'_>) -> Result<(), Errno>;
    /// `umount2("/proc/self/fd/PARENT/NAME", UMOUNT_NOFOLLOW)`: unmounts the topmost mount at
    /// `NAME` inside the directory `parent`, without holding a reference to the mount itself.
    fn unmount(&self, parent: BorrowedFd<'_>, name: &str) -> Result<(), Errno>;
    /// The mount id (`statx` `STATX_MNT_ID`) of `name` inside `dir`, or of `dir` itself when
    /// `name` is empty. Symlinks are not followed.
    fn mount_id(&self, dir: BorrowedFd<'_>, name: &str) -> Result<u64, Errno>;
    /// The contents of `/proc/self/mountinfo`.
    fn mountinfo(&self) -> Result<Vec<u8>, Errno>;
}

/// `/proc/self/fd/N` for a descriptor: a path the kernel resolves to exactly that file.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Where a descriptor points (readlink of `/proc/self/fd/N`), for messages and comparisons.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    std::fs::read_link(proc_fd_path(fd))
        .unwrap_or_else(|_| PathBuf::from(format!("<fd {}>", fd.as_raw_fd())))
}

/// Descriptor opens beneath a directory: one implementation, in the state dir crate.
pub use left4me_statedir::{RESOLVE_STRICT, openat2_retry};

/// Whether `name` in `dir` is a symlink (not followed). `openat2` with `O_NOFOLLOW |
/// O_DIRECTORY` reports a symlink as `ENOTDIR`; this tells the two apart for the error message.
pub fn is_symlink_at(dir: BorrowedFd<'_>, name: &Path) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink())
}

/// The real system calls.
#[derive(Debug, Default)]
pub struct RealSys {
    method: OnceLock<MountMethod>,
}

impl RealSys {
    /// Probes the kernel on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `method` without probing (tests and benchmarks of the fallbacks).
    pub fn with_method(method: MountMethod) -> Self {
        let slot = OnceLock::new();
        let _ = slot.set(method);
        Self { method: slot }
    }
}

impl MountSys for RealSys {
    type Fs = OwnedFd;
    type Mnt = OwnedFd;

    fn method_slot(&self) -> &OnceLock<MountMethod> {
        &self.method
    }

    fn fs_open(&self) -> Result<OwnedFd, Errno> {
        rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
    }

    fn fs_set_string(&self, fs: &OwnedFd, key: &str, value: &str) -> Result<(), Errno> {
        rustix::mount::fsconfig_set_string(fs, key, value)
    }

    fn fs_set_fd(&self, fs: &OwnedFd, key: &str, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::mount::fsconfig_set_fd(fs, key, fd)
    }

    fn fs_create(&self, fs: &OwnedFd) -> Result<(), Errno> {
        rustix::mount::fsconfig_create(fs)
    }

    fn fs_log(&self, fs: &OwnedFd) -> Vec<String> {
        let mut messages = Vec::new();
        let mut buf = [0u8; 1024];
        // Each read returns one message; ENODATA when the log is empty. Bounded for safety.
        for _ in 0..64 {
            match rustix::io::read(fs, &mut buf) {
                Ok(n) if n > 0 => {
                    messages.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned());
                }
                _ => break,
            }
        }
        messages
    }

    fn fs_mount(&self, fs: &OwnedFd, options: MountOptions) -> Result<OwnedFd, Errno> {
        let attrs: MountAttrFlags = options.pick(
            MountAttrFlags::MOUNT_ATTR_NOSUID,
            MountAttrFlags::MOUNT_ATTR_NODEV,
        );
        rustix::mount::fsmount(fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
    }

    fn move_mount_onto(&self, mnt: &OwnedFd, target: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::mount::move_mount(
            mnt,
            "",
            target,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
    }

    fn mount_classic(&self, mount: &ClassicMount<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
        let flags: MountFlags = mount.options.pick(MountFlags::NOSUID, MountFlags::NODEV);
        let data = CString::new(mount.data).map_err(|_| Errno::INVAL)?;
        rustix::mount::mount(
            mount.source,
            proc_fd_path(target).as_str(),
            "overlay",
            flags,
            Some(data.as_c_str()),
        )
    }

    fn unmount(&self, parent: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
        let path = format!("{}/{name}", proc_fd_path(parent));
        rustix::mount::unmount(path.as_str(), UnmountFlags::NOFOLLOW)
    }

    fn mount_id(&self, dir: BorrowedFd<'_>, name: &str) -> Result<u64, Errno> {
        let mut flags = AtFlags::SYMLINK_NOFOLLOW;
        if name.is_empty() {
            flags |= AtFlags::EMPTY_PATH;
        }
        let stx = rustix::fs::statx(dir, name, flags, StatxFlags::MNT_ID)?;
        if StatxFlags::from_bits_retain(stx.stx_mask).contains(StatxFlags::MNT_ID) {
            Ok(stx.stx_mnt_id)
        } else {
            Err(Errno::NOSYS)
        }
    }

    fn mountinfo(&self) -> Result<Vec<u8>, Errno> {
        std::fs::read("/proc/self/mountinfo")
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        assert_eq!(
            MountMethod::LayerFds.to_string(),
            "fsconfig lowerdir+ by file descriptor (Linux 6.13+)"
        );
        let sys = RealSys::with_method(MountMethod::Classic);
        assert_eq!(sys.method_slot().get(), Some(&MountMethod::Classic));
        assert_eq!(RealSys::new().method_slot().get(), None);
    }
}
