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
//! The state dir, `runtime/` and `runtime/NAME` belong to root (DESIGN.md §2; the state dir is
//! checked when opened, the other two are created or repaired root-owned 0755 here); the game
//! user owns only the leaves `upper`, `work` and `merged`. Still, root never acts by path: every
//! step goes through a directory descriptor, opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` and `O_NOFOLLOW | O_DIRECTORY`; ownership and modes are fixed with
//! `fchown`/`fchmod` on those descriptors. A symlink planted anywhere on the way is refused, so
//! the game user cannot redirect a root write.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;

use left4me_contract::layout::RUNTIME;

use crate::plan::{InstanceRuntime, Owner};
use crate::resolve::{LayerError, open_state_dir};
use crate::sys::{RESOLVE_STRICT, is_symlink_at, openat2_retry};

/// Descriptors of an instance's runtime directories (all `O_RDONLY | O_DIRECTORY`).
///
/// `merged` is not among them: a descriptor of a mounted tree would keep it busy. The mount code
/// opens the directory under the mount point with [`open_mount_target`] when it mounts.
#[derive(Debug)]
pub struct OpenRuntimeDirs {
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

/// The error of a failed `action` on `path`, as a `map_err` argument.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(Errno) -> DirError + use<> {
    let path = path.to_owned();
    move |e| DirError::Io {
        action,
        path,
        source: e.into(),
    }
}

/// Opens the directory `name` inside `parent` without following any symlink; `None` when it
/// does not exist. `extra` adds resolve flags (`RESOLVE_NO_XDEV`: the directory under a mount
/// point, or [`DirError::MountedOver`]).
pub(crate) fn open_dir(
    parent: BorrowedFd<'_>,
    name: &Path,
    shown: &Path,
    extra: ResolveFlags,
) -> Result<Option<OwnedFd>, DirError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
    match openat2_retry(parent, name, flags, Mode::empty(), RESOLVE_STRICT | extra) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::XDEV) => Err(DirError::MountedOver {
            path: shown.to_owned(),
        }),
        Err(Errno::LOOP) => Err(DirError::Symlink {
            path: shown.to_owned(),
        }),
        Err(Errno::NOTDIR) if is_symlink_at(parent, name) => Err(DirError::Symlink {
            path: shown.to_owned(),
        }),
        Err(Errno::NOTDIR) => Err(DirError::NotDir {
            path: shown.to_owned(),
        }),
        Err(e) => Err(io("open", shown)(e)),
    }
}

/// What [`ensure_dir`] fixes on a directory that exists already (a directory it creates always
/// gets the owner and mode asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repair {
    /// Leave it as it is.
    Nothing,
    /// Give it the owner asked for.
    Owner,
    /// Give it the owner and the mode asked for.
    OwnerAndMode,
}

/// How [`ensure_dir`] leaves a directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirSpec {
    pub owner: Owner,
    pub mode: u32,
    pub repair: Repair,
    /// Extra resolve flags for opening it (see [`open_dir`]).
    pub resolve: ResolveFlags,
}

/// Makes sure the directory `name` exists in `parent` as `spec` says, never following a
/// symlink. Returns its descriptor.
pub(crate) fn ensure_dir(
    parent: BorrowedFd<'_>,
    name: &Path,
    shown: &Path,
    spec: DirSpec,
) -> Result<OwnedFd, DirError> {
    let (fd, created) = match open_dir(parent, name, shown, spec.resolve)? {
        Some(fd) => (fd, false),
        None => {
            match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(spec.mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io("create", shown)(e)),
            }
            let fd = open_dir(parent, name, shown, spec.resolve)?
                .ok_or_else(|| io("open", shown)(Errno::NOENT))?;
            (fd, true)
        }
    };
    if !created && spec.repair == Repair::Nothing {
        return Ok(fd);
    }
    let stat = rustix::fs::fstat(&fd).map_err(io("stat", shown))?;
    if stat.st_uid != spec.owner.uid || stat.st_gid != spec.owner.gid {
        rustix::fs::fchown(
            &fd,
            Some(Uid::from_raw(spec.owner.uid)),
            Some(Gid::from_raw(spec.owner.gid)),
        )
        .map_err(io("change the owner of", shown))?;
    }
    // mkdirat applies the umask; set the mode we mean.
    let fix_mode = created || spec.repair == Repair::OwnerAndMode;
    if fix_mode && stat.st_mode & 0o7777 != spec.mode {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(spec.mode)).map_err(io("chmod", shown))?;
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
pub fn ensure_runtime_dirs(
    runtime: &InstanceRuntime,
    game: Owner,
) -> Result<OpenRuntimeDirs, DirError> {
    let state = open_state_dir(&runtime.state_dir)?;
    let paths = &runtime.dirs;
    let root_owned = DirSpec {
        owner: caller(),
        mode: 0o755,
        repair: Repair::OwnerAndMode,
        resolve: ResolveFlags::empty(),
    };
    let game_owned = |mode| DirSpec {
        owner: game,
        mode,
        repair: Repair::Owner,
        resolve: ResolveFlags::empty(),
    };
    let runtime_root = ensure_dir(
        state.as_fd(),
        RUNTIME.as_ref(),
        &runtime.state_dir.join(RUNTIME),
        root_owned,
    )?;
    let instance = ensure_dir(
        runtime_root.as_fd(),
        runtime.name.as_ref(),
        &paths.dir,
        root_owned,
    )?;
    let upper = ensure_dir(
        instance.as_fd(),
        "upper".as_ref(),
        &paths.upper,
        game_owned(0o755),
    )?;
    let work = ensure_dir(
        instance.as_fd(),
        "work".as_ref(),
        &paths.work,
        game_owned(0o700),
    )?;
    let merged = DirSpec {
        resolve: ResolveFlags::NO_XDEV,
        ..game_owned(0o755)
    };
    match ensure_dir(instance.as_fd(), "merged".as_ref(), &paths.merged, merged) {
        Ok(_) | Err(DirError::MountedOver { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(OpenRuntimeDirs {
        instance,
        upper,
        work,
    })
}

/// Opens `merged` in `runtime/NAME` (`instance`) as the target of a mount: the directory itself,
/// never a tree mounted on it ([`DirError::MountedOver`]) and never through a symlink.
pub fn open_mount_target(
    instance: BorrowedFd<'_>,
    runtime: &InstanceRuntime,
) -> Result<OwnedFd, DirError> {
    let merged = &runtime.dirs.merged;
    open_dir(instance, "merged".as_ref(), merged, ResolveFlags::NO_XDEV)?
        .ok_or_else(|| io("open", merged)(Errno::NOENT))
}

/// Opens `runtime/NAME` without creating anything; `None` when it does not exist.
pub fn open_instance_dir(runtime: &InstanceRuntime) -> Result<Option<OwnedFd>, DirError> {
    let state = open_state_dir(&runtime.state_dir)?;
    let runtime_path = runtime.state_dir.join(RUNTIME);
    let Some(root) = open_dir(
        state.as_fd(),
        RUNTIME.as_ref(),
        &runtime_path,
        ResolveFlags::empty(),
    )?
    else {
        return Ok(None);
    };
    open_dir(
        root.as_fd(),
        runtime.name.as_ref(),
        &runtime.dirs.dir,
        ResolveFlags::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn plan(t: &TempDir) -> InstanceRuntime {
        InstanceRuntime::new(t.path(), "coop1").unwrap()
    }

    #[test]
    fn creates_the_layout() {
        let t = TempDir::new("dirs");
        let p = plan(&t);
        assert!(open_instance_dir(&p).unwrap().is_none());
        ensure_runtime_dirs(&p, caller()).unwrap();
        for (path, mode) in [
            (t.path().join("runtime"), 0o755),
            (p.dirs.dir.clone(), 0o755),
            (p.dirs.upper.clone(), 0o755),
            (p.dirs.work.clone(), 0o700),
            (p.dirs.merged.clone(), 0o755),
        ] {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.is_dir(), "{path:?}");
            assert_eq!(meta.permissions().mode() & 0o7777, mode, "{path:?}");
            assert_eq!(meta.uid(), caller().uid);
        }
        assert!(open_instance_dir(&p).unwrap().is_some());
        // Idempotent, and repairs a bad mode of the root-owned dirs.
        std::fs::set_permissions(&p.dirs.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        ensure_runtime_dirs(&p, caller()).unwrap();
        let mode = std::fs::metadata(&p.dirs.dir).unwrap().permissions().mode();
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
        std::fs::create_dir_all(&p.dirs.dir).unwrap();
        symlink(outside.path(), &p.dirs.merged).unwrap();
        let e = ensure_runtime_dirs(&p, caller()).unwrap_err();
        assert!(
            matches!(&e, DirError::Symlink { path } if path == &p.dirs.merged),
            "{e}"
        );

        std::fs::remove_file(&p.dirs.merged).unwrap();
        std::fs::write(&p.dirs.merged, "").unwrap();
        let e = ensure_runtime_dirs(&p, caller()).unwrap_err();
        assert!(matches!(&e, DirError::NotDir { .. }), "{e}");
    }
}
