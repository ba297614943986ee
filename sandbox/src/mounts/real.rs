//! The real mount system calls.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};

use super::{IdMap, MountError, MountOps, OVERLAY_OPTIONS, OverlayLayers};
use crate::sys;
use left4me_contract::game as contract_game;

/// The real system calls.
#[derive(Debug, Default)]
pub struct RealMounts {
    /// Processes that created idmap user namespaces (exited, not yet reaped).
    holders: RefCell<Vec<rustix::process::Pid>>,
}

impl RealMounts {
    /// Reaps the processes [`MountOps::idmap_userns`] started (killed once their namespace is
    /// open; reaping is left until the sandbox has run, nobody waits for them). Also done on
    /// drop.
    pub fn reap(&self) {
        for pid in self.holders.borrow_mut().drain(..) {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
    }
}

impl Drop for RealMounts {
    fn drop(&mut self) {
        self.reap();
    }
}

fn cstring(path: &Path) -> Result<CString, Errno> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::INVAL)
}

impl MountOps for RealMounts {
    type Tree = OwnedFd;
    type Userns = OwnedFd;

    fn unshare_private(&self) -> Result<(), Errno> {
        sys::unshare_mount_namespace()?;
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
        )
    }

    fn idmap_userns(&self, map: &IdMap) -> Result<OwnedFd, MountError> {
        let pid = sys::spawn_userns_child().map_err(MountError::Userns)?;
        self.holders.borrow_mut().push(pid);
        let proc = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
        let write = |name: &str, text: String| {
            std::fs::write(proc.join(name), text).map_err(MountError::Userns)
        };
        let opened = write("uid_map", map.uid_map())
            .and_then(|()| write("gid_map", map.gid_map()))
            .and_then(|()| {
                rustix::fs::open(
                    proc.join("ns/user"),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| MountError::Userns(e.into()))
            });
        // The open namespace keeps itself alive; the child is not needed any more ([`reap`]
        // waits for it).
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        opened
    }

    fn clone_dir(&self, dir: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        rustix::mount::open_tree(
            dir,
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_EMPTY_PATH,
        )
    }

    fn clone_path(&self, source: &Path, recursive: bool) -> Result<OwnedFd, Errno> {
        let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if recursive {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        rustix::mount::open_tree(CWD, source, flags)
    }

    fn set_attrs(
        &self,
        tree: &OwnedFd,
        attrs: MountAttrFlags,
        recursive: bool,
        userns: Option<&OwnedFd>,
    ) -> Result<(), Errno> {
        let mut flags = libc::AT_EMPTY_PATH as u32;
        if recursive {
            flags |= libc::AT_RECURSIVE as u32;
        }
        sys::mount_setattr(
            tree.as_fd(),
            c"",
            flags,
            u64::from(attrs.bits()),
            0,
            userns.map(|fd| fd.as_fd()),
        )
    }

    fn attach(&self, tree: OwnedFd, target: &Path) -> Result<(), Errno> {
        rustix::mount::move_mount(
            &tree,
            "",
            CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
    }

    fn mount_tmpfs(&self, target: &Path, options: &str) -> Result<(), Errno> {
        let options = CString::new(options).map_err(|_| Errno::INVAL)?;
        rustix::mount::mount(
            "tmpfs",
            target,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            Some(options.as_c_str()),
        )
    }

    fn mount_proc(&self, target: &Path, options: &str) -> Result<(), Errno> {
        let options = CString::new(options).map_err(|_| Errno::INVAL)?;
        rustix::mount::mount(
            "proc",
            target,
            "proc",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::RDONLY,
            Some(options.as_c_str()),
        )
    }

    fn mkdir(&self, path: &Path, mode: u32) -> Result<(), Errno> {
        rustix::fs::mkdir(path, Mode::from_raw_mode(mode))
    }

    fn create_file(&self, path: &Path) -> Result<(), Errno> {
        rustix::fs::open(
            path,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o444),
        )
        .map(drop)
    }

    fn symlink(&self, target: &Path, path: &Path) -> Result<(), Errno> {
        rustix::fs::symlink(target, path)
    }

    fn mount_overlay(&self, layers: &OverlayLayers, target: &Path) -> Result<(), Errno> {
        // tree/ and work/ are opened beneath the staging directory without following a
        // symlink or crossing a mount, and handed to overlayfs as /proc/self/fd/N: the owner
        // of the output directory (the game user, unless it is root) cannot swap either for a
        // link between this check and the mount.
        let staging = rustix::fs::open(
            &layers.staging,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let beneath = |name: &str| {
            crate::sources::open_child(
                &staging,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            )
        };
        let upper = beneath(contract_game::TREE)?;
        let work = beneath(contract_game::WORK)?;
        let fd_path = |fd: &OwnedFd| format!("/proc/self/fd/{}", fd.as_raw_fd());

        let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        for lower in &layers.lowers {
            rustix::mount::fsconfig_set_string(&fs, "lowerdir+", lower)?;
        }
        rustix::mount::fsconfig_set_string(&fs, "upperdir", fd_path(&upper))?;
        rustix::mount::fsconfig_set_string(&fs, "workdir", fd_path(&work))?;
        for (key, value) in OVERLAY_OPTIONS {
            rustix::mount::fsconfig_set_string(&fs, key, value)?;
        }
        // The superblock is made here, and overlayfs keeps the credentials of this call as its
        // mounter's (see `OverlayLayers::mounter`).
        sys::with_fs_ids(layers.mounter, || rustix::mount::fsconfig_create(&fs))??;
        let mount = rustix::mount::fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NOSUID
                | MountAttrFlags::MOUNT_ATTR_NODEV
                | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        )?;
        self.attach(mount, target)
    }

    fn detach(&self, path: &Path) -> Result<(), Errno> {
        rustix::mount::unmount(path, UnmountFlags::DETACH)
    }

    fn rmdir(&self, path: &Path) -> Result<(), Errno> {
        rustix::fs::rmdir(path)
    }

    fn make_readonly(&self, path: &Path) -> Result<(), Errno> {
        let path = cstring(path)?;
        sys::mount_setattr(
            CWD,
            &path,
            0,
            u64::from(MountAttrFlags::MOUNT_ATTR_RDONLY.bits()),
            0,
            None,
        )
    }

    fn pivot_root(&self, new_root: &Path) -> Result<(), Errno> {
        rustix::process::chdir(new_root)?;
        rustix::process::pivot_root(".", ".")?;
        rustix::mount::unmount(".", UnmountFlags::DETACH)?;
        rustix::process::chdir("/")
    }
}
