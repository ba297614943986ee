//! The sandbox's file system view: a private mount namespace whose root is a small read-only
//! tmpfs holding only what the [`Policy`] names.
//!
//! ```text
//! /               tmpfs, read-only, nosuid,nodev,noexec
//! ├── usr, etc    the host's, bound recursively read-only, nosuid,nodev
//! ├── bin → usr/bin, lib → usr/lib, …   the host's top-level symlinks, recreated
//! ├── run/systemd/resolve/stub-resolv.conf   a read-only file bind, when /etc/resolv.conf
//! │               points outside the bound directories
//! ├── dev/        null zero full random urandom bound from the host; fd, stdin, stdout,
//! │               stderr → /proc/self/fd/…
//! ├── proc        a fresh procfs, read-only, hidepid=invisible,subset=pid
//! ├── tmp         a fresh tmpfs, mode 1777, nosuid,nodev,noexec
//! └── overlay     the output directory, idmapped (sandbox uid ↔ owner uid), nosuid,nodev,noexec
//! ```
//!
//! [`RootPlan`] is that tree as data (pure, built from the policy and a host root so it is tested
//! on a fixture). [`build_root`] carries a plan out through [`MountOps`]: [`RealMounts`] makes
//! the system calls, [`RecordingMounts`] writes each one down so the sequence is tested without
//! root.
//!
//! The new root is assembled on a tmpfs mounted over `/tmp` in the private namespace (any
//! directory would do; `/tmp` exists everywhere and hides nothing we need, because every source
//! is cloned with `open_tree` *before* that mount), then `pivot_root` makes it `/` and the old
//! root is detached. So the unit needs to provide nothing for the mounts; `/overlay` never
//! exists on the host.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

use crate::policy::{OVERLAY_DIR, Policy, TMP_DIR, under};
use crate::sys;
use crate::users::Ids;

/// Where the new root is put together before `pivot_root`.
pub const STAGING: &str = "/tmp";

/// Options of the root tmpfs: it only holds directories, empty files and symlinks.
const ROOT_TMPFS: &str = "mode=0755,size=1m,nr_inodes=4096";
/// Options of the sandbox's `/tmp`. Its size is bounded by the unit's `MemoryMax=` (tmpfs pages
/// are charged to the unit's cgroup).
const TMP_TMPFS: &str = "mode=1777";
/// Options of the sandbox's `/proc`: only processes of the sandbox user are visible, and only
/// the per-process directories (no `/proc/sys`, `/proc/kcore`, …).
const PROC_OPTIONS: &str = "hidepid=invisible,subset=pid";

/// Errors building the sandbox's root.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A host path of the policy could not be inspected.
    #[error("cannot inspect {path} for the sandbox's mounts")]
    Inspect {
        /// The host path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A mount step failed.
    #[error("{step} failed")]
    Step {
        /// What was done, e.g. `bind /usr on /tmp/usr`.
        step: String,
        /// The errno.
        #[source]
        source: Errno,
    },
    /// The idmap helper could not be started.
    #[error("cannot create the user namespace for the idmapped /overlay")]
    Userns(#[source] std::io::Error),
}

/// What kind of bind mount a [`Step::Bind`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindKind {
    /// A directory tree, recursive, read-only, `nosuid,nodev`.
    Tree,
    /// One regular file, read-only, `nosuid,nodev,noexec`.
    File,
    /// One device node, read-only mount (writes to a device still work), `nosuid,noexec`.
    Device,
}

impl BindKind {
    fn recursive(self) -> bool {
        self == Self::Tree
    }

    fn attrs(self) -> MountAttrFlags {
        let base = MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NOSUID;
        match self {
            Self::Tree => base | MountAttrFlags::MOUNT_ATTR_NODEV,
            Self::File => {
                base | MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOEXEC
            }
            Self::Device => base | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        }
    }
}

/// One step of assembling the root. Paths are as seen inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A directory of the root tmpfs (a mount point or a parent of one).
    Dir(PathBuf),
    /// A symlink, copied from the host.
    Symlink {
        /// Where.
        path: PathBuf,
        /// What it points to (as read from the host).
        target: PathBuf,
    },
    /// A bind mount of the host's `source` at `path`.
    Bind {
        /// The host path.
        source: PathBuf,
        /// Where inside.
        path: PathBuf,
        /// Which attributes.
        kind: BindKind,
    },
    /// A fresh procfs.
    Proc(PathBuf),
    /// A fresh writable tmpfs.
    Tmpfs(PathBuf),
    /// The idmapped output directory.
    Overlay(PathBuf),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(path) => write!(f, "dir {}", path.display()),
            Self::Symlink { path, target } => {
                write!(f, "symlink {} -> {}", path.display(), target.display())
            }
            Self::Bind { source, path, kind } => {
                write!(
                    f,
                    "bind {kind:?} {} at {}",
                    source.display(),
                    path.display()
                )
            }
            Self::Proc(path) => write!(f, "proc at {}", path.display()),
            Self::Tmpfs(path) => write!(f, "tmpfs at {}", path.display()),
            Self::Overlay(path) => write!(f, "overlay at {}", path.display()),
        }
    }
}

/// The sandbox's root as a list of steps, parents before children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPlan {
    /// The steps, in the order they are carried out.
    pub steps: Vec<Step>,
}

fn top_level(path: &Path) -> Option<PathBuf> {
    path.components().find_map(|c| match c {
        Component::Normal(name) => Some(Path::new("/").join(name)),
        _ => None,
    })
}

/// `base`'s parent joined with `target`, `..` and `.` resolved lexically.
fn join_link(link: &Path, target: &Path) -> PathBuf {
    let joined = if target.is_absolute() {
        target.to_path_buf()
    } else {
        link.parent().unwrap_or(Path::new("/")).join(target)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl RootPlan {
    /// The root for `policy` (made [`concrete`](Policy::concrete) against `host`), reading the
    /// host tree at `host` (`/` in production).
    pub fn new(policy: &Policy, host: &Path) -> Result<Self, MountError> {
        let inspect = |path: &Path| {
            let full = under(host, path);
            std::fs::symlink_metadata(&full)
                .map_err(|source| MountError::Inspect { path: full, source })
        };
        let read_link = |path: &Path| {
            let full = under(host, path);
            std::fs::read_link(&full).map_err(|source| MountError::Inspect { path: full, source })
        };

        // Top-level directories bound whole, top-level symlinks recreated.
        let mut trees = BTreeSet::new();
        let mut symlinks = BTreeMap::new();
        for path in policy.read_exec.iter().chain(&policy.read_only) {
            let Some(mut top) = top_level(path) else {
                continue;
            };
            if trees.contains(&top) || symlinks.contains_key(&top) {
                continue;
            }
            for _ in 0..8 {
                if !inspect(&top)?.file_type().is_symlink() {
                    trees.insert(top);
                    break;
                }
                let target = read_link(&top)?;
                let next = top_level(&join_link(&top, &target));
                symlinks.insert(top.clone(), target);
                match next {
                    Some(next) => top = next,
                    None => break,
                }
            }
        }
        let visible = |path: &Path, trees: &BTreeSet<PathBuf>| {
            top_level(path).is_some_and(|top| trees.contains(&top))
        };

        // Read-only entries whose (final) target lies outside those trees: follow the symlink
        // chain of the last component, recreating links and binding what they end in.
        let mut extra = Vec::new();
        for path in &policy.read_only {
            let mut current = path.clone();
            for _ in 0..8 {
                let meta = inspect(&current)?;
                let outside = !visible(&current, &trees);
                if meta.file_type().is_symlink() {
                    let target = read_link(&current)?;
                    let next = join_link(&current, &target);
                    if outside {
                        extra.push(Step::Symlink {
                            path: current.clone(),
                            target,
                        });
                    }
                    current = next;
                    continue;
                }
                if outside {
                    let kind = if meta.is_dir() {
                        BindKind::Tree
                    } else {
                        BindKind::File
                    };
                    extra.push(Step::Bind {
                        source: current.clone(),
                        path: current.clone(),
                        kind,
                    });
                }
                break;
            }
        }
        for path in &policy.extra_exec {
            if !visible(path, &trees) {
                extra.push(Step::Bind {
                    source: path.clone(),
                    path: path.clone(),
                    kind: BindKind::Tree,
                });
            }
        }

        let mut mounts = Vec::new();
        for (path, target) in symlinks {
            mounts.push(Step::Symlink { path, target });
        }
        for tree in trees {
            mounts.push(Step::Bind {
                source: tree.clone(),
                path: tree,
                kind: BindKind::Tree,
            });
        }
        mounts.extend(extra);
        for device in &policy.devices {
            mounts.push(Step::Bind {
                source: device.path.clone(),
                path: device.path.clone(),
                kind: BindKind::Device,
            });
        }
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            mounts.push(Step::Symlink {
                path: Path::new("/dev").join(name),
                target: PathBuf::from(target),
            });
        }
        mounts.push(Step::Proc(PathBuf::from("/proc")));
        mounts.push(Step::Tmpfs(PathBuf::from(TMP_DIR)));
        mounts.push(Step::Overlay(PathBuf::from(OVERLAY_DIR)));

        // Every parent directory first, sorted so parents precede children.
        let mut dirs = BTreeSet::new();
        for step in &mounts {
            let path = match step {
                Step::Symlink { path, .. } | Step::Bind { path, .. } => path,
                Step::Proc(path) | Step::Tmpfs(path) | Step::Overlay(path) => path,
                Step::Dir(_) => continue,
            };
            let mut parent = path.parent();
            while let Some(dir) = parent {
                if dir != Path::new("/") {
                    dirs.insert(dir.to_path_buf());
                }
                parent = dir.parent();
            }
        }
        let mut steps: Vec<Step> = dirs.into_iter().map(Step::Dir).collect();
        steps.extend(mounts);
        Ok(Self { steps })
    }
}

/// The uid/gid pair the output directory is idmapped with: what the sandbox user writes lands
/// on disk as the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    /// The user the build runs as.
    pub sandbox: Ids,
    /// The user the output belongs to on disk (the game user).
    pub owner: Ids,
}

impl IdMap {
    /// The `uid_map` line of the idmap user namespace: inside (on disk) = owner, outside (the
    /// caller) = sandbox.
    pub fn uid_map(&self) -> String {
        format!("{} {} 1\n", self.owner.uid, self.sandbox.uid)
    }

    /// The `gid_map` line, likewise.
    pub fn gid_map(&self) -> String {
        format!("{} {} 1\n", self.owner.gid, self.sandbox.gid)
    }
}

/// The mount system calls the sandbox makes. Errors are raw errnos; [`build_root`] adds context.
pub trait MountOps {
    /// A detached mount tree (`open_tree(OPEN_TREE_CLONE)`).
    type Tree;
    /// An open user namespace.
    type Userns;

    /// `unshare(CLONE_NEWNS)`, then `/` recursively `MS_SLAVE`: the host's later mounts and
    /// unmounts still reach us (nothing of the host stays pinned), ours never reach the host.
    fn unshare_private(&self) -> Result<(), Errno>;
    /// A user namespace mapping exactly `map`, for the idmapped mount. Called by the parent
    /// before the fork, so making it overlaps with the rest of the start-up.
    fn idmap_userns(&self, map: &IdMap) -> Result<Self::Userns, MountError>;
    /// A detached clone of the mount at the directory `dir`, not recursive.
    fn clone_dir(&self, dir: BorrowedFd<'_>) -> Result<Self::Tree, Errno>;
    /// A detached clone of the mount at the host path `source`.
    fn clone_path(&self, source: &Path, recursive: bool) -> Result<Self::Tree, Errno>;
    /// `mount_setattr` on a detached tree, with the idmap when `userns` is given.
    fn set_attrs(
        &self,
        tree: &Self::Tree,
        attrs: MountAttrFlags,
        recursive: bool,
        userns: Option<&Self::Userns>,
    ) -> Result<(), Errno>;
    /// Attaches a detached tree at `target` (`move_mount`).
    fn attach(&self, tree: Self::Tree, target: &Path) -> Result<(), Errno>;
    /// Mounts a tmpfs at `target`, `nosuid,nodev,noexec`, with `options`.
    fn mount_tmpfs(&self, target: &Path, options: &str) -> Result<(), Errno>;
    /// Mounts a procfs at `target`, read-only, `nosuid,nodev,noexec`, with `options`.
    fn mount_proc(&self, target: &Path, options: &str) -> Result<(), Errno>;
    /// `mkdir(path, mode)`.
    fn mkdir(&self, path: &Path, mode: u32) -> Result<(), Errno>;
    /// Creates an empty file (a mount point for a file bind).
    fn create_file(&self, path: &Path) -> Result<(), Errno>;
    /// `symlink(target, path)`.
    fn symlink(&self, target: &Path, path: &Path) -> Result<(), Errno>;
    /// Makes the mount at `path` read-only (not recursive).
    fn make_readonly(&self, path: &Path) -> Result<(), Errno>;
    /// Makes `new_root` the root (`pivot_root(".", ".")` then a lazy unmount of the old root)
    /// and changes to `/`.
    fn pivot_root(&self, new_root: &Path) -> Result<(), Errno>;
}

fn staged(path: &Path) -> PathBuf {
    under(Path::new(STAGING), path)
}

fn step_err(step: String) -> impl FnOnce(Errno) -> MountError {
    move |source| MountError::Step { step, source }
}

/// Carries out `plan`: a private mount namespace whose root is the planned tree, with `output`
/// (an open directory) idmapped through `userns` (made by [`MountOps::idmap_userns`] for `map`)
/// at [`OVERLAY_DIR`]. Afterwards the process's root and cwd are the new root.
pub fn build_root<M: MountOps>(
    ops: &M,
    plan: &RootPlan,
    output: BorrowedFd<'_>,
    userns: &M::Userns,
    map: &IdMap,
) -> Result<(), MountError> {
    // The output directory first: `open_tree` only clones mounts of the caller's namespace, and
    // `output` was opened in the host's. The detached clone can be attached in ours later.
    let mut overlay = None;
    if plan.steps.iter().any(|s| matches!(s, Step::Overlay(_))) {
        let tree = ops
            .clone_dir(output)
            .map_err(step_err("cloning the output directory".into()))?;
        let attrs = MountAttrFlags::MOUNT_ATTR_IDMAP
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC;
        ops.set_attrs(&tree, attrs, false, Some(userns))
            .map_err(step_err(format!(
                "idmapping the output directory (uid {} -> {}, gid {} -> {}; does its file \
                 system support idmapped mounts?)",
                map.sandbox.uid, map.owner.uid, map.sandbox.gid, map.owner.gid
            )))?;
        overlay = Some(tree);
    }

    ops.unshare_private()
        .map_err(step_err("unshare(CLONE_NEWNS) and making / a slave".into()))?;

    // Clone every source before the staging tmpfs hides anything.
    let mut trees = Vec::new();
    for step in &plan.steps {
        match step {
            Step::Bind { source, kind, .. } => {
                let what = format!("cloning {}", source.display());
                let tree = ops
                    .clone_path(source, kind.recursive())
                    .map_err(step_err(what.clone()))?;
                ops.set_attrs(&tree, kind.attrs(), kind.recursive(), None)
                    .map_err(step_err(format!("{what}: setting {:?}", kind.attrs())))?;
                trees.push(Some(tree));
            }
            Step::Overlay(_) => trees.push(overlay.take()),
            _ => trees.push(None),
        }
    }

    let staging = Path::new(STAGING);
    ops.mount_tmpfs(staging, ROOT_TMPFS)
        .map_err(step_err(format!("mounting the root tmpfs on {STAGING}")))?;
    for (step, tree) in plan.steps.iter().zip(trees) {
        let at = |path: &Path| staged(path);
        match step {
            Step::Dir(path) => ops
                .mkdir(&at(path), 0o755)
                .map_err(step_err(format!("mkdir {}", path.display())))?,
            Step::Symlink { path, target } => ops
                .symlink(target, &at(path))
                .map_err(step_err(step.to_string()))?,
            Step::Bind { path, kind, .. } => {
                if *kind == BindKind::Tree {
                    ops.mkdir(&at(path), 0o755)
                } else {
                    ops.create_file(&at(path))
                }
                .map_err(step_err(format!(
                    "creating the mount point {}",
                    path.display()
                )))?;
                let tree = tree.expect("a tree was cloned for every bind");
                ops.attach(tree, &at(path))
                    .map_err(step_err(step.to_string()))?;
            }
            Step::Proc(path) => {
                ops.mkdir(&at(path), 0o555)
                    .map_err(step_err(format!("mkdir {}", path.display())))?;
                ops.mount_proc(&at(path), PROC_OPTIONS)
                    .map_err(step_err(step.to_string()))?;
            }
            Step::Tmpfs(path) => {
                ops.mkdir(&at(path), 0o755)
                    .map_err(step_err(format!("mkdir {}", path.display())))?;
                ops.mount_tmpfs(&at(path), TMP_TMPFS)
                    .map_err(step_err(step.to_string()))?;
            }
            Step::Overlay(path) => {
                ops.mkdir(&at(path), 0o755)
                    .map_err(step_err(format!("mkdir {}", path.display())))?;
                let tree = tree.expect("the output directory was cloned");
                ops.attach(tree, &at(path))
                    .map_err(step_err(step.to_string()))?;
            }
        }
    }
    ops.make_readonly(staging)
        .map_err(step_err("making the root read-only".into()))?;
    ops.pivot_root(staging)
        .map_err(step_err(format!("pivot_root into {STAGING}")))?;
    Ok(())
}

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

/// A recording double: every call becomes one line of text; nothing is mounted.
#[derive(Debug, Default)]
pub struct RecordingMounts {
    calls: RefCell<Vec<String>>,
}

impl RecordingMounts {
    /// The calls made so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: String) -> Result<(), Errno> {
        self.calls.borrow_mut().push(call);
        Ok(())
    }
}

/// A detached tree of [`RecordingMounts`]: what it was cloned from.
#[derive(Debug)]
pub struct FakeTree(String);

impl MountOps for RecordingMounts {
    type Tree = FakeTree;
    type Userns = String;

    fn unshare_private(&self) -> Result<(), Errno> {
        self.record("unshare mount namespace; / rslave".into())
    }

    fn idmap_userns(&self, map: &IdMap) -> Result<String, MountError> {
        let userns = format!(
            "userns uid_map {} gid_map {}",
            map.uid_map().trim(),
            map.gid_map().trim()
        );
        self.calls.borrow_mut().push(userns.clone());
        Ok(userns)
    }

    fn clone_dir(&self, _dir: BorrowedFd<'_>) -> Result<FakeTree, Errno> {
        self.record("open_tree <output>".into())?;
        Ok(FakeTree("<output>".into()))
    }

    fn clone_path(&self, source: &Path, recursive: bool) -> Result<FakeTree, Errno> {
        let r = if recursive { " recursive" } else { "" };
        self.record(format!("open_tree {}{r}", source.display()))?;
        Ok(FakeTree(source.display().to_string()))
    }

    fn set_attrs(
        &self,
        tree: &FakeTree,
        attrs: MountAttrFlags,
        recursive: bool,
        userns: Option<&String>,
    ) -> Result<(), Errno> {
        let mut names: Vec<&str> = attrs
            .iter_names()
            .map(|(name, _)| name.trim_start_matches("MOUNT_ATTR_"))
            .collect();
        names.sort_unstable();
        let r = if recursive { " recursive" } else { "" };
        let u = userns.map_or(String::new(), |u| format!(" ({u})"));
        self.record(format!("setattr {} {}{r}{u}", tree.0, names.join(",")))
    }

    fn attach(&self, tree: FakeTree, target: &Path) -> Result<(), Errno> {
        self.record(format!("move_mount {} -> {}", tree.0, target.display()))
    }

    fn mount_tmpfs(&self, target: &Path, options: &str) -> Result<(), Errno> {
        self.record(format!("tmpfs {} {options}", target.display()))
    }

    fn mount_proc(&self, target: &Path, options: &str) -> Result<(), Errno> {
        self.record(format!("proc {} {options}", target.display()))
    }

    fn mkdir(&self, path: &Path, mode: u32) -> Result<(), Errno> {
        self.record(format!("mkdir {} {mode:o}", path.display()))
    }

    fn create_file(&self, path: &Path) -> Result<(), Errno> {
        self.record(format!("create {}", path.display()))
    }

    fn symlink(&self, target: &Path, path: &Path) -> Result<(), Errno> {
        self.record(format!(
            "symlink {} -> {}",
            path.display(),
            target.display()
        ))
    }

    fn make_readonly(&self, path: &Path) -> Result<(), Errno> {
        self.record(format!("readonly {}", path.display()))
    }

    fn pivot_root(&self, new_root: &Path) -> Result<(), Errno> {
        self.record(format!("pivot_root {}", new_root.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Device, Network};
    use crate::testutil::TempDir;
    use std::os::unix::fs::symlink;

    /// A merged-/usr host whose /etc/resolv.conf points into /run.
    fn host() -> TempDir {
        let dir = TempDir::new();
        let root = dir.path();
        for d in [
            "usr/bin",
            "usr/lib",
            "etc/ssl",
            "run/systemd/resolve",
            "opt/tool",
            "dev",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "etc/passwd",
            "run/systemd/resolve/stub-resolv.conf",
            "dev/null",
        ] {
            std::fs::write(root.join(f), "").unwrap();
        }
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink(
            "../run/systemd/resolve/stub-resolv.conf",
            root.join("etc/resolv.conf"),
        )
        .unwrap();
        dir
    }

    fn policy(root: &Path) -> Policy {
        Policy {
            read_exec: ["/usr", "/bin", "/lib", "/lib64"]
                .map(PathBuf::from)
                .to_vec(),
            extra_exec: vec![PathBuf::from("/opt/tool")],
            read_only: ["/etc/passwd", "/etc/resolv.conf", "/etc/ssl", "/etc/gnutls"]
                .map(PathBuf::from)
                .to_vec(),
            read_write: vec![PathBuf::from("/overlay"), PathBuf::from("/tmp")],
            devices: vec![
                Device {
                    path: PathBuf::from("/dev/null"),
                    writable: true,
                },
                Device {
                    path: PathBuf::from("/dev/urandom"),
                    writable: false,
                },
            ],
            network: Network::Off,
        }
        .concrete(root)
        .unwrap()
    }

    #[test]
    fn plan_binds_what_the_policy_names() {
        let host = host();
        let plan = RootPlan::new(&policy(host.path()), host.path()).unwrap();
        let lines: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "dir /dev",
                "dir /opt",
                "dir /run",
                "dir /run/systemd",
                "dir /run/systemd/resolve",
                "symlink /bin -> usr/bin",
                "symlink /lib -> usr/lib",
                "bind Tree /etc at /etc",
                "bind Tree /usr at /usr",
                "bind File /run/systemd/resolve/stub-resolv.conf at /run/systemd/resolve/stub-resolv.conf",
                "bind Tree /opt/tool at /opt/tool",
                "bind Device /dev/null at /dev/null",
                "symlink /dev/fd -> /proc/self/fd",
                "symlink /dev/stdin -> /proc/self/fd/0",
                "symlink /dev/stdout -> /proc/self/fd/1",
                "symlink /dev/stderr -> /proc/self/fd/2",
                "proc at /proc",
                "tmpfs at /tmp",
                "overlay at /overlay",
            ]
        );
    }

    #[test]
    fn build_root_sequence() {
        let host = host();
        let plan = RootPlan::new(&policy(host.path()), host.path()).unwrap();
        let ops = RecordingMounts::default();
        let output = std::fs::File::open(host.path()).unwrap();
        let map = IdMap {
            sandbox: Ids { uid: 989, gid: 984 },
            owner: Ids { uid: 990, gid: 985 },
        };
        let userns = ops.idmap_userns(&map).unwrap();
        build_root(&ops, &plan, output.as_fd(), &userns, &map).unwrap();
        let calls = ops.calls();
        let expected_start = [
            "userns uid_map 990 989 1 gid_map 985 984 1",
            "open_tree <output>",
            "setattr <output> IDMAP,NODEV,NOEXEC,NOSUID (userns uid_map 990 989 1 gid_map 985 984 1)",
            "unshare mount namespace; / rslave",
            "open_tree /etc recursive",
            "setattr /etc NODEV,NOSUID,RDONLY recursive",
            "open_tree /usr recursive",
            "setattr /usr NODEV,NOSUID,RDONLY recursive",
            "open_tree /run/systemd/resolve/stub-resolv.conf",
            "setattr /run/systemd/resolve/stub-resolv.conf NODEV,NOEXEC,NOSUID,RDONLY",
            "open_tree /opt/tool recursive",
            "setattr /opt/tool NODEV,NOSUID,RDONLY recursive",
            "open_tree /dev/null",
            "setattr /dev/null NOEXEC,NOSUID,RDONLY",
            "tmpfs /tmp mode=0755,size=1m,nr_inodes=4096",
            "mkdir /tmp/dev 755",
        ];
        assert_eq!(calls[..expected_start.len()], expected_start);
        let expected_end = [
            "mkdir /tmp/proc 555",
            "proc /tmp/proc hidepid=invisible,subset=pid",
            "mkdir /tmp/tmp 755",
            "tmpfs /tmp/tmp mode=1777",
            "mkdir /tmp/overlay 755",
            "move_mount <output> -> /tmp/overlay",
            "readonly /tmp",
            "pivot_root /tmp",
        ];
        assert_eq!(calls[calls.len() - expected_end.len()..], expected_end);
        assert!(calls.contains(&"create /tmp/dev/null".to_string()));
        assert!(calls.contains(&"move_mount /dev/null -> /tmp/dev/null".to_string()));
        assert!(calls.contains(&"move_mount /usr -> /tmp/usr".to_string()));
    }

    #[test]
    fn link_targets_resolve_lexically() {
        assert_eq!(
            join_link(Path::new("/etc/resolv.conf"), Path::new("../run/x")),
            Path::new("/run/x")
        );
        assert_eq!(
            join_link(Path::new("/lib"), Path::new("usr/lib")),
            Path::new("/usr/lib")
        );
        assert_eq!(
            join_link(Path::new("/a/b"), Path::new("/abs")),
            Path::new("/abs")
        );
    }
}
