//! The sandbox's root as data: which directories, symlinks, binds and fresh file systems, in
//! order, planned from the policy against a host tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use rustix::mount::MountAttrFlags;

use super::MountError;
use crate::policy::{OVERLAY_DIR, Policy, TMP_DIR, under};

/// Where the sandbox's procfs is mounted.
const PROC_DIR: &str = "/proc";

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
    pub(super) fn recursive(self) -> bool {
        self == Self::Tree
    }

    pub(super) fn attrs(self) -> MountAttrFlags {
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
    /// The idmapped output directory (or the overlayfs over its layers).
    Overlay(PathBuf),
    /// The idmapped, writable home (`--home`).
    Home(PathBuf),
}

impl Step {
    /// Where inside the sandbox this step makes something.
    pub fn path(&self) -> &Path {
        match self {
            Self::Dir(path)
            | Self::Proc(path)
            | Self::Tmpfs(path)
            | Self::Overlay(path)
            | Self::Home(path) => path,
            Self::Symlink { path, .. } | Self::Bind { path, .. } => path,
        }
    }
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
            Self::Home(path) => write!(f, "home at {}", path.display()),
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
pub(super) fn join_link(link: &Path, target: &Path) -> PathBuf {
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

/// Refuses a host path that cannot be placed at its own path inside: the root itself, a path in
/// the sandbox's procfs or output directory (neither can hold a mount point), or a path that is
/// or contains one of the sandbox's own mount points (`/tmp`, `/dev`, `/dev/null`, …). A path
/// beneath `/tmp` or `/dev` is fine: it is mounted on the sandbox's own tmpfs or `/dev`.
fn check_host_path<'a>(path: &Path, own: impl Iterator<Item = &'a Step>) -> Result<(), MountError> {
    let refuse = |reserved: &Path| MountError::Reserved {
        path: path.to_path_buf(),
        reserved: reserved.to_path_buf(),
    };
    if top_level(path).is_none() {
        return Err(refuse(Path::new("/")));
    }
    for step in own {
        let mine = step.path();
        let inside_only = matches!(step, Step::Proc(_) | Step::Overlay(_) | Step::Home(_));
        if mine.starts_with(path) || (inside_only && path.starts_with(mine)) {
            return Err(refuse(mine));
        }
    }
    Ok(())
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
            // Beneath a tree already bound, or beneath another --allow-exec directory: seen
            // through that bind already (binding it again would mean a mount point inside a
            // read-only tree).
            let nested = policy
                .extra_exec
                .iter()
                .any(|other| other != path && path.starts_with(other));
            let listed = extra
                .iter()
                .any(|s| matches!(s, Step::Bind { path: p, .. } if p == path));
            if !visible(path, &trees) && !nested && !listed {
                extra.push(Step::Bind {
                    source: path.clone(),
                    path: path.clone(),
                    kind: BindKind::Tree,
                });
            }
        }

        // The sandbox's own file systems first: a host path of the policy that lies beneath
        // one of them (a tool kit in /tmp/tools, a checkout's target dir under /tmp) is then
        // mounted on top of the fresh file system, at the same path.
        let mut own = vec![
            Step::Proc(PathBuf::from(PROC_DIR)),
            Step::Tmpfs(PathBuf::from(TMP_DIR)),
            Step::Overlay(PathBuf::from(OVERLAY_DIR)),
        ];
        own.extend(policy.home.iter().cloned().map(Step::Home));
        let mut host_steps = Vec::new();
        for (path, target) in symlinks {
            host_steps.push(Step::Symlink { path, target });
        }
        for tree in trees {
            host_steps.push(Step::Bind {
                source: tree.clone(),
                path: tree,
                kind: BindKind::Tree,
            });
        }
        host_steps.extend(extra);
        let mut devices = Vec::new();
        for device in &policy.devices {
            devices.push(Step::Bind {
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
            devices.push(Step::Symlink {
                path: Path::new("/dev").join(name),
                target: PathBuf::from(target),
            });
        }
        for step in &host_steps {
            check_host_path(step.path(), own.iter().chain(&devices))?;
        }

        // Each step preceded by the directories it needs that do not exist yet at that point
        // (so a directory beneath /tmp is made in the sandbox's own tmpfs, after its mount).
        let mut steps = Vec::new();
        let mut made = BTreeSet::new();
        for step in own.into_iter().chain(host_steps).chain(devices) {
            let path = step.path().to_path_buf();
            let mut parents: Vec<&Path> = path.ancestors().skip(1).collect();
            parents.reverse();
            for dir in parents {
                if dir != Path::new("/") && made.insert(dir.to_path_buf()) {
                    steps.push(Step::Dir(dir.to_path_buf()));
                }
            }
            made.insert(path);
            steps.push(step);
        }
        Ok(Self { steps })
    }
}
