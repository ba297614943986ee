//! A recording double of [`MountOps`], for the unit tests: every call becomes one line of text;
//! nothing is mounted.

use std::cell::RefCell;
use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::io::Errno;
use rustix::mount::MountAttrFlags;

use super::{IdMap, MountError, MountOps, OverlayLayers};

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

    fn mount_overlay(&self, layers: &OverlayLayers, target: &Path) -> Result<(), Errno> {
        let lowers: Vec<String> = layers
            .lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect();
        self.record(format!(
            "overlay {} lowers {} upper {}/tree work {}/work as uid {} gid {}",
            target.display(),
            lowers.join(":"),
            layers.staging.display(),
            layers.staging.display(),
            layers.mounter.uid,
            layers.mounter.gid
        ))
    }

    fn detach(&self, path: &Path) -> Result<(), Errno> {
        self.record(format!("detach {}", path.display()))
    }

    fn rmdir(&self, path: &Path) -> Result<(), Errno> {
        self.record(format!("rmdir {}", path.display()))
    }

    fn make_readonly(&self, path: &Path) -> Result<(), Errno> {
        self.record(format!("readonly {}", path.display()))
    }

    fn pivot_root(&self, new_root: &Path) -> Result<(), Errno> {
        self.record(format!("pivot_root {}", new_root.display()))
    }
}
