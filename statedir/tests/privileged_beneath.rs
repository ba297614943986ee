//! Root's descriptor-based actions against a tree someone else controls (needs root: it
//! changes owners and mounts a tmpfs). Every test keeps a canary directory outside the tree and
//! checks it is untouched, whatever the tree's owner swapped in.

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use left4me_statedir::{DirError, RemoveError, StateDir};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "privileged test: run as root (make test does, as CI does)"
    );
}

/// A scratch dir with a root-owned state dir and a canary beside it.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("left4me-beneath-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("state")).unwrap();
        fs::set_permissions(dir.join("state"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(dir.join("canary/deep")).unwrap();
        fs::write(dir.join("canary/deep/file"), "keep me\n").unwrap();
        Scratch(dir)
    }
    fn state(&self) -> PathBuf {
        self.0.join("state")
    }
    fn canary(&self) -> PathBuf {
        self.0.join("canary")
    }
    fn canary_intact(&self) -> bool {
        fs::read_to_string(self.canary().join("deep/file")).is_ok_and(|t| t == "keep me\n")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn privileged_state_dir_must_be_roots_alone() {
    require_root();
    let s = Scratch::new("owner");
    assert!(StateDir::open(&s.state()).is_ok());
    rustix::fs::chown(s.state(), Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
    let err = StateDir::open(&s.state()).unwrap_err();
    assert!(
        matches!(err, DirError::NotRootOwned { uid: 65534, .. }),
        "{err}"
    );
    rustix::fs::chown(s.state(), Some(rustix::fs::Uid::ROOT), None).unwrap();
    fs::set_permissions(s.state(), fs::Permissions::from_mode(0o775)).unwrap();
    let err = StateDir::open(&s.state()).unwrap_err();
    assert!(err.to_string().contains("mode 0775"), "{err}");
}

#[test]
fn privileged_open_dir_follows_no_link() {
    require_root();
    let s = Scratch::new("links");
    symlink(s.canary(), s.state().join("overlays")).unwrap();
    let state = StateDir::open(&s.state()).unwrap();
    let err = state.open_dir("overlays/deep").unwrap_err();
    assert!(err.to_string().contains("overlays/deep"), "{err}");
    assert!(state.open_dir("../canary").is_err());
    assert!(state.open_dir("/tmp").is_err());
}

#[test]
fn privileged_remove_tree_stays_inside() {
    require_root();
    let s = Scratch::new("remove");
    let victim = s.state().join("runtime/coop1");
    fs::create_dir_all(victim.join("upper/a/b/c")).unwrap();
    fs::write(victim.join("upper/a/b/c/f"), "x").unwrap();
    symlink(s.canary(), victim.join("upper/link-to-canary")).unwrap();
    symlink(
        s.canary().join("deep/file"),
        victim.join("upper/a/file-link"),
    )
    .unwrap();
    // A chain deeper than any recursion would like.
    let mut deep = victim.join("upper/deep");
    for _ in 0..2000 {
        deep.push("d");
    }
    let _ = rustix::fs::mkdir(
        victim.join("upper/deep"),
        rustix::fs::Mode::from_raw_mode(0o755),
    );
    let mut dir = rustix::fs::open(
        victim.join("upper/deep"),
        rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    for _ in 0..2000 {
        rustix::fs::mkdirat(&dir, "d", rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(
            &dir,
            "d",
            rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
    }
    let state = StateDir::open(&s.state()).unwrap();
    let runtime = state.open_dir("runtime").unwrap();
    assert!(runtime.remove_tree("coop1").unwrap());
    assert!(!victim.exists());
    assert!(!runtime.remove_tree("coop1").unwrap(), "gone already");
    assert!(s.canary_intact());
}

#[test]
fn privileged_remove_tree_refuses_a_mount_point() {
    require_root();
    let s = Scratch::new("mount");
    let merged = s.state().join("runtime/coop1/merged");
    fs::create_dir_all(&merged).unwrap();
    rustix::mount::mount(
        "tmpfs",
        &merged,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    fs::write(merged.join("live"), "in use").unwrap();
    let state = StateDir::open(&s.state()).unwrap();
    let err = state
        .open_dir("runtime")
        .unwrap()
        .remove_tree("coop1")
        .unwrap_err();
    let live = fs::read_to_string(merged.join("live"));
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH).unwrap();
    assert!(matches!(err, RemoveError::MountPoint { .. }), "{err}");
    assert_eq!(live.unwrap(), "in use", "the mounted tree was touched");
}

/// The attacker owns `runtime/coop1/upper` and swaps its subdirectory `victim` with a symlink to
/// the canary as fast as it can, while root removes the whole tree, round after round.
#[test]
fn privileged_remove_tree_against_a_racing_swapper() {
    require_root();
    let s = Scratch::new("race");
    let state = StateDir::open(&s.state()).unwrap();
    for round in 0..200 {
        let upper = s.state().join("runtime/coop1/upper");
        fs::create_dir_all(upper.join("victim/x")).unwrap();
        fs::write(upper.join("victim/x/f"), "x").unwrap();
        let _ = fs::remove_file(upper.join("evil"));
        symlink(s.canary(), upper.join("evil")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = stop.clone();
            let upper = upper.clone();
            std::thread::spawn(move || {
                let dir = rustix::fs::open(
                    &upper,
                    rustix::fs::OFlags::DIRECTORY,
                    rustix::fs::Mode::empty(),
                );
                let Ok(dir) = dir else { return };
                while !stop.load(Ordering::Relaxed) {
                    let _ = rustix::fs::renameat_with(
                        &dir,
                        "victim",
                        &dir,
                        "evil",
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                }
            })
        };
        let runtime = state.open_dir("runtime").unwrap();
        let result = runtime.remove_tree("coop1");
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(
            s.canary_intact(),
            "round {round}: the canary was touched ({result:?})"
        );
        let _ = runtime.remove_tree("coop1");
        assert!(
            !Path::new(&s.state().join("runtime/coop1")).exists(),
            "round {round}"
        );
    }
}

#[test]
fn privileged_usage_counts_files_and_follows_no_link() {
    require_root();
    let s = Scratch::new("usage");
    let content = s.state().join("overlays/maps");
    fs::create_dir_all(content.join("left4dead2/addons")).unwrap();
    fs::write(content.join("left4dead2/addons/a.vpk"), "12345").unwrap();
    fs::write(content.join("top"), "ab").unwrap();
    symlink(s.canary(), content.join("left4dead2/link-to-canary")).unwrap();
    symlink(s.canary().join("deep/file"), content.join("file-link")).unwrap();
    let state = StateDir::open(&s.state()).unwrap();
    let usage = state.open_dir("overlays/maps").unwrap().usage().unwrap();
    assert_eq!(usage, left4me_statedir::Usage { files: 2, bytes: 7 });
    assert!(s.canary_intact());
}
