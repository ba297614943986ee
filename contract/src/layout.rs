//! The directories of the state dir that more than one binary works in.
//!
//! DESIGN.md §2: root owns the state dir and every directory it works in by path; the game user
//! owns only the leaves it must write (an instance's `upper`, build output).

use std::path::{Path, PathBuf};

/// The kernel's overlayfs stack limit (`OVL_MAX_STACK`): lower layers of one mount.
pub const MAX_LAYERS: usize = 500;

/// The directories of the state dir a layer may live in (the first component of a layer path):
/// the game install, overlay content and the workshop cache.
pub const LAYER_ROOTS: [&str; 3] = ["installation", "overlays", "workshop_cache"];

/// The state dir's directory of per-instance runtime dirs.
pub const RUNTIME: &str = "runtime";

/// The state dir's directory of overlay content.
pub const OVERLAYS: &str = "overlays";

/// The runtime dirs of one instance: `state_dir/runtime/NAME/{upper,work,merged}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuntimeDirs {
    /// `runtime/NAME`, root-owned.
    pub dir: PathBuf,
    /// `runtime/NAME/upper`: the instance's private writable layer, owned by the game user.
    pub upper: PathBuf,
    /// `runtime/NAME/work`: overlayfs' work dir.
    pub work: PathBuf,
    /// `runtime/NAME/merged`: where the game tree is mounted.
    pub merged: PathBuf,
}

impl RuntimeDirs {
    /// The runtime dirs of instance `name` under `state_dir` (no I/O, no checks: validate the
    /// name first).
    pub fn new(state_dir: &Path, name: &str) -> Self {
        let dir = state_dir.join(RUNTIME).join(name);
        RuntimeDirs {
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dirs_sit_under_runtime_name() {
        let dirs = RuntimeDirs::new(Path::new("/var/lib/left4me"), "coop1");
        assert_eq!(dirs.dir, Path::new("/var/lib/left4me/runtime/coop1"));
        assert_eq!(
            dirs.upper,
            Path::new("/var/lib/left4me/runtime/coop1/upper")
        );
        assert_eq!(dirs.work, Path::new("/var/lib/left4me/runtime/coop1/work"));
        assert_eq!(
            dirs.merged,
            Path::new("/var/lib/left4me/runtime/coop1/merged")
        );
    }
}
