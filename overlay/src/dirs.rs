//! The per-instance runtime directories.
//!
//! ```text
//! STATE/runtime/            owned by the caller (root in production), 0755
//! STATE/runtime/NAME/       owned by the caller, 0755
//! STATE/runtime/NAME/upper  owned by the game user, 0755
//! STATE/runtime/NAME/work   owned by the game user, 0700
//! STATE/runtime/NAME/merged owned by the game user, 0755
//! ```
//!
//! The state dir belongs to the game user, so root acts inside a tree someone else can change.
//! Every step goes through a directory descriptor, opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` and `O_NOFOLLOW | O_DIRECTORY`; ownership and modes are fixed with
//! `fchown`/`fchmod` on those descriptors. A symlink planted anywhere on the way is refused, so
//! the game user cannot redirect a root write.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;

use crate::plan::{MountPlan, Owner};
use crate::resolve::{LayerError, open_state_dir};
use crate::sys::{RESOLVE_STRICT, is_symlink_at, openat2_retry};

/// Descriptors of an instance's runtime directories (all `O_RDONLY | O_DIRECTORY`).
///
/// `merged` is not among them: a descriptor of a mounted tree would keep it busy. The mount code
/// opens the directory under the mount point with [`open_mount_target`] when it mounts.
#[derive(Debug)]
pub struct RuntimeDirs {
    /// `runtime/NAME`.
    pub instance: OwnedFd,
    pub upper: OwnedFd,
    pub work: OwnedFd,
}

/// Why a runtime directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error(transparent)]
    StateDir(#[from] LayerError),
    #[error(
        "{path} is a symlink: refusing to follow it as root; remove it (`left4mectl reset NAME` \
         recreates the runtime dirs)"
    )]
    Symlink { path: PathBuf },
    #[error("{path} is not a directory: remove it (`left4mectl reset NAME`)")]
    NotDir { path: PathBuf },
    #[error(
        "{path} has something mounted on it: unmount it first (`left4me-supervisor cleanup NAME`)"
    )]
    MountedOver { path: PathBuf },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(Errno) -> DirError + use<> {
    let path = path.to_owned();
    move |e| DirError::Io {
        action,
        path,
        source: e.into(),
    }
}

/// Opens the directory `name` inside `parent` without following any symlink.
pub(crate) fn open_dir(
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &Path,
) -> Result<Option<OwnedFd>, DirError> {
    open_dir_with(parent, name, shown, ResolveFlags::empty())
}

/// [`open_dir`] with extra resolve flags (`RESOLVE_NO_XDEV`: the directory under a mount point,
/// or [`DirError::MountedOver`]).
fn open_dir_with(
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &Path,
    extra: ResolveFlags,
) -> Result<Option<OwnedFd>, DirError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
    match openat2_retry(
        parent,
        name.as_ref(),
        flags,
        Mode::empty(),
        RESOLVE_STRICT | extra,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::XDEV) => Err(DirError::MountedOver {
            path: shown.to_owned(),
        }),
        Err(Errno::LOOP) => Err(DirError::Symlink {
            path: shown.to_owned(),
        }),
        Err(Errno::NOTDIR) if is_symlink_at(parent, name.as_ref()) => Err(DirError::Symlink {
            path: shown.to_owned(),
        }),
        Err(Errno::NOTDIR) => Err(DirError::NotDir {
            path: shown.to_owned(),
        }),
        Err(e) => Err(io("open", shown)(e)),
    }
}

/// Makes sure the directory `name` exists in `parent` with `owner` and, when created or when
/// `force_mode` is set, `mode`. Returns its descriptor.
fn ensure_dir(
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &Path,
    owner: Owner,
    mode: u32,
    force_mode: bool,
) -> Result<OwnedFd, DirError> {
    ensure_dir_with(
        parent,
        name,
        shown,
        owner,
        mode,
        force_mode,
        ResolveFlags::empty(),
    )
}

fn ensure_dir_with(
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &Path,
    owner: Owner,
    mode: u32,
    force_mode: bool,
    extra: ResolveFlags,
) -> Result<OwnedFd, DirError> {
    let (fd, created) = match open_dir_with(parent, name, shown, extra)? {
        Some(fd) => (fd, false),
        None => {
            match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io("create", shown)(e)),
            }
            let fd = open_dir_with(parent, name, shown, extra)?
                .ok_or_else(|| io("open", shown)(Errno::NOENT))?;
            (fd, true)
        }
    };
    let stat = rustix::fs::fstat(&fd).map_err(io("stat", shown))?;
    if stat.st_uid != owner.uid || stat.st_gid != owner.gid {
        rustix::fs::fchown(
            &fd,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )
        .map_err(io("change the owner of", shown))?;
    }
    // mkdirat applies the umask; set the mode we mean.
    if (created || force_mode) && stat.st_mode & 0o7777 != mode {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io("chmod", shown))?;
    }
    Ok(fd)
}

/// The owner of the root-owned part of the tree: the calling process (root in production).
pub fn caller() -> Owner {
    Owner {
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    }
}

/// Creates (or repairs) `runtime/` and `runtime/NAME` (owned by the caller, 0755) and
/// `runtime/NAME/{upper,work,merged}` (owned by `game`), and returns their descriptors. A
/// `merged` with something mounted on it is left alone.
pub fn ensure_runtime_dirs(plan: &MountPlan, game: Owner) -> Result<RuntimeDirs, DirError> {
    let state = open_state_dir(&plan.state_dir)?;
    let me = caller();
    let runtime_path = plan.state_dir.join("runtime");
    let runtime = ensure_dir(state.as_fd(), "runtime", &runtime_path, me, 0o755, true)?;
    let instance = ensure_dir(
        runtime.as_fd(),
        &plan.name,
        &plan.runtime_dir,
        me,
        0o755,
        true,
    )?;
    let upper = ensure_dir(instance.as_fd(), "upper", &plan.upper, game, 0o755, false)?;
    let work = ensure_dir(instance.as_fd(), "work", &plan.work, game, 0o700, false)?;
    match ensure_dir_with(
        instance.as_fd(),
        "merged",
        &plan.merged,
        game,
        0o755,
        false,
        ResolveFlags::NO_XDEV,
    ) {
        Ok(_) | Err(DirError::MountedOver { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(RuntimeDirs {
        instance,
        upper,
        work,
    })
}

/// Opens `merged` in `runtime/NAME` (`instance`) as the target of a mount: the directory itself,
/// never a tree mounted on it ([`DirError::MountedOver`]) and never through a symlink.
pub fn open_mount_target(instance: BorrowedFd<'_>, plan: &MountPlan) -> Result<OwnedFd, DirError> {
    open_dir_with(instance, "merged", &plan.merged, ResolveFlags::NO_XDEV)?
        .ok_or_else(|| io("open", &plan.merged)(Errno::NOENT))
}

/// Opens `runtime/NAME` without creating anything; `None` when it does not exist.
pub fn open_instance_dir(plan: &MountPlan) -> Result<Option<OwnedFd>, DirError> {
    let state = open_state_dir(&plan.state_dir)?;
    let runtime_path = plan.state_dir.join("runtime");
    let Some(runtime) = open_dir(state.as_fd(), "runtime", &runtime_path)? else {
        return Ok(None);
    };
    open_dir(runtime.as_fd(), &plan.name, &plan.runtime_dir)
}

/// Removes `name` inside `parent` and everything below it, never following a symlink (a symlink
/// is removed, not its target). Returns whether anything was there. Depth is bounded.
pub(crate) fn remove_tree(
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &Path,
) -> Result<bool, DirError> {
    remove_tree_at(parent, name.as_ref(), shown, 0)
}

const MAX_REMOVE_DEPTH: usize = 128;

fn remove_tree_at(
    parent: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    shown: &Path,
    depth: usize,
) -> Result<bool, DirError> {
    use rustix::fs::{AtFlags, FileType};
    let stat = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(io("stat", shown)(e)),
    };
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        if depth >= MAX_REMOVE_DEPTH {
            return Err(io("remove (too deep)", shown)(Errno::LOOP));
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir =
            rustix::fs::openat(parent, name, flags, Mode::empty()).map_err(io("open", shown))?;
        let mut entries = rustix::fs::Dir::read_from(&dir).map_err(io("read", shown))?;
        let mut names = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(io("read", shown))?;
            let child = entry.file_name().to_bytes();
            if child != b"." && child != b".." {
                names.push(std::ffi::OsString::from(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(child),
                ));
            }
        }
        for child in names {
            remove_tree_at(dir.as_fd(), &child, &shown.join(&child), depth + 1)?;
        }
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(io("remove", shown))?;
    } else {
        rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(io("remove", shown))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn plan(t: &TempDir) -> MountPlan {
        MountPlan::new(t.path(), "coop1", &["installation"]).unwrap()
    }

    #[test]
    fn creates_the_layout() {
        let t = TempDir::new("dirs");
        let p = plan(&t);
        assert!(open_instance_dir(&p).unwrap().is_none());
        ensure_runtime_dirs(&p, caller()).unwrap();
        for (path, mode) in [
            (t.path().join("runtime"), 0o755),
            (p.runtime_dir.clone(), 0o755),
            (p.upper.clone(), 0o755),
            (p.work.clone(), 0o700),
            (p.merged.clone(), 0o755),
        ] {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.is_dir(), "{path:?}");
            assert_eq!(meta.permissions().mode() & 0o7777, mode, "{path:?}");
            assert_eq!(meta.uid(), caller().uid);
        }
        assert!(open_instance_dir(&p).unwrap().is_some());
        // Idempotent, and repairs a bad mode of the root-owned dirs.
        std::fs::set_permissions(&p.runtime_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        ensure_runtime_dirs(&p, caller()).unwrap();
        let mode = std::fs::metadata(&p.runtime_dir)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn planted_symlinks_refused() {
        let t = TempDir::new("dirs-symlink");
        let outside = TempDir::new("dirs-outside");
        let p = plan(&t);
        symlink(outside.path(), t.path().join("runtime")).unwrap();
        let e = ensure_runtime_dirs(&p, caller()).unwrap_err();
        assert!(
            matches!(&e, DirError::Symlink { path } if path == &t.path().join("runtime")),
            "{e}"
        );
        assert!(
            e.to_string().contains("refusing to follow it as root"),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

        std::fs::remove_file(t.path().join("runtime")).unwrap();
        std::fs::create_dir_all(&p.runtime_dir).unwrap();
        symlink(outside.path(), &p.merged).unwrap();
        let e = ensure_runtime_dirs(&p, caller()).unwrap_err();
        assert!(
            matches!(&e, DirError::Symlink { path } if path == &p.merged),
            "{e}"
        );

        std::fs::remove_file(&p.merged).unwrap();
        std::fs::write(&p.merged, "").unwrap();
        let e = ensure_runtime_dirs(&p, caller()).unwrap_err();
        assert!(matches!(&e, DirError::NotDir { .. }), "{e}");
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let t = TempDir::new("dirs-remove");
        let outside = TempDir::new("dirs-remove-outside");
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        std::fs::create_dir_all(t.path().join("w/a/b")).unwrap();
        std::fs::write(t.path().join("w/a/b/f"), "x").unwrap();
        symlink(outside.path(), t.path().join("w/a/link")).unwrap();
        let dir = rustix::fs::open(t.path(), OFlags::RDONLY, Mode::empty()).unwrap();
        assert!(remove_tree(dir.as_fd(), "w", &t.path().join("w")).unwrap());
        assert!(!t.path().join("w").exists());
        assert!(outside.path().join("keep").exists());
        assert!(!remove_tree(dir.as_fd(), "w", &t.path().join("w")).unwrap());
    }
}
