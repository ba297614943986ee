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

/// Options of the private tmpfs the layers of an overlayfs `/overlay` are attached under while
/// it is mounted (detached right after).
const LAYER_TMPFS: &str = "mode=0700,size=64k,nr_inodes=64";

/// Where, in the root being assembled, that tmpfs is mounted (removed before `pivot_root`).
pub const LAYER_STAGING: &str = "/.left4me-layers";

/// What is mounted at `/overlay`.
#[derive(Debug)]
pub enum OverlaySource<'a> {
    /// A directory, idmapped (the output directory, or `tree/` in it for a first install).
    Dir(BorrowedFd<'a>),
    /// An overlayfs: `lowers` (open directories, topmost first) read-only, and `staging`
    /// (the directory holding `tree/`, the upper layer, and `work/`, overlayfs' work dir, which
    /// must sit on the same mount), each idmapped.
    Layers {
        /// The lower layers, topmost first.
        lowers: Vec<BorrowedFd<'a>>,
        /// The directory holding `tree/` and `work/`.
        staging: BorrowedFd<'a>,
    },
}

/// The directories of the run that are idmapped into the sandbox.
#[derive(Debug)]
pub struct Sources<'a> {
    /// What `/overlay` is.
    pub overlay: OverlaySource<'a>,
    /// The writable home (`--home`), mounted at the policy's home.
    pub home: Option<BorrowedFd<'a>>,
}

/// An overlayfs mount request, the paths as seen by the runner while it assembles the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayLayers {
    /// The (idmapped, attached) lower layers, topmost first.
    pub lowers: Vec<PathBuf>,
    /// The (idmapped, attached) directory holding `tree/` and `work/`.
    pub staging: PathBuf,
    /// Whose file system ids overlayfs keeps as its mounter's credentials: the sandbox user.
    /// overlayfs does its own work in the upper layer (the `work/work` dir, whiteouts, copy-up
    /// temporary files) with the credentials of whoever created the mount, through the
    /// idmapped mount; uid 0 is not in that idmap (only the sandbox user is), so as root every
    /// such step fails with `EOVERFLOW` and the mount falls back to read-only.
    pub mounter: Ids,
}

/// overlayfs options besides the layers, and why:
/// - `redirect_dir=off`: renaming a lower directory gets `EXDEV` (tools copy instead) rather
///   than a `trusted.overlay.redirect` xattr naming a path in a lower layer: the new layer must
///   stay a plain tree with whiteouts, usable below any later version and by instances.
/// - `metacopy=off`: a metadata change copies the whole file up; a metacopy-only upper file
///   would have no data of its own, so the published layer would not be self-contained.
/// - `index=off`: no inode index in `work/` (which is removed before publishing) and no
///   `trusted.overlay.origin` verification tying the layer to these exact lower inodes.
/// - `xino=off`: no high-bit inode numbers; nothing relies on them, and they would differ from
///   what instances see when the layer is a lower there.
pub const OVERLAY_OPTIONS: [(&str, &str); 4] = [
    ("redirect_dir", "off"),
    ("metacopy", "off"),
    ("index", "off"),
    ("xino", "off"),
];

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
    /// Mounts an overlayfs of `layers` at `target` (`nosuid,nodev,noexec`), with
    /// [`OVERLAY_OPTIONS`], `tree/` of the staging directory as the upper layer and `work/` as
    /// the work dir (both opened beneath it without following a symlink).
    fn mount_overlay(&self, layers: &OverlayLayers, target: &Path) -> Result<(), Errno>;
    /// Detaches the mount at `path` and everything beneath it (`umount2(MNT_DETACH)`).
    fn detach(&self, path: &Path) -> Result<(), Errno>;
    /// `rmdir(path)`.
    fn rmdir(&self, path: &Path) -> Result<(), Errno>;
    /// Makes the mount at `path` read-only (not recursive).
    fn make_readonly(&self, path: &Path) -> Result<(), Errno>;
    /// Makes `new_root` the root (`pivot_root(".", ".")` then a lazy unmount of the old root)
    /// and changes to `/`.
    fn pivot_root(&self, new_root: &Path) -> Result<(), Errno>;
}

/// The idmapped clones behind `/overlay`, before they are attached.
enum Overlay<T> {
    Dir(T),
    Layers { lowers: Vec<T>, staging: T },
}

/// Mounts the overlayfs at `target`: attaches the idmapped layers under a private tmpfs at
/// [`LAYER_STAGING`] (overlayfs takes its layers by path, and only from mounts of the caller's
/// namespace), mounts the overlay (which keeps private clones of its layers), then detaches
/// that tmpfs with everything under it and removes its mount point.
fn mount_layers<M: MountOps>(
    ops: &M,
    lowers: Vec<M::Tree>,
    staging: M::Tree,
    target: &Path,
    map: &IdMap,
) -> Result<(), MountError> {
    let base = staged(Path::new(LAYER_STAGING));
    ops.mkdir(&base, 0o700)
        .map_err(step_err(format!("mkdir {LAYER_STAGING}")))?;
    ops.mount_tmpfs(&base, LAYER_TMPFS)
        .map_err(step_err(format!(
            "mounting the layer tmpfs on {LAYER_STAGING}"
        )))?;
    let mut layers = OverlayLayers {
        lowers: Vec::new(),
        staging: base.join("upper"),
        mounter: map.sandbox,
    };
    for (i, tree) in lowers.into_iter().enumerate() {
        let at = base.join(i.to_string());
        ops.mkdir(&at, 0o700)
            .map_err(step_err(format!("mkdir {}", at.display())))?;
        ops.attach(tree, &at)
            .map_err(step_err(format!("attaching lower layer {i}")))?;
        layers.lowers.push(at);
    }
    ops.mkdir(&layers.staging, 0o700)
        .map_err(step_err(format!("mkdir {}", layers.staging.display())))?;
    ops.attach(staging, &layers.staging)
        .map_err(step_err("attaching the output directory".into()))?;
    ops.mount_overlay(&layers, target)
        .map_err(step_err(format!(
            "mounting overlayfs at /overlay ({} lower layers, upper tree/ and work/ of the output \
         directory, both owned by the owner; the kernel log says more)",
            layers.lowers.len()
        )))?;
    ops.detach(&base)
        .map_err(step_err(format!("detaching {LAYER_STAGING}")))?;
    ops.rmdir(&base)
        .map_err(step_err(format!("rmdir {LAYER_STAGING}")))?;
    Ok(())
}

fn staged(path: &Path) -> PathBuf {
    under(Path::new(STAGING), path)
}

fn step_err(step: String) -> impl FnOnce(Errno) -> MountError {
    move |source| MountError::Step { step, source }
}

/// Carries out `plan`: a private mount namespace whose root is the planned tree, with
/// `sources` idmapped through `userns` (made by [`MountOps::idmap_userns`] for `map`): the
/// output at [`OVERLAY_DIR`](crate::policy::OVERLAY_DIR) (a directory, or an overlayfs of
/// read-only lowers and a writable upper) and the home at the plan's home. Afterwards the
/// process's root and cwd are the new root.
pub fn build_root<M: MountOps>(
    ops: &M,
    plan: &RootPlan,
    sources: &Sources<'_>,
    userns: &M::Userns,
    map: &IdMap,
) -> Result<(), MountError> {
    // The idmapped clones first: `open_tree` only clones mounts of the caller's namespace, and
    // the sources were opened in the host's. The detached clones are attached in ours later.
    let mapping = format!(
        "uid {} -> {}, gid {} -> {}; does its file system support idmapped mounts?",
        map.sandbox.uid, map.owner.uid, map.sandbox.gid, map.owner.gid
    );
    let idmapped = |dir: BorrowedFd<'_>, what: &str, extra: MountAttrFlags| {
        let tree = ops
            .clone_dir(dir)
            .map_err(step_err(format!("cloning {what}")))?;
        let attrs = MountAttrFlags::MOUNT_ATTR_IDMAP
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | extra;
        ops.set_attrs(&tree, attrs, false, Some(userns))
            .map_err(step_err(format!("idmapping {what} ({mapping})")))?;
        Ok::<_, MountError>(tree)
    };
    let mut overlay = None;
    if plan.steps.iter().any(|s| matches!(s, Step::Overlay(_))) {
        overlay = Some(match &sources.overlay {
            OverlaySource::Dir(dir) => Overlay::Dir(idmapped(
                *dir,
                "the output directory",
                MountAttrFlags::MOUNT_ATTR_NOEXEC,
            )?),
            OverlaySource::Layers { lowers, staging } => {
                let mut trees = Vec::new();
                for (i, lower) in lowers.iter().enumerate() {
                    trees.push(idmapped(
                        *lower,
                        &format!("lower layer {i}"),
                        MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NOEXEC,
                    )?);
                }
                let staging = idmapped(
                    *staging,
                    "the output directory (tree/ and work/)",
                    MountAttrFlags::MOUNT_ATTR_NOEXEC,
                )?;
                Overlay::Layers {
                    lowers: trees,
                    staging,
                }
            }
        });
    }
    let mut home = None;
    if let Some(dir) = sources.home {
        // Executable: SteamCMD updates itself in its home and runs from there (Valve's
        // bootstrap and Debian's wrapper both do).
        home = Some(idmapped(
            dir,
            "the home directory",
            MountAttrFlags::empty(),
        )?);
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
                match overlay.take().expect("the output was cloned") {
                    Overlay::Dir(tree) => ops
                        .attach(tree, &at(path))
                        .map_err(step_err(step.to_string()))?,
                    Overlay::Layers { lowers, staging } => {
                        mount_layers(ops, lowers, staging, &at(path), map)?
                    }
                }
            }
            Step::Home(path) => {
                ops.mkdir(&at(path), 0o755)
                    .map_err(step_err(format!("mkdir {}", path.display())))?;
                let tree = home.take().ok_or_else(|| MountError::Step {
                    step: format!("{step}: no --home directory was given"),
                    source: Errno::INVAL,
                })?;
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
