//! Resolving the layers of a plan to file descriptors, safely.
//!
//! The state dir is owned by the unprivileged game user, who could swap a checked directory for a
//! symlink to `/root` between a check and the mount. So every layer is opened once, with
//! `openat2`, and the mount is made from the descriptors (see [`crate::sys::MountMethod`]):
//!
//! * the first component (`installation`, `overlays` or `workshop_cache`) is opened beneath the
//!   state dir with `RESOLVE_NO_SYMLINKS`: it must be a real directory;
//! * the rest is opened beneath that directory with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`:
//!   symlinks that stay inside (`overlays/a -> b`) are followed, anything that leaves it
//!   (`overlays/evil -> /etc`, `overlays/x -> ../runtime`, `..`) is refused with the path named.
//!
//! The state dir itself is opened by path, following symlinks: it is root's configuration.
//!
//! [`resolve_plan`] opens every layer of a plan once; the [`ResolvedPlan`] it returns is what
//! the caller reads cfg files from ([`ResolvedPlan::layer`]) and what [`crate::mount::prepare`]
//! mounts, so nothing is resolved twice.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::plan::{MountPlan, validate_layer_path};
use left4me_statedir::StateDir;

use crate::sys::{RESOLVE_STRICT, fd_path, openat2_retry};

/// One layer, opened.
#[derive(Debug)]
pub struct ResolvedLayer {
    /// The layer path relative to the state dir, as in the plan.
    pub rel: PathBuf,
    /// Where the descriptor points (what mountinfo shows for a layer given by descriptor).
    pub path: PathBuf,
    /// An `O_PATH` descriptor of the layer directory.
    pub fd: OwnedFd,
    /// Device and inode of the layer directory: its identity, whatever it is called later.
    pub dev: u64,
    pub ino: u64,
}

/// Why a layer cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Ownership(left4me_statedir::DirError),
    #[error(
        "cannot open the state dir {path}: {source}: create it or fix state_dir / LEFT4ME_STATE_DIR"
    )]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("layer {path}: {reason}")]
    Layer { path: PathBuf, reason: String },
}

/// Opens the state dir (following symlinks: it is root's configuration). As root, the state dir
/// must obey the ownership rule (DESIGN.md §2: owned by root, writable by nobody else;
/// [`StateDir::open`]): whoever owns it could redirect root's actions inside it. A caller that
/// is not root gains nothing from being redirected, so its state dir is only opened.
pub fn open_state_dir(state_dir: &Path) -> Result<OwnedFd, LayerError> {
    if rustix::process::geteuid().is_root() {
        return match StateDir::open(state_dir) {
            Ok(dir) => Ok(dir.into_fd()),
            Err(e) if e.is_not_found() => Err(LayerError::StateDir {
                path: state_dir.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            }),
            Err(e) => Err(LayerError::Ownership(e)),
        };
    }
    rustix::fs::open(
        state_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::StateDir {
        path: state_dir.to_owned(),
        source: e.into(),
    })
}

/// A plan with every layer opened, in plan order (topmost first).
#[derive(Debug)]
pub struct ResolvedPlan<'p> {
    plan: &'p MountPlan,
    layers: Vec<ResolvedLayer>,
}

impl<'p> ResolvedPlan<'p> {
    /// The plan the layers were opened for.
    pub fn plan(&self) -> &'p MountPlan {
        self.plan
    }

    /// The opened layers, in plan order (topmost first).
    pub fn layers(&self) -> &[ResolvedLayer] {
        &self.layers
    }

    /// The opened layer `rel` (relative to the state dir, as in the instance spec), to read
    /// files from with [`crate::stage::read_beneath`].
    pub fn layer(&self, rel: &Path) -> Result<&ResolvedLayer, LayerError> {
        let normal: PathBuf = rel.components().collect();
        self.layers
            .iter()
            .find(|layer| layer.rel == normal)
            .ok_or_else(|| LayerError::Layer {
                path: self.plan.runtime.state_dir.join(rel),
                reason: "is not a layer of the instance's mount plan".to_owned(),
            })
    }
}

/// Opens every layer of the plan, once, in plan order (topmost first).
pub fn resolve_plan(plan: &MountPlan) -> Result<ResolvedPlan<'_>, LayerError> {
    let state_dir = &plan.runtime.state_dir;
    let state = open_state_dir(state_dir)?;
    let layers = plan
        .layers
        .iter()
        .map(|rel| resolve_layer(state.as_fd(), state_dir, rel))
        .collect::<Result<_, _>>()?;
    Ok(ResolvedPlan { plan, layers })
}

/// Opens one layer `rel` beneath the state dir `state` (whose path `state_dir` is used in
/// messages).
fn resolve_layer(
    state: std::os::fd::BorrowedFd<'_>,
    state_dir: &Path,
    rel: &Path,
) -> Result<ResolvedLayer, LayerError> {
    let shown = state_dir.join(rel);
    let refuse = |reason: String| LayerError::Layer {
        path: shown.clone(),
        reason,
    };
    validate_layer_path(rel).map_err(|e| match e {
        crate::plan::PlanError::Layer { reason, .. } => refuse(reason.to_owned()),
        other => refuse(other.to_string()),
    })?;
    if crate::plan::is_game_layer(rel) {
        // A game version: root's all the way down, so no link is followed at all.
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        let fd = openat2_retry(state, rel, flags, Mode::empty(), RESOLVE_STRICT).map_err(|e| {
            refuse(match e {
                Errno::NOENT => "does not exist: the game version is gone (`left4mectl game \
                                 versions` lists them)"
                    .to_owned(),
                Errno::LOOP | Errno::XDEV => "goes through a symlink: refused".to_owned(),
                other => describe(other, "game"),
            })
        })?;
        return opened(rel, fd).map_err(|e| refuse(describe(e, "game")));
    }
    let mut components = rel.components();
    let Some(Component::Normal(first)) = components.next() else {
        unreachable!("validate_layer_path checked the first component");
    };
    let first_name = first.to_string_lossy().into_owned();
    let rest: PathBuf = components.collect();
    let flags = OFlags::PATH | OFlags::DIRECTORY;

    let root = openat2_retry(state, first.as_ref(), flags, Mode::empty(), RESOLVE_STRICT).map_err(
        |e| {
            refuse(match e {
                Errno::LOOP => format!(
                    "{first_name}/ in the state dir is a symlink: it must be a real directory"
                ),
                other => describe(other, &first_name),
            })
        },
    )?;
    let fd = if rest.as_os_str().is_empty() {
        root
    } else {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        openat2_retry(root.as_fd(), &rest, flags, Mode::empty(), resolve)
            .map_err(|e| refuse(describe(e, &first_name)))?
    };
    opened(rel, fd).map_err(|e| refuse(describe(e, &first_name)))
}

/// The [`ResolvedLayer`] of the layer `rel`, opened as `fd`.
fn opened(rel: &Path, fd: OwnedFd) -> Result<ResolvedLayer, Errno> {
    let stat = rustix::fs::fstat(&fd)?;
    Ok(ResolvedLayer {
        rel: rel.to_owned(),
        path: fd_path(fd.as_fd()),
        dev: stat.st_dev,
        ino: stat.st_ino,
        fd,
    })
}

fn describe(errno: Errno, root: &str) -> String {
    match errno {
        Errno::NOENT => "does not exist: build the overlay (`left4mectl overlay build`) or fix \
                         the instance's overlays list"
            .to_owned(),
        Errno::NOTDIR => "is not a directory".to_owned(),
        Errno::XDEV => format!(
            "escapes {root}/ through a symlink or `..`: refused; point it at a directory inside \
             {root}/"
        ),
        Errno::LOOP => "goes through a /proc magic link or too many symlinks: refused".to_owned(),
        Errno::NOSYS => "openat2 is not available: left4me needs Linux 5.6 or newer".to_owned(),
        other => format!("cannot open: {}", std::io::Error::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::unix::fs::symlink;

    fn tree() -> TempDir {
        let t = TempDir::new("resolve");
        for d in [
            "installation",
            "overlays/a/sub",
            "overlays/b",
            "workshop_cache/1",
            "runtime",
        ] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        t
    }

    fn resolve(t: &TempDir, rel: &str) -> Result<ResolvedLayer, LayerError> {
        let state = open_state_dir(t.path()).unwrap();
        resolve_layer(state.as_fd(), t.path(), rel.as_ref())
    }

    fn reason(t: &TempDir, rel: &str) -> String {
        match resolve(t, rel) {
            Err(LayerError::Layer { path, reason }) => {
                assert_eq!(path, t.path().join(rel));
                reason
            }
            other => panic!("{rel}: {other:?}"),
        }
    }

    #[test]
    fn resolves_real_dirs() {
        let t = tree();
        for rel in [
            "installation",
            "overlays/a",
            "overlays/a/sub",
            "workshop_cache/1",
        ] {
            let layer = resolve(&t, rel).unwrap();
            assert_eq!(layer.path, t.path().join(rel));
            assert_eq!(layer.rel, Path::new(rel));
        }
        let plan = MountPlan::new(t.path(), "x", &["overlays/b", "installation"]).unwrap();
        let resolved = resolve_plan(&plan).unwrap();
        let layers = resolved.layers();
        assert_eq!(layers[0].path, t.path().join("overlays/b"));
        assert_eq!(layers[1].path, t.path().join("installation"));
        // Found by the path the spec names, trailing slash or not.
        for rel in ["overlays/b", "overlays/b/"] {
            assert_eq!(
                resolved.layer(rel.as_ref()).unwrap().path,
                t.path().join("overlays/b")
            );
        }
        let e = resolved.layer("overlays/a".as_ref()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "layer {}: is not a layer of the instance's mount plan",
                t.path().join("overlays/a").display()
            )
        );
    }

    #[test]
    fn symlink_inside_its_root_is_followed() {
        let t = tree();
        symlink("a/sub", t.path().join("overlays/alias")).unwrap();
        assert_eq!(
            resolve(&t, "overlays/alias").unwrap().path,
            t.path().join("overlays/a/sub")
        );
    }

    #[test]
    fn escapes_refused() {
        let t = tree();
        symlink("/etc", t.path().join("overlays/evil")).unwrap();
        symlink("../runtime", t.path().join("overlays/sideways")).unwrap();
        symlink("../../installation", t.path().join("overlays/a/up")).unwrap();
        let escape = "escapes overlays/ through a symlink or `..`: refused; point it at a \
                      directory inside overlays/";
        assert_eq!(reason(&t, "overlays/evil"), escape);
        assert_eq!(reason(&t, "overlays/sideways"), escape);
        assert_eq!(reason(&t, "overlays/a/up"), escape);
        assert_eq!(
            reason(&t, "overlays/../etc"),
            "contains `..`: name the directory directly"
        );
        assert_eq!(
            reason(&t, "runtime"),
            "must be beneath installation/, overlays/ or workshop_cache/"
        );
    }

    #[test]
    fn root_symlink_refused() {
        let t = tree();
        std::fs::rename(t.path().join("workshop_cache"), t.path().join("wc")).unwrap();
        symlink("wc", t.path().join("workshop_cache")).unwrap();
        assert_eq!(
            reason(&t, "workshop_cache/1"),
            "workshop_cache/ in the state dir is a symlink: it must be a real directory"
        );
    }

    #[test]
    fn missing_and_not_dir() {
        let t = tree();
        std::fs::write(t.path().join("overlays/file"), "x").unwrap();
        assert!(reason(&t, "overlays/nope").starts_with("does not exist"));
        assert_eq!(reason(&t, "overlays/file"), "is not a directory");
        let e = open_state_dir(&t.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("create it or fix state_dir"), "{e}");
    }
}
