//! The version store against the real kernel (needs root: a root-owned state dir, overlayfs
//! mounts, whiteouts and `trusted.*` xattrs, and an attacker of another uid).
//!
//! - an update made through a real overlayfs mount (SteamCMD's view: copy-up, whiteouts for
//!   deletions, an opaque directory for a directory removed and made again) is published as a
//!   delta, and a chain squashed into a full tree reads exactly like the overlay of the chain;
//! - a squash over a layer where another user swaps a directory for a link to a canary as fast
//!   as it can never copies or touches the canary.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use left4me_game::store::{How, NewVersion, Staging, Store};
use left4me_statedir::StateDir;

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "privileged test: run as root (make test does, as CI does)"
    );
}

/// A root-owned state dir and a canary beside it, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("left4me-pstore-{tag}-{}", std::process::id()));
        let _ = Command::new("umount").arg(dir.join("view")).status();
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("state")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.join("state"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(dir.join("canary/deep")).unwrap();
        fs::write(dir.join("canary/deep/file"), "keep me\n").unwrap();
        Scratch(dir)
    }
    fn state(&self) -> PathBuf {
        self.0.join("state")
    }
    fn store(&self) -> Store {
        Store::open(&StateDir::open(&self.state()).unwrap(), true)
            .unwrap()
            .unwrap()
    }
    fn canary_intact(&self) -> bool {
        fs::read_to_string(self.0.join("canary/deep/file")).is_ok_and(|t| t == "keep me\n")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.join("view")).status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn new(build_id: u64, how: How) -> NewVersion {
    NewVersion {
        build_id,
        branch: "public".into(),
        how,
        platform_workaround: false,
    }
}

fn mount_overlay(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, target: &Path) {
    fs::create_dir_all(target).unwrap();
    let lowers: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let mut options = format!("lowerdir={}", lowers.join(":"));
    if let Some((upper, work)) = upper {
        options.push_str(&format!(
            ",upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
            upper.display(),
            work.display()
        ));
    }
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(target)
        .status()
        .unwrap();
    assert!(status.success(), "mount {options}");
}

fn umount(target: &Path) {
    assert!(
        Command::new("umount")
            .arg(target)
            .status()
            .unwrap()
            .success()
    );
}

/// Everything a tree holds: relative path → what it is (type, mode, contents or link target).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let mode = meta.mode() & 0o7777;
            let what = if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o} {}", meta.mtime())
            } else if meta.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else {
                format!(
                    "file {mode:o} {} {:?}",
                    meta.mtime(),
                    fs::read_to_string(&path).unwrap()
                )
            };
            out.insert(rel, what);
        }
    }
    out
}

/// Runs `change` in the merged view of a staging dir (what SteamCMD does), then unmounts.
fn through_overlay(s: &Scratch, staging: &Staging, change: impl FnOnce(&Path)) {
    let view = s.0.join("view");
    mount_overlay(&staging.lowers, Some((&staging.tree, &staging.work)), &view);
    change(&view);
    umount(&view);
}

#[test]
fn privileged_store_real_overlay_deltas_and_squash_equal_the_merged_view() {
    require_root();
    let s = Scratch::new("squash");
    let store = s.store();

    let staging = store.begin(None).unwrap();
    let tree = &staging.tree;
    fs::create_dir_all(tree.join("left4dead2/addons/old")).unwrap();
    fs::create_dir_all(tree.join("left4dead2/maps")).unwrap();
    fs::write(tree.join("srcds_run"), "#!/bin/sh\necho 1\n").unwrap();
    fs::set_permissions(tree.join("srcds_run"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(tree.join("left4dead2/addons/old/a.vpk"), "old a").unwrap();
    fs::write(tree.join("left4dead2/addons/old/b.vpk"), "old b").unwrap();
    fs::write(tree.join("left4dead2/maps/c1m1.bsp"), "map 1").unwrap();
    fs::write(tree.join("left4dead2/gone.txt"), "bye").unwrap();
    symlink("srcds_run", tree.join("srcds_link")).unwrap();
    let v1 = store.publish(staging, new(1, How::Install)).unwrap();
    assert_eq!(v1.id, "1");

    // 2: a changed file (copy-up), a removed file (whiteout), a removed and recreated dir
    // (opaque).
    let staging = store.begin(Some("1")).unwrap();
    through_overlay(&s, &staging, |view| {
        fs::write(view.join("srcds_run"), "#!/bin/sh\necho 2\n").unwrap();
        fs::remove_file(view.join("left4dead2/gone.txt")).unwrap();
        fs::remove_dir_all(view.join("left4dead2/addons/old")).unwrap();
        fs::create_dir(view.join("left4dead2/addons/old")).unwrap();
        fs::write(view.join("left4dead2/addons/old/new.vpk"), "new").unwrap();
    });
    // overlayfs left work/work (mode 0): publish removes it.
    let v2 = store.publish(staging, new(2, How::Update)).unwrap();
    assert_eq!(v2.parent.as_deref(), Some("1"));
    let delta = s.state().join("game/versions/2/tree");
    let gone = fs::symlink_metadata(delta.join("left4dead2/gone.txt")).unwrap();
    assert_eq!(gone.rdev(), 0, "a whiteout is a char device 0:0");
    assert!(gone.file_type().is_char_device());
    assert!(!s.state().join("game/versions/2/work").exists());
    // The published parent was never written.
    assert_eq!(
        fs::read_to_string(s.state().join("game/versions/1/tree/srcds_run")).unwrap(),
        "#!/bin/sh\necho 1\n"
    );

    // 3 and 4: more deltas; 4 removes a whole directory.
    let staging = store.begin(Some("2")).unwrap();
    through_overlay(&s, &staging, |view| {
        fs::write(view.join("left4dead2/maps/c2m1.bsp"), "map 2").unwrap();
    });
    store.publish(staging, new(3, How::Update)).unwrap();
    let staging = store.begin(Some("3")).unwrap();
    through_overlay(&s, &staging, |view| {
        fs::remove_dir_all(view.join("left4dead2/maps")).unwrap();
        fs::write(view.join("left4dead2/maps.txt"), "no maps").unwrap();
    });
    store.publish(staging, new(4, How::Update)).unwrap();
    assert_eq!(store.chain("4").unwrap().len(), 4);

    // 5 is squashed: the merged view of 5's delta over 4's chain, as a full tree.
    let staging = store.begin(Some("4")).unwrap();
    let lowers = staging.lowers.clone();
    through_overlay(&s, &staging, |view| {
        fs::create_dir(view.join("left4dead2/maps")).unwrap();
        fs::write(view.join("left4dead2/maps/c3m1.bsp"), "map 3").unwrap();
    });
    let mut want_layers = vec![staging.tree.clone()];
    want_layers.extend(lowers);
    let view = s.0.join("view");
    mount_overlay(&want_layers, None, &view);
    let want = snapshot(&view);
    umount(&view);
    let v5 = store.publish(staging, new(5, How::Update)).unwrap();
    assert_eq!((v5.how, v5.parent.as_deref()), (How::Squash, None));
    let got = snapshot(&s.state().join("game/versions/5/tree"));
    assert_eq!(got, want);
    assert!(got.contains_key(Path::new("left4dead2/maps/c3m1.bsp")));
    assert!(!got.contains_key(Path::new("left4dead2/maps/c1m1.bsp")));
    assert!(!got.contains_key(Path::new("left4dead2/gone.txt")));
    assert!(!got.contains_key(Path::new("left4dead2/addons/old/a.vpk")));
    assert_eq!(got[Path::new("srcds_link")], "link -> srcds_run");
    assert!(got[Path::new("srcds_run")].starts_with("file 755 "));

    // Nothing mounts the old chain: gc takes it; the squashed version stands alone.
    let removed = store.gc(&Default::default()).unwrap();
    assert_eq!(removed, ["1", "2", "3", "4"]);
    assert_eq!(store.layers("5").unwrap(), ["game/versions/5/tree"]);
}

#[test]
fn privileged_store_gc_keeps_what_a_mount_uses() {
    require_root();
    let s = Scratch::new("gcmount");
    let store = s.store();
    let staging = store.begin(None).unwrap();
    fs::write(staging.tree.join("srcds_run"), "1").unwrap();
    store.publish(staging, new(1, How::Install)).unwrap();
    let staging = store.begin(None).unwrap();
    fs::write(staging.tree.join("srcds_run"), "2").unwrap();
    store.publish(staging, new(2, How::Install)).unwrap();
    let view = s.0.join("view");
    fs::create_dir_all(s.0.join("empty")).unwrap();
    let lowers = [s.state().join("game/versions/1/tree"), s.0.join("empty")];
    mount_overlay(&lowers, None, &view);
    let kept = store.gc(&Default::default());
    umount(&view);
    assert_eq!(kept.unwrap(), Vec::<String>::new(), "1 is mounted");
    assert_eq!(store.gc(&Default::default()).unwrap(), ["1"]);
}

/// Another user owns a directory inside a layer and swaps its subdirectory `victim` with a
/// link to the canary while root squashes, round after round.
#[test]
fn privileged_store_squash_against_a_racing_swapper() {
    require_root();
    let s = Scratch::new("race");
    let store = s.store();
    let mut parent: Option<String> = None;
    for build in 1..=4 {
        let staging = store.begin(parent.as_deref()).unwrap();
        fs::write(staging.tree.join(format!("f{build}")), "x").unwrap();
        let how = if parent.is_some() {
            How::Update
        } else {
            How::Install
        };
        parent = Some(store.publish(staging, new(build, how)).unwrap().id);
    }
    let mut published = 0;
    for round in 0..40 {
        let staging = store.begin(Some("4")).unwrap();
        let owned = staging.tree.join("owned");
        fs::create_dir_all(owned.join("victim/x")).unwrap();
        fs::write(owned.join("victim/x/f"), "fine").unwrap();
        symlink(s.0.join("canary"), owned.join("evil")).unwrap();
        Command::new("chown")
            .args(["-R", "-h", "65534:65534"])
            .arg(&owned)
            .status()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = stop.clone();
            // Opened before the publish starts: the publish renames the staging dir away.
            let dir = rustix::fs::open(
                &owned,
                rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .unwrap();
            std::thread::spawn(move || {
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
        let result = store.publish(staging, new(5, How::Update));
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(s.canary_intact(), "round {round}: the canary was touched");
        let version = match result {
            Ok(version) => version,
            // Safe outcome: the attacker kept the removal of the staging dir busy.
            Err(left4me_game::store::StoreError::Remove(
                left4me_statedir::RemoveError::KeepsChanging { .. },
            )) => continue,
            Err(e) => panic!("round {round}: {e}"),
        };
        published += 1;
        assert_eq!(version.how, How::Squash);
        let tree = s
            .state()
            .join("game/versions")
            .join(&version.id)
            .join("tree");
        for (path, what) in snapshot(&tree) {
            assert!(
                !what.contains("keep me"),
                "round {round}: {} holds the canary's file",
                path.display()
            );
        }
        store.set_current("4").unwrap();
        let keep = ["4".to_owned()].into();
        store.gc(&keep).unwrap();
    }
    assert!(published > 0, "no round published");
}
