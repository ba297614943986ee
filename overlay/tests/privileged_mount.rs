//! Real overlayfs mounts on a tmpfs state dir. Needs root.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::Instant;

use common::{GAME, Tmpfs, assert_root};
use left4me_overlay::mount::MountError;
use left4me_overlay::stage::StageError;
use left4me_overlay::{
    MountMethod, MountOutcome, MountPlan, MountState, RealSys, StagedFile, UnmountOutcome,
    ensure_mounted, mount_state, prepare, resolve_plan, unmount,
};

const CFG: &str = "left4dead2/cfg/server.cfg";

/// installation + overlays a and b, each with a `who` file naming it.
fn state(tag: &str) -> Tmpfs {
    let t = Tmpfs::new(tag);
    t.write("installation/srcds_run", "#!/bin/sh\n");
    t.write("installation/who", "installation");
    t.write("installation/only_installation", "i");
    t.write(
        "installation/left4dead2/cfg/server.cfg",
        "from installation",
    );
    t.write("overlays/a/who", "a");
    t.write("overlays/a/only_a", "a");
    t.write("overlays/b/who", "b");
    t
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn privileged_mount_layer_order_staging_and_unmount() {
    assert_root();
    let t = state("order");
    let plan = MountPlan::new(
        t.path(),
        "coop1",
        &["overlays/b", "overlays/a", "installation"],
    )
    .unwrap();
    let sys = RealSys::new();
    let files = [StagedFile::new(CFG, "hostname \"Coop #1\"\n")];
    let report = prepare(&sys, &resolve_plan(&plan).unwrap(), GAME, &files).unwrap();
    println!("{report}");
    assert_eq!(report.outcome, MountOutcome::Mounted);
    assert_eq!(
        report.method,
        Some(MountMethod::LayerFds),
        "Linux 6.13+ takes layers by fd"
    );

    let m = &plan.dirs().merged;
    assert_eq!(read(m.join("who")), "b");
    assert_eq!(read(m.join("only_a")), "a");
    assert_eq!(read(m.join("only_installation")), "i");
    assert_eq!(read(m.join(CFG)), "hostname \"Coop #1\"\n");
    let staged = std::fs::metadata(plan.dirs().upper.join(CFG)).unwrap();
    assert_eq!((staged.uid(), staged.gid()), (GAME.uid, GAME.gid));
    assert_eq!(staged.permissions().mode() & 0o7777, 0o644);
    let cfg_dir = std::fs::metadata(plan.dirs().upper.join("left4dead2/cfg")).unwrap();
    assert_eq!((cfg_dir.uid(), cfg_dir.gid()), (GAME.uid, GAME.gid));
    for dir in [&plan.dirs().upper, &plan.dirs().work, &plan.dirs().merged] {
        // merged is the overlay root now: its owner is the upper dir's.
        assert_eq!(std::fs::metadata(dir).unwrap().uid(), GAME.uid, "{dir:?}");
    }
    for dir in [
        plan.dirs().dir.as_path(),
        &plan.runtime.state_dir.join("runtime"),
    ] {
        let meta = std::fs::metadata(dir).unwrap();
        assert_eq!(
            (meta.uid(), meta.permissions().mode() & 0o7777),
            (0, 0o755),
            "{dir:?}"
        );
    }

    // Writes land in upper; the lower layers stay untouched.
    std::fs::write(m.join("who"), "written").unwrap();
    assert_eq!(read(plan.dirs().upper.join("who")), "written");
    assert_eq!(read(t.path().join("overlays/b/who")), "b");

    // What mountinfo shows for layers given by fd: their paths, as lowerdir+ entries.
    let MountState::Mounted(entry) = mount_state(&sys, &plan.runtime).unwrap() else {
        panic!()
    };
    assert_eq!(entry.fs_type, "overlay");
    assert_eq!(entry.source, plan.source());
    assert!(entry.has_mount_option("nosuid") && entry.has_mount_option("nodev"));
    let layers = entry.overlay_layers();
    assert_eq!(layers.lowerdirs, plan.lowerdirs);
    assert_eq!(
        layers.upperdir.as_deref(),
        Some(plan.dirs().upper.as_path())
    );
    assert_eq!(layers.workdir.as_deref(), Some(plan.dirs().work.as_path()));

    // The root-owned mode-0 work/work overlayfs leaves behind.
    let work_work = std::fs::metadata(plan.dirs().work.join("work")).unwrap();
    assert_eq!(
        (work_work.uid(), work_work.permissions().mode() & 0o7777),
        (0, 0)
    );

    let report = unmount(&sys, &plan.runtime).unwrap();
    assert_eq!(report.outcome, UnmountOutcome::Unmounted { mounts: 1 });
    assert!(
        report.removed.contains(&plan.dirs().work.join("work")),
        "{report:?}"
    );
    assert!(!plan.dirs().work.join("work").exists());
    assert_eq!(Tmpfs::mounts_at(m), 0);
    assert!(!m.join("who").exists());
    let again = unmount(&sys, &plan.runtime).unwrap();
    assert_eq!(again.outcome, UnmountOutcome::NotMounted);
    assert_eq!(
        mount_state(&sys, &plan.runtime).unwrap(),
        MountState::NotMounted
    );
}

#[test]
fn privileged_mount_500_layers() {
    assert_root();
    let t = Tmpfs::new("500");
    t.write("installation/who", "installation");
    // 499 overlays + installation = 500, the kernel's limit. Kernel order: l498 on top.
    let mut layers: Vec<String> = (0..499).rev().map(|i| format!("overlays/l{i}")).collect();
    for i in 0..499 {
        t.write(&format!("overlays/l{i}/who"), &i.to_string());
        t.write(&format!("overlays/l{i}/f{i}"), "");
    }
    layers.push("installation".into());
    let plan = MountPlan::new(t.path(), "big", &layers).unwrap();
    let sys = RealSys::new();
    let start = Instant::now();
    let report = ensure_mounted(&sys, &plan, GAME).unwrap();
    let mounted = start.elapsed();
    println!("{report} in {mounted:?}");
    assert_eq!(report.layers, 500);
    assert_eq!(read(plan.dirs().merged.join("who")), "498");
    let files = std::fs::read_dir(&plan.dirs().merged).unwrap().count();
    assert_eq!(files, 499 + 1, "every f<i> plus who");
    let start = Instant::now();
    assert_eq!(
        ensure_mounted(&sys, &plan, GAME).unwrap().outcome,
        MountOutcome::AlreadyMounted
    );
    println!("500 layers: kept in {:?}", start.elapsed());
    let start = Instant::now();
    unmount(&sys, &plan.runtime).unwrap();
    println!("500 layers: unmounted in {:?}", start.elapsed());

    // The classic mount(2) fallback cannot carry 500 layers in one page of options.
    let classic = RealSys::with_method(MountMethod::Classic);
    let e = ensure_mounted(&classic, &plan, GAME).unwrap_err();
    assert!(
        matches!(e, MountError::OptionsTooLong { layers: 500, .. }),
        "{e}"
    );
    assert_eq!(Tmpfs::mounts_at(&plan.dirs().merged), 0);
}

#[test]
fn privileged_mount_is_idempotent_and_replaces_a_different_plan() {
    assert_root();
    let t = state("idem");
    let a = MountPlan::new(t.path(), "x", &["overlays/a", "installation"]).unwrap();
    let b = MountPlan::new(t.path(), "x", &["overlays/b", "overlays/a", "installation"]).unwrap();
    let sys = RealSys::new();
    assert_eq!(
        ensure_mounted(&sys, &a, GAME).unwrap().outcome,
        MountOutcome::Mounted
    );
    assert_eq!(
        ensure_mounted(&sys, &a, GAME).unwrap().outcome,
        MountOutcome::AlreadyMounted
    );
    assert_eq!(Tmpfs::mounts_at(&a.dirs().merged), 1);
    assert_eq!(read(a.dirs().merged.join("who")), "a");

    let report = ensure_mounted(&sys, &b, GAME).unwrap();
    println!("{report}");
    assert!(
        matches!(report.outcome, MountOutcome::Replaced { .. }),
        "{report}"
    );
    assert_eq!(Tmpfs::mounts_at(&b.dirs().merged), 1);
    assert_eq!(read(b.dirs().merged.join("who")), "b");

    // A layer directory swapped behind our back (renamed away, a new one made): mountinfo still
    // shows the path recorded at mount time; the stamp's inode numbers show the mount is stale.
    std::fs::rename(t.path().join("overlays/b"), t.path().join("overlays/b-old")).unwrap();
    t.write("overlays/b/who", "new b");
    let report = ensure_mounted(&sys, &b, GAME).unwrap();
    println!("{report}");
    match &report.outcome {
        MountOutcome::Replaced { reason } => {
            assert_eq!(reason, "overlays/b was replaced since it was mounted");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read(b.dirs().merged.join("who")), "new b");
    unmount(&sys, &b.runtime).unwrap();
}

#[test]
fn privileged_mount_fallback_methods() {
    assert_root();
    for method in [MountMethod::LayerPaths, MountMethod::Classic] {
        let t = state("fallback");
        let plan = MountPlan::new(
            t.path(),
            "old",
            &["overlays/b", "overlays/a", "installation"],
        )
        .unwrap();
        let sys = RealSys::with_method(method);
        let report = ensure_mounted(&sys, &plan, GAME).unwrap();
        println!("{report}");
        assert_eq!(report.method, Some(method));
        assert_eq!(read(plan.dirs().merged.join("who")), "b");
        assert_eq!(read(plan.dirs().merged.join("only_a")), "a");
        let MountState::Mounted(entry) = mount_state(&sys, &plan.runtime).unwrap() else {
            panic!()
        };
        println!(
            "{method}: mountinfo shows lowerdirs {:?}",
            entry.overlay_layers().lowerdirs
        );
        assert_eq!(
            ensure_mounted(&sys, &plan, GAME).unwrap().outcome,
            MountOutcome::AlreadyMounted
        );
        assert_eq!(
            unmount(&sys, &plan.runtime).unwrap().outcome,
            UnmountOutcome::Unmounted { mounts: 1 }
        );
    }
}

#[test]
fn privileged_mount_refuses_escapes() {
    assert_root();
    let t = state("escape");
    symlink("/etc", t.path().join("overlays/evil")).unwrap();
    symlink("../runtime", t.path().join("overlays/sideways")).unwrap();
    let sys = RealSys::new();
    for layer in ["overlays/evil", "overlays/sideways"] {
        let plan = MountPlan::new(t.path(), "x", &[layer, "installation"]).unwrap();
        let e = ensure_mounted(&sys, &plan, GAME).unwrap_err();
        println!("{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "layer {}: escapes overlays/ through a symlink or `..`",
                t.path().join(layer).display()
            )),
            "{e}"
        );
        assert_eq!(Tmpfs::mounts_at(&plan.dirs().merged), 0);
    }
    let e = MountPlan::new(t.path(), "x", &["overlays/../../etc"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "layer \"overlays/../../etc\": contains `..`: name the directory directly"
    );
}

#[test]
fn privileged_mount_refuses_fuse_overlayfs_upper() {
    assert_root();
    let t = state("fuse");
    let plan = MountPlan::new(t.path(), "fz", &["installation"]).unwrap();
    t.mkdir("runtime/fz/upper");
    // tmpfs has user xattrs since Linux 6.6.
    rustix::fs::setxattr(
        &plan.dirs().upper,
        "user.fuseoverlayfs.foo",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("set a user xattr on tmpfs");
    let e = ensure_mounted(&RealSys::new(), &plan, GAME).unwrap_err();
    println!("{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "{} carries the xattr user.fuseoverlayfs.foo: the upper dir is left over from \
             fuse-overlayfs; wipe it with `left4mectl reset fz`",
            plan.dirs().upper.display()
        )
    );
    assert_eq!(Tmpfs::mounts_at(&plan.dirs().merged), 0);
}

#[test]
fn privileged_staging_refuses_planted_symlink() {
    assert_root();
    let t = state("plant");
    t.write("outside/keep", "keep");
    let plan = MountPlan::new(t.path(), "p", &["installation"]).unwrap();
    t.mkdir("runtime/p/upper/left4dead2");
    symlink(
        t.path().join("outside"),
        plan.dirs().upper.join("left4dead2/cfg"),
    )
    .unwrap();
    let e = prepare(
        &RealSys::new(),
        &resolve_plan(&plan).unwrap(),
        GAME,
        &[StagedFile::new(CFG, "x")],
    )
    .unwrap_err();
    println!("{e}");
    assert!(
        matches!(&e, MountError::Stage(StageError::Symlink { path }) if path == &plan.dirs().upper.join("left4dead2/cfg")),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(t.path().join("outside")).unwrap().count(),
        1
    );
    assert_eq!(Tmpfs::mounts_at(&plan.dirs().merged), 0);
}

#[test]
fn privileged_unmount_busy_then_free() {
    assert_root();
    let t = state("busy");
    let plan = MountPlan::new(t.path(), "b", &["installation"]).unwrap();
    let sys = RealSys::new();
    ensure_mounted(&sys, &plan, GAME).unwrap();
    let open = std::fs::File::open(plan.dirs().merged.join("who")).unwrap();
    let e = unmount(&sys, &plan.runtime).unwrap_err();
    println!("{e}");
    assert!(matches!(e, MountError::Busy { .. }), "{e}");
    assert_eq!(Tmpfs::mounts_at(&plan.dirs().merged), 1);
    drop(open);
    assert_eq!(
        unmount(&sys, &plan.runtime).unwrap().outcome,
        UnmountOutcome::Unmounted { mounts: 1 }
    );
}

#[test]
fn privileged_mount_error_carries_the_kernel_message() {
    assert_root();
    let t = state("kmsg");
    let outer = MountPlan::new(t.path(), "outer", &["installation"]).unwrap();
    let sys = RealSys::new();
    ensure_mounted(&sys, &outer, GAME).unwrap();
    // A state dir inside an overlay: overlayfs refuses an upper dir on overlayfs.
    let nested = outer.dirs().merged.join("nested");
    std::fs::create_dir_all(nested.join("installation")).unwrap();
    let plan = MountPlan::new(&nested, "inner", &["installation"]).unwrap();
    let e = ensure_mounted(&sys, &plan, GAME).unwrap_err();
    println!("{e}");
    let text = e.to_string();
    assert!(matches!(e, MountError::Mount { .. }), "{text}");
    assert!(text.contains("(kernel: "), "{text}");
    assert_eq!(Tmpfs::mounts_at(&plan.dirs().merged), 0);
    unmount(&sys, &outer.runtime).unwrap();
}

/// A game version's chain below the overlays instead of `installation`; a start on another
/// version is a different mount (the layer list is part of the mount's tag), and a game layer
/// that goes through a symlink is refused.
#[test]
fn privileged_mount_game_version_layers() {
    assert_root();
    let t = state("gamever");
    t.write("game/versions/1/tree/srcds_run", "#!/bin/sh\n");
    t.write("game/versions/1/tree/who", "version 1");
    t.write("game/versions/1/tree/only_1", "1");
    t.write("game/versions/2/tree/who", "version 2");
    let v2 = ["overlays/a", "game/versions/2/tree", "game/versions/1/tree"];
    let plan = MountPlan::new(t.path(), "x", &v2).unwrap();
    let sys = RealSys::new();
    assert_eq!(
        ensure_mounted(&sys, &plan, GAME).unwrap().outcome,
        MountOutcome::Mounted
    );
    let m = &plan.dirs().merged;
    assert_eq!(read(m.join("who")), "a");
    assert_eq!(read(m.join("only_1")), "1");
    assert!(!m.join("only_installation").exists());
    let MountState::Mounted(entry) = mount_state(&sys, &plan.runtime).unwrap() else {
        panic!()
    };
    assert_eq!(entry.overlay_layers().lowerdirs, plan.lowerdirs);
    assert_eq!(
        ensure_mounted(&sys, &plan, GAME).unwrap().outcome,
        MountOutcome::AlreadyMounted
    );
    let v1 = MountPlan::new(t.path(), "x", &["overlays/a", "game/versions/1/tree"]).unwrap();
    let report = ensure_mounted(&sys, &v1, GAME).unwrap();
    assert!(
        matches!(report.outcome, MountOutcome::Replaced { .. }),
        "{report}"
    );
    unmount(&sys, &v1.runtime).unwrap();

    std::fs::create_dir_all(t.path().join("elsewhere")).unwrap();
    symlink("../../elsewhere", t.path().join("game/versions/3")).unwrap();
    let bad = MountPlan::new(t.path(), "x", &["game/versions/3/tree"]).unwrap();
    let err = resolve_plan(&bad).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
}
