//! Carrying a [`RootPlan`] out: the mount system calls as a trait ([`MountOps`]), and the
//! sequence that builds the root from them ([`build_root`]).

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::MountAttrFlags;

use super::{BindKind, MountError, RootPlan, STAGING, Step};
use crate::policy::under;
use left4me_contract::passwd::Ids;

/// Options of the root tmpfs: it only holds directories, empty files and symlinks.
const ROOT_TMPFS: &str = "mode=0755,size=1m,nr_inodes=4096";
/// Options of the sandbox's `/tmp`. Its size is bounded by the unit's `MemoryMax=` (tmpfs pages
/// are charged to the unit's cgroup).
const TMP_TMPFS: &str = "mode=1777";
/// Options of the sandbox's `/proc`: only processes of the sandbox user are visible, and only
/// the per-process directories (no `/proc/sys`, `/proc/kcore`, …).
const PROC_OPTIONS: &str = "hidepid=invisible,subset=pid";

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
/// at [`OVERLAY_DIR`](crate::policy::OVERLAY_DIR). Afterwards the process's root and cwd are the new root.
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
