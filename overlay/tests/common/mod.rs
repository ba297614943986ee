//! Shared helpers of the privileged tests: a tmpfs state dir that is unmounted (with everything
//! mounted below it) and removed on drop, even when the test panics.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use left4me_overlay::Owner;
use rustix::mount::{MountFlags, UnmountFlags};

/// The game user of the tests: any uid will do, it need not exist.
pub const GAME: Owner = Owner {
    uid: 4242,
    gid: 4343,
};

pub fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run `make test` as root"
    );
}

/// A tmpfs mounted on a fresh directory under /tmp (overlayfs refuses upper dirs on overlayfs,
/// and the test machine's / may be one).
pub struct Tmpfs {
    base: PathBuf,
}

impl Tmpfs {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base =
            std::env::temp_dir().join(format!("left4me-overlay-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let base = base.canonicalize().unwrap();
        rustix::mount::mount("tmpfs", &base, "tmpfs", MountFlags::empty(), c"mode=0755")
            .expect("mount tmpfs");
        Self { base }
    }

    pub fn path(&self) -> &Path {
        &self.base
    }

    /// Creates `rel` (and its parents) and writes `contents` into it.
    pub fn write(&self, rel: &str, contents: &str) {
        let path = self.base.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.base.join(rel)).unwrap();
    }

    /// How many mounts sit exactly at `path` (from this process' mountinfo).
    pub fn mounts_at(path: &Path) -> usize {
        let text = std::fs::read("/proc/self/mountinfo").unwrap();
        left4me_overlay::mountinfo::parse(&text)
            .unwrap()
            .iter()
            .filter(|e| e.mount_point == path)
            .count()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Everything mounted below the base, latest first, then the base itself.
        let text = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
        let entries = left4me_overlay::mountinfo::parse(&text).unwrap_or_default();
        for entry in entries.iter().rev() {
            if entry.mount_point.starts_with(&self.base) {
                let _ = rustix::mount::unmount(&entry.mount_point, UnmountFlags::DETACH);
            }
        }
        let _ = std::fs::remove_dir(&self.base);
    }
}
